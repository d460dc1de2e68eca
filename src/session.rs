//! Recording sessions from a server, without PAM: what goutmp's `AddRecord` and
//! `RemoveRecord` give Go programs, for SSH servers, remote-desktop daemons and the like
//! that do not go through pam_wtmpdb.
//!
//! [`open_session`] adds the database row and then mirrors the login to the legacy sink;
//! [`close_session`] sets the logout time and mirrors the logout. The database is the
//! record: a mirror failure never fails either call, it comes back as a warning for the
//! caller to log, and a database failure at login writes no legacy record (which would
//! otherwise describe a session the database does not know).
//!
//! ```
//! use wtmpdb::legacy::{Mirror, MirrorPaths};
//! use wtmpdb::session::{self, NewSession};
//! use wtmpdb::{Database, time};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open_read_write(&dir.path().join("wtmp.db"))?;
//! // Mirror to utmps daemons that are not running: the session is recorded anyway.
//! let paths = MirrorPaths {
//!     utmpd_socket: dir.path().join("utmpd-socket"),
//!     wtmpd_socket: dir.path().join("wtmpd-socket"),
//!     ..MirrorPaths::default()
//! };
//! let mirror = Mirror::from_option("utmps", &paths)?;
//!
//! let new = NewSession {
//!     user: "alice",
//!     tty: Some("/dev/pts/3"),
//!     host: Some("192.0.2.10"),
//!     service: Some("my-sshd"),
//!     pid: None,
//! };
//! let opened = session::open_session(&db, &mirror, &new, time::now())?;
//! if let Some(w) = &opened.warning {
//!     eprintln!("legacy mirror: {w}");
//! }
//! assert!(opened.warning.is_some());
//!
//! // Keep `opened.session` with the connection; when it ends:
//! let warning = session::close_session(&db, &mirror, &opened.session, time::now())?;
//! assert!(warning.is_some());
//!
//! let row = db.entries(&Default::default()).next().unwrap()?;
//! assert_eq!((row.user.as_str(), row.tty.as_deref()), ("alice", Some("pts/3")));
//! assert!(row.logout.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::legacy::{LegacyError, LegacySession, LegacySink};
use crate::storage::{self, Database, Kind, NewEntry};
use crate::time::Usec;

/// A session about to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub user: &'a str,
    /// The terminal, with or without `/dev/`; stored without it, as pam_wtmpdb does.
    pub tty: Option<&'a str>,
    /// Remote host name or address (or X display).
    pub host: Option<&'a str>,
    /// The service name, e.g. the server's name.
    pub service: Option<&'a str>,
    /// The process that serves the session (`ut_pid`); `None` means this process.
    pub pid: Option<i32>,
}

/// A recorded, open session. Everything needed to close it, also from another process
/// (the fields are public so a server can persist them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The database row.
    pub id: i64,
    pub login: Usec,
    /// What the legacy records say, repeated at logout.
    pub legacy: LegacySession,
}

/// The result of [`open_session`].
#[must_use = "the session is needed to close it, and the warning should be logged"]
#[derive(Debug)]
pub struct Opened {
    pub session: Session,
    /// The legacy mirror failed; the session is recorded in the database all the same.
    pub warning: Option<LegacyError>,
}

/// The database could not record the logout. The legacy logout was still attempted, so
/// that `who` does not keep showing a session that ended.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct CloseError {
    #[source]
    pub source: storage::Error,
    pub warning: Option<LegacyError>,
}

/// Records the start of a session at `at` (usually [`crate::time::now`]).
pub fn open_session(
    db: &Database,
    mirror: &dyn LegacySink,
    new: &NewSession<'_>,
    at: Usec,
) -> storage::Result<Opened> {
    let tty = new.tty.map(|t| t.strip_prefix("/dev/").unwrap_or(t));
    let id = db.login(&NewEntry {
        kind: Kind::UserProcess,
        user: new.user,
        login: at,
        logout: None,
        tty,
        host: new.host,
        service: new.service,
    })?;
    let pid = new.pid.unwrap_or_else(|| std::process::id() as i32);
    let legacy = LegacySession::new(new.user, tty, new.host, new.service, pid);
    let warning = mirror.login(&legacy, at).err();
    Ok(Opened {
        session: Session {
            id,
            login: at,
            legacy,
        },
        warning,
    })
}

/// Records the end of `session` at `at`. `Ok(Some(_))` is a legacy-mirror warning.
pub fn close_session(
    db: &Database,
    mirror: &dyn LegacySink,
    session: &Session,
    at: Usec,
) -> Result<Option<LegacyError>, CloseError> {
    let stored = db.logout(session.id, at);
    let warning = mirror.logout(&session.legacy, at).err();
    match stored {
        Ok(()) => Ok(warning),
        Err(source) => Err(CloseError { source, warning }),
    }
}
