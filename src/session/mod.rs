//! The session rule: how a login and its logout are recorded in a database file. Every
//! front end reaches it through the one write path ([`crate::writer::Writer`], which also
//! talks to the daemon); the library API below serves programs that keep their own
//! connection (what goutmp's `AddRecord` and `RemoveRecord` give Go programs: SSH servers,
//! remote-desktop daemons). All of them store the same thing in the same order:
//!
//! * **one normalisation** ([`SessionItems`]): tty without `/dev/` and `""` when there is
//!   none, every item bounded to [`MAX_ITEM_BYTES`], non-UTF-8 bytes kept visible as `\xNN`;
//! * **one order**: the database row first, then the legacy mirror; the logout is mirrored
//!   whatever the database did. The database is the record: a mirror failure never fails a
//!   call, it comes back as a [`Mirrored`] for the caller to log, and a database failure at
//!   login writes no legacy record (which would otherwise describe a session the database
//!   does not know; with a `required` PAM module the application never calls close, and the
//!   entry would stay in `who` for good);
//! * **one bounded writer** ([`FileWriter`]): each call waits at most [`LOCK_WAIT`] in all,
//!   for its turn among the calls of the process, for SQLite's lock, and for the mirror;
//!   when the lock is not free in time, the record goes to the [`spool`];
//! * **one identity** ([`SessionId`], [`Identity`]): a login is a row or a spool token, and
//!   a logout by ID closes the row only when it is still the session that logged in.
//!
//! [`open_session`] and [`close_session`] apply the order on a connection and a sink the
//! caller already has:
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

mod bounded;
pub mod group;
mod id;
mod items;
mod queue;
pub mod spool;

use std::path::{Path, PathBuf};

pub use bounded::{LOCK_WAIT, MIGRATE_MAX_ROWS, UTMPS_MAX, UTMPS_MIN};
pub use id::{Identity, SPOOLED_MIN, SessionId};
pub use items::{MAX_ITEM_BYTES, SessionItems, stored, stored_tty};

use crate::legacy::{LegacyError, LegacySession, LegacySink, Mirror, MirrorKind, MirrorPaths};
use crate::storage::{self, Database, Kind, NewEntry};
use crate::time::Usec;

/// Why a session write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// The daemon could not be reached, did not answer in time, or refused the write.
    #[error(transparent)]
    Daemon(#[from] crate::varlink::Error),
    /// The group commit took the write and could not complete it (see [`group`]).
    #[error("{0}")]
    Group(String),
    /// The other session writes of this process on the same database took the whole bound.
    #[error("Gave up after {waited_ms} ms waiting for other logins of this process")]
    QueueTimeout { waited_ms: u64 },
    /// The database was busy, and the spool could not take the write either.
    #[error("{busy}; and the spool failed: {spool}")]
    Spool {
        busy: Box<Error>,
        spool: spool::SpoolError,
    },
    /// The database's log is over its bound and cannot be reset now (a reader holds it):
    /// the record is not appended to it (see [`FileWriter`]).
    #[error("{0}")]
    LogHeld(storage::HeldLog),
    /// A logout of a spooled login that is not merged yet must follow it into the spool
    /// (the database itself was free), and the spool could not take it.
    #[error(
        "the login (spool token {token}) is not in the database yet, and the spool could not \
         keep its logout: {spool}"
    )]
    Unmerged {
        token: i64,
        spool: spool::SpoolError,
    },
}

impl Error {
    /// The lock of another process that kept writers out, when the storage saw one.
    fn foreign_lock(&self) -> Option<storage::ForeignLock> {
        match self {
            Error::Storage(e) => e.foreign_lock(),
            _ => None,
        }
    }

    /// Whether the database itself could not take the write (corrupt, not a database, an
    /// I/O error, a full disk, truncated under the write: see
    /// [`storage::Error::is_damaged`]): waiting does not help; the record goes to the spool,
    /// as for a busy database, and is merged once the database can be written again.
    fn is_damaged(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_damaged())
    }

    /// Whether the record goes to the spool: the database was busy or damaged.
    fn spools(&self) -> bool {
        self.is_busy() || self.is_damaged()
    }

    /// Whether waiting longer might have helped: the database's lock was not free in time.
    fn is_busy(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_locked(),
            Error::QueueTimeout { .. } | Error::LogHeld(_) => true,
            Error::Spool { .. } | Error::Unmerged { .. } | Error::Daemon(_) | Error::Group(_) => {
                false
            }
        }
    }
}

/// A session about to start, as a server describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub user: &'a str,
    /// The terminal, with or without `/dev/`.
    pub tty: Option<&'a str>,
    /// Remote host name or address (or X display).
    pub host: Option<&'a str>,
    /// The service name, e.g. the server's name.
    pub service: Option<&'a str>,
    /// The process that serves the session (`ut_pid`); `None` means this process.
    pub pid: Option<i32>,
}

impl NewSession<'_> {
    /// The items in their stored form.
    pub fn items(&self) -> SessionItems {
        SessionItems::from_bytes(
            self.user.as_bytes(),
            self.tty.map(str::as_bytes),
            self.host.map(str::as_bytes),
            self.service.map(str::as_bytes),
        )
    }

    fn pid(&self) -> i32 {
        self.pid.unwrap_or_else(this_process)
    }
}

/// This process's ID, the default `ut_pid`.
pub fn this_process() -> i32 {
    std::process::id() as i32
}

/// A recorded, open session. Everything needed to close it, also from another process
/// (the fields are public so a server can persist them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The database row, or the spool token of a login that went to the spool (its row
    /// does not exist yet; the token will find it).
    pub id: SessionId,
    pub login: Usec,
    /// What the legacy records say, repeated at logout.
    pub legacy: LegacySession,
}

impl Session {
    /// The spool token of a login that went to the spool (see [`spool`]).
    pub fn spooled(&self) -> Option<spool::Token> {
        self.id.spooled()
    }
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

impl SessionItems {
    /// The row of a session that logs in at `at` with these items: what the session writer,
    /// the spool's merge and the daemon's group commit all insert.
    pub fn login_entry(&self, at: Usec) -> NewEntry<'_> {
        NewEntry {
            kind: Kind::UserProcess,
            user: &self.user,
            login: at,
            logout: None,
            tty: Some(&self.tty),
            host: self.host.as_deref(),
            service: self.service.as_deref(),
        }
    }

    /// The legacy utmp/wtmp record of this session, served by process `pid`.
    pub fn legacy(&self, pid: i32) -> LegacySession {
        LegacySession::new(
            &self.user,
            Some(&self.tty),
            self.host.as_deref(),
            self.service.as_deref(),
            pid,
        )
    }
}

/// The row of a login; callers mirror it afterwards, and only if this succeeded (the order
/// of the rule).
fn record_login(
    db: &Database,
    items: &SessionItems,
    pid: i32,
    at: Usec,
) -> storage::Result<Session> {
    let id = db.login_with_process(
        &items.login_entry(at),
        &crate::process::Process::current(pid),
    )?;
    Ok(Session {
        id: SessionId::Row(id),
        login: at,
        legacy: items.legacy(pid),
    })
}

/// Records the start of a session at `at` (usually [`crate::time::now`]) on `db`, mirrored
/// to `mirror`.
pub fn open_session(
    db: &Database,
    mirror: &dyn LegacySink,
    new: &NewSession<'_>,
    at: Usec,
) -> storage::Result<Opened> {
    let session = record_login(db, &new.items(), new.pid(), at)?;
    let warning = mirror.login(&session.legacy, at).err();
    Ok(Opened { session, warning })
}

/// Records the end of `session` at `at`. `Ok(Some(_))` is a legacy-mirror warning.
pub fn close_session(
    db: &Database,
    mirror: &dyn LegacySink,
    session: &Session,
    at: Usec,
) -> Result<Option<LegacyError>, CloseError> {
    let stored = match session.id {
        SessionId::Row(id) => db.logout(id, at),
        SessionId::Spooled(t) => match db.spooled_row(t.0) {
            Ok(Some(id)) => db.logout(id, at),
            Ok(None) => Err(storage::Error::LogoutRows(0)),
            Err(e) => Err(e),
        },
    };
    // The logout is mirrored whatever the database did: the session has ended either way.
    let warning = mirror.logout(&session.legacy, at).err();
    match stored {
        Ok(()) => Ok(warning),
        Err(source) => Err(CloseError { source, warning }),
    }
}

/// What became of a call's legacy records.
#[derive(Debug)]
pub enum Mirrored {
    /// No mirror configured (`none`), or nothing to mirror (the login row was not written).
    Off,
    /// Written by the named mirror.
    Done { mirror: &'static str },
    /// The named mirror failed; the database row is unaffected.
    Failed {
        mirror: &'static str,
        error: LegacyError,
    },
    /// The mirror could not be set up (e.g. `utmpx` without glibc); nothing was written.
    Unavailable(LegacyError),
}

/// Which row a logout closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseTarget {
    /// The session the login returned. With its [`Identity`] (a caller that kept what the
    /// login wrote: the PAM module, a daemon client that sends it), the row is closed only
    /// if it is still that session; when it is another (the file was renamed and created
    /// anew, its log was lost), [`CloseTarget::Lookup`] applies instead and the mismatch is
    /// reported in [`Closed::mismatch`]. Without one (the C library's `wtmpdb_logout`, the
    /// daemon's `Logout`: an ID is all they carry), the row with that ID is closed.
    Id(SessionId, Option<Identity>),
    /// The login's ID was lost (a close in another process or handle): the newest open row
    /// of the same user, tty and service, if exactly one matches.
    Lookup,
}

/// What a logout did to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowClosed {
    /// The row with this ID is closed (also when it already was: closing twice is harmless).
    ById(i64),
    /// [`CloseTarget::Lookup`] found exactly this open row and closed it.
    ByLookup(i64),
    /// [`CloseTarget::Lookup`] without a user: nothing to look for.
    NoUser,
    /// [`CloseTarget::Lookup`] found no open row.
    NotFound,
    /// [`CloseTarget::Lookup`] found several open rows and closed none.
    Ambiguous,
    /// The database was busy: the logout went to the spool (its path), to be merged by the
    /// next writer.
    Spooled(PathBuf),
}

/// A logout by ID found another session's row under the ID (see [`CloseTarget::Id`]): that
/// row was left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub id: i64,
    /// The row that has the ID now: its user, tty and login time.
    pub user: String,
    pub tty: String,
    pub login: Usec,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {} is now another session (user '{}', tty '{}', login {}): the file was \
             replaced since the login; left alone",
            self.id,
            crate::escape::for_terminal(&self.user),
            crate::escape::for_terminal(&self.tty),
            self.login
        )
    }
}

/// A logout whose row could not be closed.
#[derive(Debug, thiserror::Error)]
pub struct CloseRowError {
    /// The row whose logout failed; None when the failure came before (the turn, the open,
    /// the lookup).
    pub id: Option<i64>,
    #[source]
    pub error: Error,
}

impl std::fmt::Display for CloseRowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            Some(id) => write!(f, "Closing session {id}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// Where a record went: the daemon, or the file directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Daemon,
    File,
}

/// The result of a login ([`FileWriter::open`], [`crate::writer::Writer::open`]).
#[derive(Debug)]
pub struct Logged {
    pub session: Session,
    /// Where the login was recorded: its logout goes there too.
    pub via: Via,
    pub mirrored: Mirrored,
    /// Set when the database was busy and the login went to the spool (its path).
    pub spooled: Option<PathBuf>,
    /// When the login was spooled at once: the lock of another process that shut writers
    /// out (see `bounded::busy`).
    pub shut_out: Option<storage::ForeignLock>,
    /// What merging the spool did after the write, if there was a spool to merge.
    pub merged: Option<Result<spool::Merged, spool::MergeError>>,
    /// See [`Unwritable`].
    pub unwritable: Unwritable,
}

/// What a write found wrong with the database itself (not its lock), for the caller to
/// log: nothing on the usual path.
#[derive(Debug, Default)]
pub struct Unwritable {
    /// The database could not take the record (see `Error::is_damaged`: corrupt, not a
    /// database, truncated under the write...): what SQLite said. The record went to the
    /// spool (`spooled`, `RowClosed::Spooled`) unless the spool failed too.
    pub damaged: Option<String>,
    /// The log beside the file was another database's (see
    /// [`storage::set_aside_foreign_log`]): set aside under this name, and the write done
    /// again.
    pub log_set_aside: Option<PathBuf>,
    /// The disk was full: the record went into a slot of the spool's reserve (see
    /// [`spool::reserve`]), which holds this many slots now.
    pub reserve_left: Option<usize>,
}

impl Unwritable {
    /// The line to log when the record went into a slot of the spool's reserve.
    pub fn reserve_line(&self) -> Option<String> {
        let left = self.reserve_left?;
        let empty = if left == 0 {
            "; the reserve is empty: while the disk stays full, the next record is lost"
        } else {
            ""
        };
        Some(format!(
            "disk full: record spooled into the reserve, {left} slots left{empty}"
        ))
    }
}

/// The result of [`FileWriter::close`]: the row and the mirror each report on their own.
#[derive(Debug)]
pub struct Closed {
    pub row: Result<RowClosed, CloseRowError>,
    pub mirrored: Mirrored,
    /// The legacy session the logout was mirrored as.
    pub legacy: LegacySession,
    /// What merging the spool did after the write, if there was a spool to merge.
    pub merged: Option<Result<spool::Merged, spool::MergeError>>,
    /// The row under the logout's ID was another session's (see [`CloseTarget::Id`]).
    pub mismatch: Option<Mismatch>,
    /// See [`Unwritable`].
    pub unwritable: Unwritable,
}

/// What a write that found the log beside the database another database's leaves of its
/// bound for writing again and, failing that, spooling the record.
const FOREIGN_LOG_SPARE: std::time::Duration = std::time::Duration::from_millis(300);

/// The bounded writer of sessions into one database file: opens a connection per call (no
/// state outlives a call but the per-process turn queue, which holds only whose turn it
/// is), and bounds all of a call's waiting by [`LOCK_WAIT`].
#[derive(Clone, Debug)]
pub struct FileWriter {
    database: PathBuf,
    mirror: MirrorKind,
    mirror_paths: MirrorPaths,
    events: crate::journal::Events,
}

impl FileWriter {
    /// A writer into `database` without legacy mirror.
    pub fn new(database: impl Into<PathBuf>) -> FileWriter {
        FileWriter {
            database: database.into(),
            mirror: MirrorKind::None,
            mirror_paths: MirrorPaths::default(),
            events: crate::journal::Events::default(),
        }
    }

    /// Sends the journal events of what it writes as `events` says (see [`crate::journal`]).
    pub fn events(mut self, events: crate::journal::Events) -> FileWriter {
        self.events = events;
        self
    }

    /// Mirrors sessions to `kind` at `paths` (whose timeout is replaced per call by what
    /// is left of the bound).
    pub fn mirror(mut self, kind: MirrorKind, paths: MirrorPaths) -> FileWriter {
        self.mirror = kind;
        self.mirror_paths = paths;
        self
    }

    pub fn database(&self) -> &Path {
        &self.database
    }

    /// Writes one row that is not a session's (a boot, a run level) with the bound of a
    /// session write: its turn, SQLite's lock, no index build on a large upstream file; when
    /// the lock is not free in time, into the spool, as a login (the row then exists once
    /// merged, and the returned ID is its token).
    pub fn write_row(&self, entry: &NewEntry<'_>) -> Result<SessionId, Error> {
        let deadline = bounded::Deadline::start();
        let write = || -> Result<SessionId, Error> {
            let _turn = deadline.turn(&self.database)?;
            self.log_may_grow(&deadline)?;
            let mut db = bounded::open(&self.database)?;
            let id = db.login(entry)?;
            self.events.new_row(id, entry, db.file(), None);
            // The spool's records were written before this row: merged now (a failure
            // leaves them for the next write, as after a session's write).
            let _ = merge_after(&mut db, &self.events);
            Ok(SessionId::Row(id))
        };
        let (written, _) = self.write_past_a_foreign_log(&deadline, |e| e, write);
        match written {
            Err(busy) if busy.spools() => {
                match self.spool_new(spool::row_record(entry)) {
                    Ok((token, _)) => Ok(SessionId::Spooled(token)),
                    // Waiting does not help a damaged database.
                    Err(spool) if busy.is_damaged() => Err(Error::Spool {
                        busy: Box::new(busy),
                        spool,
                    }),
                    // No spool this writer may use: wait for the rest of the bound instead.
                    Err(spool) => {
                        deadline.wait_to_the_end();
                        write().map_err(|e| Error::Spool {
                            busy: Box::new(e),
                            spool,
                        })
                    }
                }
            }
            other => other,
        }
    }

    /// Whether this call may append to the database's log: an error (which spools the
    /// record, as a busy database does) when the log is over
    /// [`storage::WalSettings::LOG_CAP_BYTES`] and cannot be reset now. A reader that holds
    /// a read transaction keeps every checkpoint from resetting the log; appending, each
    /// session would add its pages (some 34 KB) for as long as the reader lasts, and each
    /// connection, when the reader cannot attach to the index (read-only), would read the
    /// whole log to rebuild it. A record in the spool costs one small synced file whatever
    /// the log, and the spool is merged once the log can be reset: by the first write that
    /// finds it so (this check resets it), by root's readers, by the daemon.
    ///
    /// Under the bound: one `stat`. Over it: a read-only reader that is not attached to the
    /// index, seen in `/proc/locks`, decides without opening the database (opening it would
    /// read the whole log); otherwise a checkpoint does: the log may grow when it copied
    /// every frame (another writer's transaction, such as an import's, pins nothing).
    fn log_may_grow(&self, deadline: &bounded::Deadline) -> Result<(), Error> {
        if !deadline.may_spool() {
            // No spool this call may use: into the log, as before there was a bound.
            return Ok(());
        }
        let Some(log) = storage::log_over_cap(&self.database) else {
            return Ok(());
        };
        if let Some(held) = storage::held_log(&self.database, &log) {
            return Err(Error::LogHeld(held));
        }
        if bounded::open(&self.database)?.log_may_grow() {
            return Ok(());
        }
        Err(Error::LogHeld(storage::HeldLog {
            size: log.len(),
            holder: None,
        }))
    }

    /// After a write that failed as malformed (see [`storage::Error::is_malformed`]): sets
    /// the log beside the database aside when it is another database's (see
    /// [`storage::set_aside_foreign_log`]), so that the caller writes again. Its new name,
    /// or None (nothing done: the record then goes to the spool). Only on that failure,
    /// never on the usual path.
    fn set_aside_foreign_log(&self, e: &Error, deadline: &bounded::Deadline) -> Option<PathBuf> {
        match e {
            Error::Storage(s) if s.is_malformed() => {
                // Within the call's bound, leaving time to spool the record.
                let until = deadline.all - FOREIGN_LOG_SPARE;
                storage::set_aside_foreign_log(&self.database, until)
                    .ok()
                    .flatten()
            }
            _ => None,
        }
    }

    /// Runs `write`, and once more when it failed on another database's log, which
    /// [`FileWriter::set_aside_foreign_log`] then set aside (`error` reads the failure):
    /// the outcome, and the log's new name when it was set aside.
    fn write_past_a_foreign_log<T, E>(
        &self,
        deadline: &bounded::Deadline,
        error: impl Fn(&E) -> &Error,
        mut write: impl FnMut() -> Result<T, E>,
    ) -> (Result<T, E>, Option<PathBuf>) {
        let written = write();
        let set_aside = match &written {
            Err(e) => self.set_aside_foreign_log(error(e), deadline),
            Ok(_) => None,
        };
        match set_aside {
            Some(log) => (write(), Some(log)),
            None => (written, None),
        }
    }

    /// Writes a record just drawn (with its token) into the spool: its token and its file.
    fn spool_new(
        &self,
        drawn: std::io::Result<spool::Record>,
    ) -> Result<(spool::Token, spool::Spooled), spool::SpoolError> {
        let record = drawn.map_err(|e| spool::SpoolError::Io {
            dir: spool::spool_dir(&self.database),
            what: "cannot draw a token",
            source: e,
        })?;
        let token = record.token().expect("a record drawn with a token");
        spool::put_record(&self.database, &record).map(|spooled| (token, spooled))
    }

    /// The journal event of a login this writer wrote.
    fn login_event(
        &self,
        db: &Database,
        session: &Session,
        items: &SessionItems,
        pid: i32,
        at: Usec,
    ) {
        if let SessionId::Row(id) = session.id {
            self.events
                .new_row(id, &items.login_entry(at), db.file(), Some(pid.into()));
        }
    }

    /// The journal event of the logout of row `id` this writer just wrote.
    fn logout_event(&self, db: &Database, id: i64, pid: i32) {
        if self.events.enabled {
            if let Ok(Some(entry)) = db.row(id) {
                self.events
                    .row(&entry, true, db.file(), false, Some(pid.into()));
            }
        }
    }

    fn mirror_with(
        &self,
        deadline: &bounded::Deadline,
        write: impl FnOnce(&dyn LegacySink) -> Result<(), LegacyError>,
    ) -> Mirrored {
        mirror_within(self.mirror, &self.mirror_paths, deadline, write)
    }

    /// Records the start of a session at `at`, served by process `pid`: in the database, or
    /// in its spool when the database's lock is not free in time (see [`spool`]).
    pub fn open(&self, items: &SessionItems, pid: i32, at: Usec) -> Result<Logged, Error> {
        let deadline = bounded::Deadline::start();
        let write = || -> Result<_, Error> {
            let _turn = deadline.turn(&self.database)?;
            self.log_may_grow(&deadline)?;
            let mut db = bounded::open(&self.database)?;
            let session = record_login(&db, items, pid, at)?;
            self.login_event(&db, &session, items, pid, at);
            Ok((session, merge_after(&mut db, &self.events)))
        };
        let mut unwritable = Unwritable::default();
        let (written, set_aside) = self.write_past_a_foreign_log(&deadline, |e| e, write);
        unwritable.log_set_aside = set_aside;
        let mut shut_out = None;
        let (session, spooled, merged) = match written {
            Ok((session, merged)) => (session, None, merged),
            Err(busy) if busy.spools() => {
                shut_out = bounded::shut_out_by().or_else(|| busy.foreign_lock());
                if busy.is_damaged() {
                    unwritable.damaged = Some(busy.to_string());
                }
                match self.spool_new(spool::login_record(items, at)) {
                    Ok((token, spooled)) => {
                        let session = Session {
                            id: SessionId::Spooled(token),
                            login: at,
                            legacy: items.legacy(pid),
                        };
                        unwritable.reserve_left = spooled.reserve_left;
                        (session, Some(spooled.path), None)
                    }
                    // Waiting does not help a damaged database.
                    Err(spool) if busy.is_damaged() => {
                        return Err(Error::Spool {
                            busy: Box::new(busy),
                            spool,
                        });
                    }
                    // No spool this writer may use: wait for the database for the rest of
                    // the bound instead, as before there was a spool.
                    Err(spool) => {
                        deadline.wait_to_the_end();
                        let retried = (|| -> Result<_, Error> {
                            let mut db = bounded::open(&self.database)?;
                            let session = record_login(&db, items, pid, at)?;
                            self.login_event(&db, &session, items, pid, at);
                            Ok((session, merge_after(&mut db, &self.events)))
                        })();
                        match retried {
                            Ok((session, merged)) => (session, None, merged),
                            Err(e) => {
                                return Err(Error::Spool {
                                    busy: Box::new(e),
                                    spool,
                                });
                            }
                        }
                    }
                }
            }
            Err(e) => return Err(e),
        };
        // Mirrored after the row is written and the database released.
        let mirrored = self.mirror_with(&deadline, |m| m.login(&session.legacy, at));
        Ok(Logged {
            session,
            via: Via::File,
            mirrored,
            shut_out: spooled.as_ref().and(shut_out),
            spooled,
            merged,
            unwritable,
        })
    }

    /// Records the end of a session at `at`: closes its row (by ID, or by lookup when the ID
    /// was lost), then mirrors the logout as process `pid`, whatever the row did.
    pub fn close(&self, target: CloseTarget, items: &SessionItems, pid: i32, at: Usec) -> Closed {
        let deadline = bounded::Deadline::start();
        let mut merged = None;
        let mut mismatch = None;
        let mut unwritable = Unwritable::default();
        let mut reserve_left = None;
        let (closed, set_aside) = self.write_past_a_foreign_log(
            &deadline,
            |e: &CloseRowError| &e.error,
            || {
                self.close_row(
                    &deadline,
                    &target,
                    items,
                    pid,
                    at,
                    &mut merged,
                    &mut mismatch,
                    &mut reserve_left,
                )
            },
        );
        unwritable.log_set_aside = set_aside;
        if let Err(e) = &closed {
            if e.error.is_damaged() {
                unwritable.damaged = Some(e.to_string());
            }
        }
        let row = match closed {
            // A lookup without a user looks for nothing, busy or not.
            Err(e)
                if e.error.spools() && target == CloseTarget::Lookup && items.user.is_empty() =>
            {
                Ok(RowClosed::NoUser)
            }
            Err(e) if e.error.spools() => {
                match self.spool_logout(&target, items, at) {
                    Ok(spooled) => {
                        reserve_left = spooled.reserve_left;
                        Ok(RowClosed::Spooled(spooled.path))
                    }
                    // Waiting does not help a damaged database.
                    Err(spool) if e.error.is_damaged() => Err(CloseRowError {
                        id: e.id,
                        error: Error::Spool {
                            busy: Box::new(e.error),
                            spool,
                        },
                    }),
                    // No spool: wait for the rest of the bound, as before there was one.
                    Err(spool) => {
                        deadline.wait_to_the_end();
                        let mut again = None;
                        let retried = self.close_row(
                            &deadline,
                            &target,
                            items,
                            pid,
                            at,
                            &mut again,
                            &mut mismatch,
                            &mut reserve_left,
                        );
                        if again.is_some() {
                            merged = again;
                        }
                        retried.map_err(|e| CloseRowError {
                            id: e.id,
                            error: Error::Spool {
                                busy: Box::new(e.error),
                                spool,
                            },
                        })
                    }
                }
            }
            other => other,
        };
        unwritable.reserve_left = reserve_left;
        let legacy = items.legacy(pid);
        let mirrored = self.mirror_with(&deadline, |m| m.logout(&legacy, at));
        Closed {
            row,
            mirrored,
            legacy,
            merged,
            mismatch,
            unwritable,
        }
    }

    /// Writes the logout of `target` into the spool.
    fn spool_logout(
        &self,
        target: &CloseTarget,
        items: &SessionItems,
        at: Usec,
    ) -> Result<spool::Spooled, spool::SpoolError> {
        let drawn = match target {
            CloseTarget::Id(SessionId::Row(row), Some(identity)) => {
                spool::checked_logout_record(*row, identity, items, at)
            }
            CloseTarget::Id(id, _) => {
                let of = match *id {
                    SessionId::Spooled(token) => spool::LogoutOf::Spooled(token),
                    SessionId::Row(id) => spool::LogoutOf::Row(id),
                };
                return spool::put_record(&self.database, &spool::Record::Logout { of, at });
            }
            CloseTarget::Lookup => spool::lookup_record(items, at),
        };
        self.spool_new(drawn).map(|(_, spooled)| spooled)
    }

    // The call's inputs (target, items, process, time) and its three reports (the merge,
    // a mismatch, the reserve's slots left) as the two callers in `close` hold them.
    #[allow(clippy::too_many_arguments)]
    fn close_row(
        &self,
        deadline: &bounded::Deadline,
        target: &CloseTarget,
        items: &SessionItems,
        pid: i32,
        at: Usec,
        merged: &mut Option<Result<spool::Merged, spool::MergeError>>,
        mismatch: &mut Option<Mismatch>,
        reserve_left: &mut Option<usize>,
    ) -> Result<RowClosed, CloseRowError> {
        let fail = |error: Error| CloseRowError { id: None, error };
        let _turn = deadline.turn(&self.database).map_err(fail)?;
        self.log_may_grow(deadline).map_err(fail)?;
        let mut db = bounded::open(&self.database).map_err(|e| fail(e.into()))?;
        if let CloseTarget::Id(id, identity) = target {
            let failed = |e: storage::Error| CloseRowError {
                id: Some(id.to_int()),
                error: e.into(),
            };
            // A login that went to the spool: its row, once merged (this merge may do it).
            let row = match *id {
                SessionId::Row(id) => Some(id),
                SessionId::Spooled(token) => {
                    *merged = merge_after(&mut db, &self.events);
                    db.spooled_row(token.0).map_err(failed)?
                }
            };
            let Some(row) = row else {
                // Not merged yet (left for a later merge, or another merger at work, or a
                // record that cannot be read is set aside): the logout follows it into the
                // spool.
                return self
                    .spool_logout(target, items, at)
                    .map(|spooled| {
                        *reserve_left = spooled.reserve_left;
                        RowClosed::Spooled(spooled.path)
                    })
                    .map_err(|spool| CloseRowError {
                        id: None,
                        error: Error::Unmerged {
                            token: id.spooled().map_or(0, |t| t.0),
                            spool,
                        },
                    });
            };
            // The session's identity, when the caller kept it: the row must still be that
            // session. A row that is gone or another's is left alone, and the lookup below
            // looks for the session instead.
            let same = match identity {
                None => true,
                Some(me) => match db.row(row).map_err(failed)? {
                    Some(r) if me.is(&r) => true,
                    Some(other) => {
                        *mismatch = Some(Mismatch {
                            id: row,
                            user: other.user,
                            tty: other.tty.unwrap_or_default(),
                            login: other.login,
                        });
                        false
                    }
                    None => false,
                },
            };
            if same {
                db.logout(row, at).map_err(failed)?;
                self.logout_event(&db, row, pid);
                if merged.is_none() {
                    *merged = merge_after(&mut db, &self.events);
                }
                return Ok(RowClosed::ById(row));
            }
        }
        // The session looked up: by the user and tty its login kept, when they are known
        // (the close's items may have changed since: a later module setting XDG_VTNR), as
        // the daemon looks it up.
        let kept;
        let items = match target {
            CloseTarget::Id(_, Some(me)) => {
                kept = SessionItems {
                    user: me.user.clone(),
                    tty: me.tty.clone(),
                    ..items.clone()
                };
                &kept
            }
            _ => items,
        };
        if items.user.is_empty() {
            return Ok(RowClosed::NoUser);
        }
        // A login that went to the spool has its row only once merged: merge first, so the
        // lookup finds it.
        *merged = merge_after(&mut db, &self.events);
        let pending = match merged {
            None => false,
            Some(Ok(m)) => m.left > 0,
            Some(Err(spool::MergeError::Storage(e))) => e.is_locked(),
            // A spool that cannot be read: the database decides as it is.
            Some(Err(spool::MergeError::Spool(_))) => false,
        };
        if pending {
            // Older records wait in the spool (beyond this merge's bound, another merger at
            // work, a merge the lock kept out): its login may be among them, so the logout
            // follows them there, and is merged after them. Without a spool to use, the
            // database decides as it is now.
            if let Ok(spooled) = self.spool_logout(&CloseTarget::Lookup, items, at) {
                *reserve_left = spooled.reserve_left;
                return Ok(RowClosed::Spooled(spooled.path));
            }
        }
        let service = items.service.as_deref().unwrap_or("");
        let found = db
            .open_sessions(&items.user, &items.tty, service, 2)
            .map_err(|e| fail(e.into()))?;
        match found.as_slice() {
            [id] => {
                db.logout(*id, at).map_err(|error| CloseRowError {
                    id: Some(*id),
                    error: error.into(),
                })?;
                self.logout_event(&db, *id, pid);
                Ok(RowClosed::ByLookup(*id))
            }
            [] => Ok(RowClosed::NotFound),
            _ => Ok(RowClosed::Ambiguous),
        }
    }
}

/// The newest session on `tty` without logout (upstream's `wtmpdb_get_id`), in `db` or
/// still waiting in its spool (a login spooled under a lock, not merged yet), whichever
/// logged in last.
pub fn newest_open_on_tty(db: &Database, tty: &str) -> storage::Result<Option<SessionId>> {
    let row = match db.newest_open_on_tty(tty)? {
        Some(id) => Some((id, db.row(id)?.map_or(Usec::MIN, |r| r.login))),
        None => None,
    };
    let pending = spool::pending_login_on_tty(db.file(), tty);
    Ok(match (row, pending) {
        (Some((_, login)), Some((token, at))) if at > login => Some(SessionId::Spooled(token)),
        (None, Some((token, _))) => Some(SessionId::Spooled(token)),
        (Some((id, _)), _) => Some(SessionId::Row(id)),
        (None, None) => None,
    })
}

/// Writes legacy records through the mirror `kind` at `paths`, each utmps exchange bounded
/// by what is left of `deadline`.
fn mirror_within(
    kind: MirrorKind,
    paths: &MirrorPaths,
    deadline: &bounded::Deadline,
    write: impl FnOnce(&dyn LegacySink) -> Result<(), LegacyError>,
) -> Mirrored {
    if kind == MirrorKind::None {
        return Mirrored::Off;
    }
    let paths = MirrorPaths {
        timeout: deadline.utmps_timeout(),
        ..paths.clone()
    };
    match Mirror::new(kind, &paths) {
        Ok(m) => {
            let mirror = m.name();
            match write(&m) {
                Ok(()) => Mirrored::Done { mirror },
                Err(error) => Mirrored::Failed { mirror, error },
            }
        }
        Err(e) => Mirrored::Unavailable(e),
    }
}

/// The legacy mirror of a record another writer (the daemon, the group committer) wrote:
/// the rule and bound of a session write's own mirror.
pub(crate) fn mirror_now(
    kind: MirrorKind,
    paths: &MirrorPaths,
    write: impl FnOnce(&dyn LegacySink) -> Result<(), LegacyError>,
) -> Mirrored {
    mirror_within(kind, paths, &bounded::Deadline::start(), write)
}

/// After a successful write: merges the spool, if there is one (None when there is
/// nothing to merge).
fn merge_after(
    db: &mut Database,
    events: &crate::journal::Events,
) -> Option<Result<spool::Merged, spool::MergeError>> {
    match spool::merge(db) {
        Ok(m) if m == spool::Merged::default() => None,
        Ok(m) => {
            events.merged(db, &m);
            Some(Ok(m))
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(user: &str, tty: Option<&str>) -> SessionItems {
        NewSession {
            user,
            tty,
            host: Some("192.0.2.1"),
            service: Some("svc"),
            pid: None,
        }
        .items()
    }

    #[test]
    fn the_writer_and_the_library_api_store_the_same_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        let a = w.open(&items("alice", None), 1, 10).unwrap();
        let db = Database::open_read_write(&path).unwrap();
        let b = open_session(
            &db,
            &crate::legacy::NoMirror,
            &NewSession {
                user: "alice",
                host: Some("192.0.2.1"),
                service: Some("svc"),
                ..NewSession::default()
            },
            20,
        )
        .unwrap();
        let rows: Vec<_> = db
            .entries(&Default::default())
            .map(Result::unwrap)
            .collect();
        let strip = |e: &storage::Entry| (e.user.clone(), e.tty.clone(), e.host.clone());
        assert_eq!(strip(&rows[0]), strip(&rows[1]));
        assert_eq!(rows[0].tty.as_deref(), Some(""));
        // So the lookup of a lost ID finds either; with two open it closes neither.
        let closed = w.close(CloseTarget::Lookup, &items("alice", None), 1, 30);
        assert_eq!(closed.row.unwrap(), RowClosed::Ambiguous);
        close_session(&db, &crate::legacy::NoMirror, &b.session, 40).unwrap();
        let closed = w.close(CloseTarget::Lookup, &items("alice", Some("/dev/")), 1, 50);
        assert_eq!(
            closed.row.unwrap(),
            RowClosed::ByLookup(a.session.id.to_int())
        );
        let closed = w.close(CloseTarget::Lookup, &items("alice", None), 1, 60);
        assert_eq!(closed.row.unwrap(), RowClosed::NotFound);
        assert!(matches!(closed.mirrored, Mirrored::Off));
        // A row that does not exist: the logout itself fails, and names the row.
        let err = w.close(
            CloseTarget::Id(SessionId::Row(99), None),
            &items("alice", None),
            1,
            70,
        );
        let err = err.row.unwrap_err();
        assert_eq!(err.id, Some(99));
        assert!(err.to_string().starts_with("Closing session 99: "), "{err}");
    }

    /// Issue 16: a logout by ID closed whatever row had that ID. After the file was renamed
    /// and created anew (logrotate), alice's logout closed bob's live session, which had
    /// her ID in the new file. With her session's identity it is left alone, the lookup
    /// rule looks for her session instead (none here), and the mismatch is reported.
    #[test]
    fn a_logout_by_id_leaves_another_sessions_row_with_that_id_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        let alice = items("alice", Some("pts/1"));
        let a = w.open(&alice, 1, 10).unwrap();
        std::fs::rename(&path, dir.path().join("w.db.1")).unwrap();
        let bob = items("bob", Some("pts/2"));
        let b = w.open(&bob, 1, 20).unwrap();
        assert_eq!(a.session.id, b.session.id);
        let identity = |it: &SessionItems, login| Identity {
            user: it.user.clone(),
            tty: it.tty.clone(),
            login,
        };
        let closed = w.close(
            CloseTarget::Id(a.session.id, Some(identity(&alice, 10))),
            &alice,
            1,
            30,
        );
        assert_eq!(closed.row.unwrap(), RowClosed::NotFound);
        let m = closed.mismatch.unwrap();
        assert_eq!((m.user.as_str(), m.login), ("bob", 20));
        assert!(m.to_string().contains("another session"), "{m}");
        assert_eq!(times(&path, "bob"), [(Some("pts/2".to_string()), 20, None)]);
        // Bob's own logout, with his identity, closes his row.
        let closed = w.close(
            CloseTarget::Id(b.session.id, Some(identity(&bob, 20))),
            &bob,
            1,
            40,
        );
        assert_eq!(closed.row.unwrap(), RowClosed::ById(b.session.id.to_int()));
        assert!(closed.mismatch.is_none());
        assert_eq!(
            times(&path, "bob"),
            [(Some("pts/2".to_string()), 20, Some(40))]
        );
    }

    /// The same when the logout had to wait in the spool (the database was locked), and
    /// the file was renamed and created anew before the spool was merged: the merge checks
    /// the identity too, and bob's row with alice's ID stays open.
    #[test]
    fn a_spooled_logout_by_id_leaves_another_sessions_row_with_that_id_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        let alice = items("alice", Some("pts/1"));
        let a = w.open(&alice, 1, 10).unwrap();
        let held = busy(&path);
        let me = Identity {
            user: alice.user.clone(),
            tty: alice.tty.clone(),
            login: 10,
        };
        let closed = w.close(CloseTarget::Id(a.session.id, Some(me)), &alice, 1, 30);
        assert!(
            matches!(closed.row, Ok(RowClosed::Spooled(_))),
            "{:?}",
            closed.row
        );
        drop(held);
        std::fs::rename(&path, dir.path().join("w.db.1")).unwrap();
        let bob = items("bob", Some("pts/2"));
        let b = w.open(&bob, 1, 40).unwrap();
        assert_eq!(a.session.id, b.session.id);
        let merged = b.merged.unwrap().unwrap();
        assert_eq!((merged.logouts, merged.unmatched), (1, 1), "{merged:?}");
        assert_eq!(times(&path, "bob"), [(Some("pts/2".to_string()), 40, None)]);
    }

    /// A row that is not a session's (a boot) is not lost to a lock either: it waits in the
    /// spool, and the next write merges it, exactly as given.
    #[test]
    fn a_boot_row_while_the_database_is_busy_is_spooled_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("alice", Some("pts/1")), 1, 10).unwrap();
        let boot = NewEntry {
            kind: Kind::BootTime,
            user: "reboot",
            login: 4_354_819_200_000_000,
            tty: Some("~"),
            host: Some("6.1.0"),
            ..NewEntry::default()
        };
        let held = busy(&path);
        let id = w.write_row(&boot).unwrap();
        assert!(
            id.spooled().is_some() && id.to_int() >= SPOOLED_MIN,
            "{id:?}"
        );
        drop(held);
        let merged = w.open(&items("bob", None), 1, 30).unwrap().merged;
        assert_eq!(merged.unwrap().unwrap().logins, 1);
        let db = Database::open_read_only(&path).unwrap();
        let rows: Vec<_> = db
            .entries(&Default::default())
            .map(Result::unwrap)
            .filter(|r| r.kind == Kind::BootTime)
            .map(|r| (r.user, r.login, r.tty, r.host, r.service))
            .collect();
        assert_eq!(
            rows,
            [(
                "reboot".to_string(),
                4_354_819_200_000_000,
                Some("~".to_string()),
                Some("6.1.0".to_string()),
                None
            )]
        );
        // Written live when the database is free.
        assert!(matches!(w.write_row(&boot).unwrap(), SessionId::Row(_)));
    }

    /// Regression: the stored tty loses one `/dev/`; the legacy line, as before the session
    /// rule was shared, loses a second one that PAM_TTY may still carry.
    #[test]
    fn the_legacy_line_loses_a_dev_prefix_left_in_the_stored_tty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let it = items("carol", Some("/dev//dev/pts/4"));
        assert_eq!(it.tty, "/dev/pts/4");
        let w = FileWriter::new(&path);
        let logged = w.open(&it, 1, 10).unwrap();
        assert_eq!(logged.session.legacy.line, "pts/4");
        let closed = w.close(CloseTarget::Id(logged.session.id, None), &it, 1, 20);
        assert_eq!(closed.legacy.line, "pts/4");
        let db = Database::open_read_write(&path).unwrap();
        let new = NewSession {
            user: "carol",
            tty: Some("/dev//dev/pts/4"),
            ..NewSession::default()
        };
        let opened = open_session(&db, &crate::legacy::NoMirror, &new, 30).unwrap();
        assert_eq!(opened.session.legacy.line, "pts/4");
    }

    /// Without a spool it may use (here its name is taken by a file), a session write waits
    /// for the lock for the whole bound as before: a lock released after 300 ms still lets it
    /// through, one held for good fails it after the bound, naming both failures.
    #[test]
    fn without_a_usable_spool_a_write_waits_the_whole_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("alice", Some("pts/1")), 1, 10).unwrap();
        std::fs::write(spool::spool_dir(&path), b"not a directory").unwrap();
        let hold = |ms: u64| {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("BEGIN EXCLUSIVE").unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                drop(c);
            })
        };
        let held = hold(300);
        let t = std::time::Instant::now();
        let logged = w.open(&items("bob", Some("pts/2")), 1, 20).unwrap();
        assert!(logged.spooled.is_none());
        assert!(t.elapsed() >= std::time::Duration::from_millis(250));
        held.join().unwrap();
        let held = hold(1500);
        let t = std::time::Instant::now();
        let err = w.open(&items("carol", Some("pts/3")), 1, 30).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_millis(1400));
        let text = err.to_string();
        assert!(
            text.contains("database is locked") && text.contains("spool"),
            "{text}"
        );
        held.join().unwrap();
        let db = Database::open_read_only(&path).unwrap();
        assert_eq!(db.entries(&Default::default()).count(), 2);
    }

    /// A database of another history than `path`'s (2,000 rows of its own, other pages),
    /// as a backup put back in its place would be.
    fn another_database(path: &Path) {
        let mut db = Database::open_read_write(path).unwrap();
        let rows = (0..2000).map(|i| NewEntry {
            kind: Kind::UserProcess,
            user: "old",
            login: i,
            logout: Some(i + 1),
            tty: Some("pts/9"),
            ..NewEntry::default()
        });
        db.insert_all(rows, |_| {}).unwrap();
        assert!(db.checkpoint_now());
    }

    /// A database file whose first page was zeroed (what logrotate's `copytruncate` left
    /// under a writer): the login and its logout go to the spool, each call reporting why,
    /// the file is left as it is, and once it is moved aside the next write starts a new
    /// file and merges them (the logout by the login's token). Before, both failed and the
    /// session was lost.
    #[test]
    fn a_damaged_database_spools_and_the_spool_is_merged_once_it_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("alice", Some("pts/1")), 1, 10).unwrap();
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&[0u8; 4096], 0).unwrap();
        }
        let bad = std::fs::read(&path).unwrap();
        let bob = items("bob", Some("pts/2"));
        let logged = w.open(&bob, 1, 20).unwrap();
        assert!(logged.spooled.is_some(), "{logged:?}");
        let why = logged.unwritable.damaged.as_deref().unwrap_or_default();
        assert!(why.contains("not a database"), "{why}");
        let closed = w.close(CloseTarget::Id(logged.session.id, None), &bob, 1, 30);
        assert!(
            matches!(closed.row, Ok(RowClosed::Spooled(_))),
            "{:?}",
            closed.row
        );
        assert!(closed.unwritable.damaged.is_some());
        // A boot row too.
        let boot = NewEntry {
            kind: Kind::BootTime,
            user: "reboot",
            login: 25,
            tty: Some("~"),
            ..NewEntry::default()
        };
        assert!(w.write_row(&boot).unwrap().spooled().is_some());
        assert_eq!(std::fs::read(&path).unwrap(), bad, "left as it is");
        for suffix in ["", "-wal", "-shm"] {
            let from = dir.path().join(format!("w.db{suffix}"));
            if from.exists() {
                std::fs::rename(&from, dir.path().join(format!("bad.db{suffix}"))).unwrap();
            }
        }
        let logged = w.open(&items("carol", None), 1, 40).unwrap();
        let merged = logged.merged.unwrap().unwrap();
        assert_eq!((merged.logins, merged.logouts), (2, 1), "{merged:?}");
        assert_eq!(
            times(&path, "bob"),
            [(Some("pts/2".to_string()), 20, Some(30))]
        );
        assert_eq!(times(&path, "reboot").len(), 1);
        assert_eq!(times(&path, "carol").len(), 1);
    }

    /// A reader held the log (its read transaction pins the commits after it) when the
    /// admin renamed the file and put a backup in its place: the log stayed beside the
    /// name, and every direct write read its frames over the backup's pages and failed
    /// ("database disk image is malformed"). Now the first write that fails so sets the log
    /// aside (the backup alone is sound, and malformed only through that log) and writes
    /// again; the log, beside the renamed file, gives back its commits.
    #[test]
    fn a_log_left_beside_another_database_is_set_aside_and_the_write_goes_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("alice", Some("pts/1")), 1, 10).unwrap();
        let backup = dir.path().join("backup.db");
        another_database(&backup);
        let reader = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM wtmp", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        for i in 0..5 {
            let bob = items("bob", Some("pts/2"));
            let l = w.open(&bob, 1, 20 + i).unwrap();
            assert!(l.spooled.is_none());
        }
        let log = storage::files::side_file(&path, "-wal");
        assert!(storage::log_may_hold_frames(&log), "the reader pins them");
        std::fs::rename(&path, dir.path().join("old.db")).unwrap();
        std::fs::copy(&backup, &path).unwrap();
        let carol = items("carol", Some("pts/3"));
        let logged = w.open(&carol, 1, 100).unwrap();
        assert!(logged.spooled.is_none(), "{logged:?}");
        let kept = logged.unwritable.log_set_aside.expect("the log set aside");
        assert!(kept.exists(), "{kept:?}");
        let closed = w.close(CloseTarget::Id(logged.session.id, None), &carol, 1, 110);
        assert!(
            matches!(closed.row, Ok(RowClosed::ById(_))),
            "{:?}",
            closed.row
        );
        assert_eq!(
            times(&path, "carol"),
            [(Some("pts/3".to_string()), 100, Some(110))]
        );
        assert_eq!(times(&path, "old").len(), 2000);
        drop(reader);
        // The renamed file with the kept log as its own: the pinned commits are back.
        let back = tempfile::tempdir().unwrap();
        let r = back.path().join("r.db");
        std::fs::copy(dir.path().join("old.db"), &r).unwrap();
        std::fs::copy(&kept, storage::files::side_file(&r, "-wal")).unwrap();
        assert_eq!(times(&r, "bob").len(), 5);
    }

    /// Holds SQLite's write lock on `path` until the returned connection is dropped.
    fn busy(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        c
    }

    fn times(path: &Path, user: &str) -> Vec<(Option<String>, Usec, Option<Usec>)> {
        let db = Database::open_read_only(path).unwrap();
        let mut t: Vec<_> = db
            .entries(&Default::default())
            .map(Result::unwrap)
            .filter(|r| r.user == user)
            .map(|r| (r.tty, r.login, r.logout))
            .collect();
        t.sort_by_key(|r| r.1);
        t
    }

    /// Regression (issue 8): a logout by lookup (the login's ID lost: a close in another
    /// process) while the database was busy failed and was lost; only logouts by ID were
    /// spooled. Now it is spooled too, and the merge closes the session it ended, in order:
    /// one logged in live before, one whose login was spooled before it; not a login on the
    /// same tty written live after the database came free.
    #[test]
    fn a_logout_by_lookup_while_the_database_is_busy_is_spooled_and_merged_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        let pts1 = items("alice", Some("pts/1"));
        let pts2 = items("alice", Some("pts/2"));
        w.open(&pts1, 1, 10).unwrap();
        let held = busy(&path);
        let closed = w.close(CloseTarget::Lookup, &pts1, 1, 20);
        assert!(
            matches!(closed.row, Ok(RowClosed::Spooled(_))),
            "{:?}",
            closed.row
        );
        let logged = w.open(&pts2, 1, 30).unwrap();
        assert!(logged.spooled.is_some());
        let closed = w.close(CloseTarget::Lookup, &pts2, 1, 40);
        assert!(
            matches!(closed.row, Ok(RowClosed::Spooled(_))),
            "{:?}",
            closed.row
        );
        // Without a user there is nothing to look for, busy or not.
        let closed = w.close(CloseTarget::Lookup, &items("", Some("pts/1")), 1, 45);
        assert_eq!(closed.row.unwrap(), RowClosed::NoUser);
        drop(held);
        // The user logs in again on pts/1: written live, then the spool is merged.
        let logged = w.open(&pts1, 1, 55).unwrap();
        let merged = logged.merged.unwrap().unwrap();
        assert_eq!((merged.logins, merged.logouts), (1, 2), "{merged:?}");
        let tty = |t: &str| Some(t.to_string());
        assert_eq!(
            times(&path, "alice"),
            [
                (tty("pts/1"), 10, Some(20)),
                (tty("pts/2"), 30, Some(40)),
                (tty("pts/1"), 55, None)
            ]
        );
    }

    /// Issue 8: a merge takes a bounded part of a large spool; a logout by lookup whose
    /// login is still among the records left must not look before it is merged (it would
    /// find nothing, and the login, merged later, would stay open): it follows them into the
    /// spool, and a later write merges it after its login.
    #[test]
    fn a_lookup_logout_behind_a_large_spool_waits_for_its_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("bob", Some("pts/0")), 1, 1).unwrap();
        let spool = spool::spool_dir(&path);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&spool)
                .unwrap();
        }
        let n = spool::MERGE_MAX_RECORDS + 50;
        for i in 0..=n {
            let who = if i == n { "alice" } else { "bob" };
            let r = spool::login_record(&items(who, Some("pts/9")), 100 + i as Usec).unwrap();
            let name = format!("{i:020}-{i:019}-login");
            std::fs::write(spool.join(name), spool::encode(&r)).unwrap();
        }
        let alice = items("alice", Some("pts/9"));
        let closed = w.close(CloseTarget::Lookup, &alice, 1, 10_000);
        assert!(
            matches!(closed.row, Ok(RowClosed::Spooled(_))),
            "{:?}",
            closed.row
        );
        assert!(closed.merged.unwrap().unwrap().left > 0);
        for i in 0..10 {
            w.open(&items("carol", None), 1, 20_000 + i).unwrap();
        }
        assert_eq!(
            times(&path, "alice"),
            [(Some("pts/9".to_string()), 100 + n as Usec, Some(10_000))]
        );
    }

    /// Regression (issue 8): the logout of a spooled login not merged yet, whose spool
    /// could not take it either, was reported as "Gave up after 0 ms waiting for other
    /// logins", a queue timeout that never happened (the database was free).
    #[test]
    fn a_logout_that_must_follow_its_login_into_a_broken_spool_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = FileWriter::new(&path);
        w.open(&items("alice", Some("pts/1")), 1, 10).unwrap();
        std::fs::write(spool::spool_dir(&path), b"not a directory").unwrap();
        let closed = w.close(
            CloseTarget::Id(SessionId::from_int(-77), None),
            &items("alice", Some("pts/1")),
            1,
            20,
        );
        let err = closed.row.unwrap_err();
        assert!(
            matches!(err.error, Error::Unmerged { token: 77, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            !text.contains("Gave up") && text.contains("spool token 77"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_login_mirrors_nothing_a_failed_logout_still_mirrors() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database should be: every database write fails.
        let path = dir.path().join("db");
        std::fs::create_dir(&path).unwrap();
        let paths = MirrorPaths {
            utmpd_socket: dir.path().join("no-utmpd"),
            wtmpd_socket: dir.path().join("no-wtmpd"),
            ..MirrorPaths::default()
        };
        let w = FileWriter::new(&path).mirror(MirrorKind::Utmps, paths);
        assert!(w.open(&items("bob", Some("pts/1")), 1, 10).is_err());
        let closed = w.close(
            CloseTarget::Id(SessionId::Row(7), None),
            &items("bob", Some("pts/1")),
            1,
            20,
        );
        let err = closed.row.unwrap_err();
        // The open failed, not the logout of row 7: the message says so.
        assert_eq!(err.id, None);
        assert!(
            err.to_string().starts_with("Cannot create/open database"),
            "{err}"
        );
        // The logout was attempted (and failed: no daemon listens).
        assert!(
            matches!(
                closed.mirrored,
                Mirrored::Failed {
                    mirror: "utmps",
                    ..
                }
            ),
            "{:?}",
            closed.mirrored
        );
    }
}
