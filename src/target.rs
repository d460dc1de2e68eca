//! Where records go and come from: the daemon or a file, decided once from what a caller
//! names, by upstream's rule. Every front end (the PAM module's `database=`, the C library's
//! `db_path`, the command's `-f`) hands its name to [`Target::parse`] and never looks at the
//! string again:
//!
//! * nothing named: the daemon when its socket answers, else the default file
//!   ([`Target::Auto`]); the connect failing with ECONNREFUSED, ENOENT, ECONNRESET or EACCES
//!   means no daemon is there ([`crate::varlink::Error::no_daemon`]);
//! * `varlink`: the daemon, and only the daemon ([`Target::Daemon`]): without one the call
//!   fails; it never becomes a file of that name in the working directory;
//! * any other name: that file, directly ([`Target::File`]).
//!
//! The choice is made anew at each [`Target::connect`]; nothing is kept in the process
//! (upstream keeps it in a process-global).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::varlink::{self, Client};

/// The name that forces the daemon.
pub const DAEMON_NAME: &str = "varlink";

/// Where a caller's records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing named: the daemon at `socket` when it answers, else `file`.
    Auto { socket: PathBuf, file: PathBuf },
    /// `varlink`: the daemon at `socket`, or nothing.
    Daemon { socket: PathBuf },
    /// A named file.
    File(PathBuf),
}

/// A target once followed: a connection to the daemon, or the file to open.
#[derive(Debug)]
pub enum Store {
    Daemon(Client),
    File(PathBuf),
}

impl Target {
    /// The target of `name` (None: nothing named), with the daemon at `socket` and, when
    /// nothing is named and no daemon answers, `default_file`.
    pub fn parse(
        name: Option<&OsStr>,
        socket: impl Into<PathBuf>,
        default_file: impl Into<PathBuf>,
    ) -> Target {
        match name {
            None => Target::Auto {
                socket: socket.into(),
                file: default_file.into(),
            },
            Some(n) if n == DAEMON_NAME => Target::Daemon {
                socket: socket.into(),
            },
            Some(n) => Target::File(PathBuf::from(n)),
        }
    }

    /// The daemon's socket, when this target may use the daemon.
    pub fn socket(&self) -> Option<&Path> {
        match self {
            Target::Auto { socket, .. } | Target::Daemon { socket } => Some(socket),
            Target::File(_) => None,
        }
    }

    /// The file this target writes when no daemon takes its records; None for
    /// [`Target::Daemon`].
    pub fn file(&self) -> Option<&Path> {
        match self {
            Target::Auto { file, .. } | Target::File(file) => Some(file),
            Target::Daemon { .. } => None,
        }
    }

    /// Follows the target: connects to the daemon where it may be used (each exchange on
    /// the connection then bounded by `timeout`), else the file. An [`Target::Auto`] whose
    /// daemon is not there is its file; any other failure to connect is an error.
    pub fn connect(&self, timeout: Duration) -> varlink::Result<Store> {
        match self {
            Target::File(p) => Ok(Store::File(p.clone())),
            Target::Daemon { socket } => Client::connect(socket, timeout).map(Store::Daemon),
            Target::Auto { socket, file } => match Client::connect(socket, timeout) {
                Ok(c) => Ok(Store::Daemon(c)),
                Err(e) if e.no_daemon() => Ok(Store::File(file.clone())),
                Err(e) => Err(e),
            },
        }
    }

    /// How the target reads in a message: the file's path, or the daemon's name and socket.
    pub fn describe(&self) -> String {
        match self {
            Target::File(p) => p.display().to_string(),
            Target::Daemon { socket } => format!("wtmpdbd ({})", socket.display()),
            Target::Auto { socket, file } => {
                format!("wtmpdbd ({}) or {}", socket.display(), file.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: Option<&str>) -> Target {
        Target::parse(name.map(OsStr::new), "/s", "/d.db")
    }

    #[test]
    fn a_name_is_parsed_once_into_the_daemon_or_a_file() {
        assert_eq!(
            parse(None),
            Target::Auto {
                socket: "/s".into(),
                file: "/d.db".into()
            }
        );
        assert_eq!(
            parse(Some("varlink")),
            Target::Daemon {
                socket: "/s".into()
            }
        );
        // The forced daemon never has a file: not `./varlink`.
        assert_eq!(parse(Some("varlink")).file(), None);
        assert_eq!(parse(Some("./varlink")), Target::File("./varlink".into()));
        assert_eq!(parse(Some("x.db")).socket(), None);
    }

    #[test]
    fn a_missing_socket_is_the_file_unless_the_daemon_is_forced() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("socket");
        let t = Duration::from_millis(100);
        let auto = Target::parse(None, &s, "/d.db");
        assert!(matches!(auto.connect(t), Ok(Store::File(p)) if p == Path::new("/d.db")));
        let file = Target::parse(Some(OsStr::new("/x.db")), &s, "/d.db");
        assert!(matches!(file.connect(t), Ok(Store::File(p)) if p == Path::new("/x.db")));
        let forced = Target::parse(Some(OsStr::new("varlink")), &s, "/d.db");
        let e = forced.connect(t).unwrap_err();
        assert!(e.no_daemon() && e.errno() == -libc::ENOENT, "{e}");
        // A socket nothing listens on any more: ECONNREFUSED, also the file.
        drop(std::os::unix::net::UnixListener::bind(&s).unwrap());
        assert!(matches!(auto.connect(t), Ok(Store::File(_))));
    }
}
