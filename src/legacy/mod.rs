//! Legacy mirrors: copies of the sessions we record into the old utmp/wtmp world, for
//! readers that never learned about the database (`who`, `w`, `users`, util-linux `last`,
//! monitoring agents).
//!
//! The database stays the source of truth. A mirror only ever receives a login and the
//! matching logout of one session; it looks at utmp only to find the entry to replace, and
//! decides nothing about the session. Three sinks implement [`LegacySink`]:
//!
//! * [`utmpx::UtmpxMirror`] (glibc only): `pututxline` into the utmp file and `updwtmpx`
//!   into the wtmp file, like login(1) and sshd do.
//! * [`utmps::UtmpsMirror`]: a pure-Rust client of skarnet's utmps daemons (musl systems,
//!   Alpine), independent of the C library.
//! * [`NoMirror`]: does nothing; the default, because sshd and login write utmp themselves.
//!
//! [`Mirror::from_option`] builds one from the names used in configuration (`utmpx`,
//! `utmps`, `none`).
//!
//! # Record contents
//!
//! * `ut_line`: the terminal without `/dev/` (`pts/3`). A session without a terminal gets
//!   `SERVICE:PID` (`notty:PID` without a service), as vsftpd does, so that two such
//!   sessions never share a line: util-linux `last` pairs a logout with its login by line.
//! * `ut_id`: the last four bytes of the line (`pts/3` → `ts/3`, `pts/12` → `s/12`,
//!   `tty1` → `tty1`), the rule of sshd and libutempter, so a record we write and one sshd
//!   wrote for the same pty replace each other as they should. Terminal-less sessions get
//!   the PID in four base-64 digits instead: the last four bytes of `sshd:12345` and
//!   `sshd:2345` are equal, and glibc's `pututxline` finds the slot to overwrite by
//!   `ut_id` alone. The glibc mirror, like login(1), first looks the line up
//!   (`getutxline`) and takes over the id of an entry already there (a getty's
//!   `LOGIN_PROCESS`, or a session that crashed), so that entry is replaced rather than
//!   left beside ours.
//! * `ut_pid`: the session's process; `ut_host`: the remote host as given, and
//!   `ut_addr_v6` when that host is a literal IPv4 or IPv6 address (IPv4 and IPv4-mapped
//!   IPv6 in the first word, as sshd stores them).
//! * Logout: `DEAD_PROCESS` with the same line, id and pid, `ut_user` and `ut_host`
//!   cleared (login(1) does the same), and the logout time. In utmp it replaces only our
//!   own entry (same line and pid): after a late close, when the pty already serves a newer
//!   session, that session's entry stays. wtmp always gets the record.
//!
//! # Y2038 and Y2106
//!
//! On x86_64 glibc `ut_tv.tv_sec` is a 32-bit field (shared with 32-bit programs).
//! [`legacy_timeval`] stores the seconds as **unsigned 32-bit**: exact until
//! 2106-02-07 06:28:15 UTC, which is how glibc 2.40 and later read and write the field
//! (commit "login: Use unsigned 32-bit types for seconds-since-epoch"), so our records
//! agree with those sshd and login write into the same file. Readers built against older
//! glibc take the field as signed after 2038-01-19 03:14:07 UTC and show dates 2^32
//! seconds early (util-linux 2.38 on glibc 2.36 shows 2040-01-01 as 1903-11-25); clamping
//! at 2038 instead would show one fixed instant to every reader, new ones included.
//! After 2106 the value is clamped to the last representable second (`0xffffffff`), and
//! before 1970 to 0, so a late record never sorts before earlier ones. utmps records carry
//! 64-bit seconds and are exact. The database keeps full 64-bit microseconds regardless.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::time::{USEC_PER_SEC, Usec};

pub mod utmps;
// glibc's utmpx functions and their process-wide state: FFI by nature.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub mod utmpx;

/// `ut_type` values shared by glibc, musl and utmps (not the database's `Type` numbers).
pub const UT_USER_PROCESS: i16 = 7;
pub const UT_DEAD_PROCESS: i16 = 8;

/// Field widths shared by glibc's and utmps' `struct utmpx`.
pub const UT_LINESIZE: usize = 32;
pub const UT_NAMESIZE: usize = 32;
pub const UT_HOSTSIZE: usize = 256;
pub const UT_IDSIZE: usize = 4;

/// glibc's `_PATH_UTMP`.
pub const DEFAULT_UTMP: &str = "/var/run/utmp";
/// glibc's `_PATH_WTMP`.
pub const DEFAULT_WTMP: &str = "/var/log/wtmp";
/// utmps' default utmpd socket (`--with-utmpd-socket`).
pub const DEFAULT_UTMPD_SOCKET: &str = "/run/utmps/.utmpd-socket";
/// utmps' default wtmpd socket (`--with-wtmpd-socket`).
pub const DEFAULT_WTMPD_SOCKET: &str = "/run/utmps/.wtmpd-socket";
/// How long one utmps exchange (connect, send, reply) may take in total.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the mirrors write. The defaults are the system's files and sockets; tests and
/// unusual layouts point them elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorPaths {
    /// utmp file for [`utmpx::UtmpxMirror`]; it must already exist (glibc never creates it).
    pub utmp: PathBuf,
    /// wtmp file for [`utmpx::UtmpxMirror`]; it must already exist.
    pub wtmp: PathBuf,
    /// Socket of `utmps-utmpd`.
    pub utmpd_socket: PathBuf,
    /// Socket of `utmps-wtmpd`.
    pub wtmpd_socket: PathBuf,
    /// Bound on each utmps exchange: connecting, sending the record and reading the reply
    /// together. A login must not hang because a daemon does.
    pub timeout: Duration,
}

impl Default for MirrorPaths {
    fn default() -> Self {
        MirrorPaths {
            utmp: PathBuf::from(DEFAULT_UTMP),
            wtmp: PathBuf::from(DEFAULT_WTMP),
            utmpd_socket: PathBuf::from(DEFAULT_UTMPD_SOCKET),
            wtmpd_socket: PathBuf::from(DEFAULT_WTMPD_SOCKET),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a mirror could not write. Callers log it; it never fails a session.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("unknown legacy mirror '{0}' (expected utmpx, utmps or none)")]
    UnknownMirror(String),
    #[error("legacy mirror '{mirror}' is not available: {reason}")]
    Unsupported {
        mirror: &'static str,
        reason: &'static str,
    },
    #[error("{path}: {op} failed: {source}")]
    File {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("utmps daemon not running at {socket}: {source}")]
    DaemonAbsent {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("utmps daemon at {socket} refused the record (EPERM): not root and not in its group")]
    Refused { socket: PathBuf },
    #[error("utmps daemon at {socket} failed: {}", errno_text(.errno))]
    Daemon { socket: PathBuf, errno: i32 },
    #[error("utmps daemon at {socket}: no {op} within {timeout:?}")]
    Timeout {
        socket: PathBuf,
        op: &'static str,
        timeout: Duration,
    },
    #[error("utmps daemon at {socket}: {op}: {source}")]
    Socket {
        socket: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("utmps daemon at {socket} closed the connection without a reply")]
    NoReply { socket: PathBuf },
    /// The utmp and the wtmp write both failed.
    #[error("{0}; {1}")]
    Both(Box<LegacyError>, Box<LegacyError>),
}

fn errno_text(errno: &i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(*errno)
}

impl LegacyError {
    /// Keeps the first failure and adds a second one, so that a utmp failure does not hide
    /// the wtmp result or the other way round.
    pub(crate) fn combine(
        a: Result<(), LegacyError>,
        b: Result<(), LegacyError>,
    ) -> Result<(), LegacyError> {
        match (a, b) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(x), Err(y)) => Err(LegacyError::Both(Box::new(x), Box::new(y))),
        }
    }
}

/// One session as legacy records describe it. Built once at login; the same value must
/// be given to the logout, so servers keep it with their session state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacySession {
    pub user: String,
    /// `ut_line`, at most [`UT_LINESIZE`] bytes.
    pub line: String,
    /// `ut_id`, NUL-padded.
    pub id: [u8; UT_IDSIZE],
    pub host: Option<String>,
    pub pid: i32,
}

impl LegacySession {
    /// Derives line and id as described in the [module documentation](self).
    /// `tty` may carry a `/dev/` prefix, which is not part of the line (also after the
    /// session rule took one off: PAM_TTY `/dev//dev/pts/4` is stored as `/dev/pts/4` and
    /// mirrored on line `pts/4`, as before the rule was shared); an empty `tty` counts as
    /// none.
    pub fn new(
        user: &str,
        tty: Option<&str>,
        host: Option<&str>,
        service: Option<&str>,
        pid: i32,
    ) -> LegacySession {
        let tty = tty
            .map(|t| t.strip_prefix("/dev/").unwrap_or(t))
            .filter(|t| !t.is_empty());
        let (line, id) = match tty {
            Some(t) => {
                let line = truncate(t, UT_LINESIZE).to_string();
                let id = line_id(&line);
                (line, id)
            }
            None => {
                let pid_text = format!(":{pid}");
                let service = service.filter(|s| !s.is_empty()).unwrap_or("notty");
                let room = UT_LINESIZE - pid_text.len();
                (
                    format!("{}{pid_text}", truncate(service, room)),
                    pid_id(pid),
                )
            }
        };
        LegacySession {
            user: user.to_string(),
            line,
            id,
            host: host.filter(|h| !h.is_empty()).map(str::to_string),
            pid,
        }
    }

    /// `ut_addr_v6` as bytes in network order: filled for literal addresses only.
    pub fn addr_v6(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let Some(host) = self.host.as_deref() else {
            return out;
        };
        // A link-local address may carry its zone ("fe80::1%eth0"); the field has no room
        // for it.
        let literal = host.split('%').next().unwrap_or(host);
        let literal = literal
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(literal);
        match literal.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => out[..4].copy_from_slice(&a.octets()),
            Ok(std::net::IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => out[..4].copy_from_slice(&v4.octets()),
                None => out = a.octets(),
            },
            Err(_) => {}
        }
        out
    }
}

/// The longest prefix of `s` that fits `max` bytes without splitting a character.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The last four bytes of the line (sshd's and libutempter's rule).
fn line_id(line: &str) -> [u8; UT_IDSIZE] {
    let b = line.as_bytes();
    let tail = &b[b.len().saturating_sub(UT_IDSIZE)..];
    let mut id = [0u8; UT_IDSIZE];
    id[..tail.len()].copy_from_slice(tail);
    id
}

/// Four printable digits in base 64 cover 2^24 PIDs, above Linux's `pid_max` limit (2^22).
fn pid_id(pid: i32) -> [u8; UT_IDSIZE] {
    const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-";
    let mut v = pid as u32;
    let mut id = [0u8; UT_IDSIZE];
    for slot in id.iter_mut().rev() {
        *slot = DIGITS[(v % 64) as usize];
        v /= 64;
    }
    id
}

/// Copies `s` into a fixed, NUL-padded field, cutting at a character boundary.
pub(crate) fn fill(dst: &mut [u8], s: &str) {
    dst.fill(0);
    let s = truncate(s, dst.len());
    dst[..s.len()].copy_from_slice(s.as_bytes());
}

/// Seconds and microseconds for a 32-bit `ut_tv` (see the module documentation): unsigned
/// 32-bit seconds, clamped to `0..=u32::MAX`; the microseconds are dropped when clamped.
pub fn legacy_timeval(at: Usec) -> (u32, u32) {
    let secs = at.div_euclid(USEC_PER_SEC);
    let usec = at.rem_euclid(USEC_PER_SEC) as u32;
    if secs < 0 {
        (0, 0)
    } else if secs > i64::from(u32::MAX) {
        (u32::MAX, 0)
    } else {
        (secs as u32, usec)
    }
}

/// Where legacy readers learn about a session. Implementations are cheap to call and do
/// all their I/O inside `login`/`logout`; they hold no open files between calls.
pub trait LegacySink: Send + Sync {
    /// The configuration name (`utmpx`, `utmps`, `none`).
    fn name(&self) -> &'static str;
    /// Writes the `USER_PROCESS` records of a session that started at `at`.
    fn login(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError>;
    /// Writes the `DEAD_PROCESS` records of a session that ended at `at`.
    fn logout(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError>;
}

/// The sink that writes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoMirror;

impl LegacySink for NoMirror {
    fn name(&self) -> &'static str {
        "none"
    }
    fn login(&self, _: &LegacySession, _: Usec) -> Result<(), LegacyError> {
        Ok(())
    }
    fn logout(&self, _: &LegacySession, _: Usec) -> Result<(), LegacyError> {
        Ok(())
    }
}

/// The names accepted in configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MirrorKind {
    #[default]
    None,
    Utmpx,
    Utmps,
}

impl FromStr for MirrorKind {
    type Err = LegacyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(MirrorKind::None),
            "utmpx" => Ok(MirrorKind::Utmpx),
            "utmps" => Ok(MirrorKind::Utmps),
            other => Err(LegacyError::UnknownMirror(other.to_string())),
        }
    }
}

impl fmt::Display for MirrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MirrorKind::None => "none",
            MirrorKind::Utmpx => "utmpx",
            MirrorKind::Utmps => "utmps",
        })
    }
}

/// A configured mirror.
#[derive(Debug)]
pub enum Mirror {
    None(NoMirror),
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    Utmpx(utmpx::UtmpxMirror),
    Utmps(utmps::UtmpsMirror),
}

impl Mirror {
    /// Builds the mirror named by a configuration value such as the PAM option
    /// `utmp=utmpx|utmps|none`.
    ///
    /// ```
    /// use wtmpdb::legacy::{LegacySink, Mirror, MirrorPaths};
    /// let m = Mirror::from_option("none", &MirrorPaths::default()).unwrap();
    /// assert_eq!(m.name(), "none");
    /// let e = Mirror::from_option("utmp", &MirrorPaths::default()).unwrap_err();
    /// assert_eq!(e.to_string(), "unknown legacy mirror 'utmp' (expected utmpx, utmps or none)");
    /// ```
    pub fn from_option(name: &str, paths: &MirrorPaths) -> Result<Mirror, LegacyError> {
        Mirror::new(name.parse()?, paths)
    }

    pub fn new(kind: MirrorKind, paths: &MirrorPaths) -> Result<Mirror, LegacyError> {
        match kind {
            MirrorKind::None => Ok(Mirror::None(NoMirror)),
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            MirrorKind::Utmpx => Ok(Mirror::Utmpx(utmpx::UtmpxMirror::new(
                &paths.utmp,
                &paths.wtmp,
            )?)),
            #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
            MirrorKind::Utmpx => Err(LegacyError::Unsupported {
                mirror: "utmpx",
                reason: "it needs glibc's utmpx functions (use utmps on musl)",
            }),
            MirrorKind::Utmps => Ok(Mirror::Utmps(utmps::UtmpsMirror::new(
                &paths.utmpd_socket,
                &paths.wtmpd_socket,
                paths.timeout,
            ))),
        }
    }

    fn sink(&self) -> &dyn LegacySink {
        match self {
            Mirror::None(m) => m,
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            Mirror::Utmpx(m) => m,
            Mirror::Utmps(m) => m,
        }
    }
}

impl LegacySink for Mirror {
    fn name(&self) -> &'static str {
        self.sink().name()
    }
    fn login(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        self.sink().login(session, at)
    }
    fn logout(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        self.sink().logout(session, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_id_follow_sshd() {
        let s = LegacySession::new("alice", Some("pts/3"), None, Some("sshd"), 42);
        assert_eq!(s.line, "pts/3");
        assert_eq!(&s.id, b"ts/3");
        let s = LegacySession::new("alice", Some("pts/12"), None, None, 42);
        assert_eq!(&s.id, b"s/12");
        let s = LegacySession::new("alice", Some("tty1"), None, None, 42);
        assert_eq!(&s.id, b"tty1");
        let s = LegacySession::new("alice", Some(":1"), None, None, 42);
        assert_eq!(&s.id, b":1\0\0");
        let long = "x".repeat(40);
        assert_eq!(
            LegacySession::new("a", Some(&long), None, None, 1)
                .line
                .len(),
            32
        );
    }

    /// Regression: the refactor into one session rule dropped this strip, so a caller of this
    /// public function (and the PAM module, for a PAM_TTY of `/dev//dev/pts/4`) got a
    /// `/dev/` line.
    #[test]
    fn a_dev_prefix_is_not_part_of_the_line() {
        let s = LegacySession::new("alice", Some("/dev/pts/3"), None, Some("sshd"), 42);
        assert_eq!(s.line, "pts/3");
        assert_eq!(&s.id, b"ts/3");
        // "/dev/" alone names no terminal: service and PID, as for none.
        let s = LegacySession::new("alice", Some("/dev/"), None, Some("sshd"), 42);
        assert_eq!(s.line, "sshd:42");
    }

    #[test]
    fn sessions_without_tty_get_distinct_lines_and_ids() {
        let a = LegacySession::new("bob", None, None, Some("sshd"), 12345);
        let b = LegacySession::new("bob", Some(""), None, Some("sshd"), 2345);
        assert_eq!(a.line, "sshd:12345");
        assert_eq!(b.line, "sshd:2345");
        assert_ne!(a.id, b.id);
        assert_eq!(&pid_id(0), b"0000");
        assert_eq!(&pid_id(4_194_304), b"G000");
        let c = LegacySession::new("bob", None, None, None, 7);
        assert_eq!(c.line, "notty:7");
        let svc = "s".repeat(40);
        let d = LegacySession::new("bob", None, None, Some(&svc), 4_194_304);
        assert_eq!(d.line.len(), 32);
        assert!(d.line.ends_with(":4194304"));
    }

    #[test]
    fn addresses_only_for_literals() {
        let v = |h: &str| LegacySession::new("u", Some("pts/0"), Some(h), None, 1).addr_v6();
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[192, 0, 2, 7]);
        assert_eq!(v("192.0.2.7"), v4);
        assert_eq!(v("::ffff:192.0.2.7"), v4);
        assert_eq!(
            v("2001:db8::1"),
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(v("fe80::1%eth0")[0], 0xfe);
        assert_eq!(v("[2001:db8::2]")[15], 2);
        assert_eq!(v("host.example"), [0u8; 16]);
        assert_eq!(v(":0"), [0u8; 16]);
    }

    #[test]
    fn timeval_is_unsigned_32_bit_and_clamped() {
        assert_eq!(legacy_timeval(1_500_000), (1, 500_000));
        // 2038-01-19 03:14:08 UTC, one second past i32::MAX: still exact as u32.
        let y2038 = (i64::from(i32::MAX) + 1) * USEC_PER_SEC;
        assert_eq!(legacy_timeval(y2038 + 7), (1 << 31, 7));
        let last = i64::from(u32::MAX) * USEC_PER_SEC + 999_999;
        assert_eq!(legacy_timeval(last), (u32::MAX, 999_999));
        assert_eq!(legacy_timeval(last + 1), (u32::MAX, 0));
        assert_eq!(legacy_timeval(i64::MAX), (u32::MAX, 0));
        assert_eq!(legacy_timeval(-1), (0, 0));
    }

    #[test]
    fn factory_names() {
        let p = MirrorPaths::default();
        assert_eq!(p.utmp, PathBuf::from("/var/run/utmp"));
        assert_eq!(p.wtmpd_socket, PathBuf::from("/run/utmps/.wtmpd-socket"));
        for name in ["none", "utmps"] {
            assert_eq!(Mirror::from_option(name, &p).unwrap().name(), name);
        }
        assert!(matches!(
            Mirror::from_option("UTMPX", &p),
            Err(LegacyError::UnknownMirror(n)) if n == "UTMPX"
        ));
        assert_eq!("utmps".parse::<MirrorKind>().unwrap().to_string(), "utmps");
    }
}
