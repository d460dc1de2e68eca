//! `libwtmpdb.so.0`: upstream wtmpdb's C interface on the core library.
//!
//! This file is the safe half: each C function is a Rust function here that takes the
//! arguments as Rust values (a C string becomes `Option<&[u8]>`, NULL being `None`) and
//! returns a value or a [`Failure`] (the negative return code and the message). `ffi`, the
//! only file with `unsafe`, defines the nine exported symbols, turns pointers into those
//! values and back, catches panics, and hands `*error` to the caller in `malloc`ed memory.
//!
//! What is stored, and how a write waits for the database, is the core's: logins and logouts
//! of sessions go through [`wtmpdb::session::Writer`] (items normalised as every writer of
//! this project stores them, all waiting bounded by [`wtmpdb::session::LOCK_WAIT`]), boot
//! time and rotation through [`wtmpdb::ops`], reading through the chunked newest-first reader
//! of [`wtmpdb::Database`] (no read lock is held while the callback runs). No state outlives
//! a call, except the core's per-process turn queue, which is fork-safe.

pub mod ffi;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wtmpdb::session::{CloseTarget, SessionId, SessionItems, stored, stored_tty};
use wtmpdb::storage::{self, OpenOptions};
use wtmpdb::target::{Store, Target};
use wtmpdb::writer::Writer;
use wtmpdb::{Database, Entry, Kind, NewEntry, ops, varlink};

/// `_PATH_WTMPDB`: the database a NULL `db_path` means when the daemon does not answer.
pub const DEFAULT_PATH: &str = storage::DEFAULT_PATH;

/// Where Debian's build of upstream's library keeps the system database (its
/// `_PATH_WTMPDB`; Debian links [`DEFAULT_PATH`] to it).
pub const DEBIAN_PATH: &str = "/var/log/wtmp.db";

/// The database a NULL `db_path` means without a daemon: [`DEFAULT_PATH`], which on Debian
/// is a link to [`DEBIAN_PATH`]; when that link is missing but Debian's file is there, the
/// file itself, so that the records are never split between two files.
pub fn system_database() -> PathBuf {
    let default = Path::new(DEFAULT_PATH);
    if default.symlink_metadata().is_err() && Path::new(DEBIAN_PATH).is_file() {
        return PathBuf::from(DEBIAN_PATH);
    }
    default.to_path_buf()
}

/// `_VARLINK_WTMPDB_SOCKET`: where the daemon listens.
pub const SOCKET_PATH: &str = varlink::SOCKET;

/// In debug builds (the tests'), the environment variable that names another socket, so
/// that a test can drive the C functions through a daemon of its own. A release build
/// always uses [`SOCKET_PATH`], as upstream's library does: a program that calls us as
/// root with its caller's environment must not be sent to another daemon.
pub const TEST_SOCKET_ENV: &str = "LIBWTMPDB_TEST_SOCKET";

/// The daemon's socket for this call (read at each call: nothing is kept).
pub fn socket() -> PathBuf {
    #[cfg(debug_assertions)]
    if let Some(s) = std::env::var_os(TEST_SOCKET_ENV).filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    PathBuf::from(SOCKET_PATH)
}

/// How long one exchange with the daemon may take: a login waits for the daemon's write
/// (its own bound is `wtmpdb::session::LOCK_WAIT`, then it spools); a whole-table read or a
/// rotation takes longer.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);
const DAEMON_LONG_TIMEOUT: Duration = Duration::from_secs(30);

/// `USER_PROCESS`: the row type of a session.
pub const USER_PROCESS: i32 = 3;

/// Column names passed to the read callbacks, in table order.
pub const COLUMNS: [&str; 8] = [
    "ID",
    "Type",
    "User",
    "Login",
    "Logout",
    "TTY",
    "RemoteHost",
    "Service",
];

/// A failed call: what the C function returns and what it stores in `*error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Negative: -1 for a database failure, `-errno` for a daemon failure, the negated
    /// SQLite result code when the database file cannot be opened (as upstream).
    pub code: i64,
    pub message: String,
}

impl Failure {
    pub fn new(code: i64, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A database failure: -1, or the negated SQLite code when the file could not be
    /// opened.
    fn storage(e: &storage::Error) -> Failure {
        Failure::new(storage_code(e), e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// What a call returns for a database failure: the negated primary SQLite result code of a
/// failure to open the database file (upstream returns `-rc` then, e.g. -14 for a file that
/// cannot be opened), -1 for any other.
fn storage_code(e: &storage::Error) -> i64 {
    e.open_code().map_or(-1, |rc| -i64::from(rc))
}

/// In debug builds (the tests'), a `db_path` that makes every call panic, to show that the
/// panic is caught: the call fails with a message and nothing reaches stderr. In a release
/// build it is an ordinary path that cannot be created.
pub const TEST_PANIC_PATH: &[u8] = b"/proc/libwtmpdb-test-panic/wtmp.db";

/// Where a call's `db_path` sends it, by the core's one rule ([`Target::parse`]): NULL, the
/// daemon at `socket` if it answers, else [`system_database`]; `"varlink"`, the daemon only;
/// any other string, that file.
pub fn target(db_path: Option<&[u8]>, socket: &Path) -> Target {
    #[cfg(debug_assertions)]
    assert!(db_path != Some(TEST_PANIC_PATH), "test panic requested");
    Target::parse(db_path.map(OsStr::from_bytes), socket, system_database())
}

/// A failure of the daemon or of reaching it: upstream's negative errno
/// ([`varlink::Error::errno`]: the connect's or the exchange's own, -ETIMEDOUT when it did not
/// answer in time, -ENOENT for `NoEntryFound`, -EIO for any other error the daemon answers)
/// and its message.
fn daemon_failure(e: varlink::Error) -> Failure {
    Failure::new(i64::from(e.errno()), e.to_string())
}

/// A failed write of the one write path: the daemon's errno, the storage failure's code,
/// else -1.
fn write_failure(e: &wtmpdb::session::Error) -> Failure {
    match e {
        wtmpdb::session::Error::Storage(s) => Failure::storage(s),
        wtmpdb::session::Error::Daemon(d) => Failure::new(i64::from(d.errno()), d.to_string()),
        other => Failure::new(-1, other.to_string()),
    }
}

/// The one write path into `target`, each exchange with the daemon bounded by
/// [`DAEMON_TIMEOUT`].
fn writer(target: &Target) -> Writer {
    Writer::new(target.clone()).daemon_timeout(DAEMON_TIMEOUT)
}

/// Follows `target` for a call that is not a write: the daemon, or the file.
fn store(target: &Target, timeout: Duration) -> Result<Store> {
    target.connect(timeout).map_err(daemon_failure)
}

/// A time argument as stored: microseconds as a signed 64-bit number (2^63 µs is the year
/// 294247; anything beyond cannot be stored and is refused rather than wrapped).
fn stored_time(usec: u64, what: &str) -> Result<i64> {
    i64::try_from(usec).map_err(|_| {
        Failure::new(
            -1,
            format!(
                "{what} time {usec} is beyond the largest storable time ({})",
                i64::MAX
            ),
        )
    })
}

/// The C arguments of `wtmpdb_login`, as bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Login<'a> {
    pub kind: i32,
    pub user: Option<&'a [u8]>,
    pub usec: u64,
    pub tty: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub service: Option<&'a [u8]>,
}

/// `wtmpdb_login`: the new row's ID. A login that went to the spool (the database stayed
/// locked) is recorded too: its ID is then its spool token, at least
/// [`wtmpdb::session::SPOOLED_MIN`], which `wtmpdb_logout` takes like any other.
pub fn login(db_path: Option<&[u8]>, a: &Login<'_>) -> Result<i64> {
    login_at(&target(db_path, &socket()), a)
}

pub fn login_at(target: &Target, a: &Login<'_>) -> Result<i64> {
    let Some(user) = a.user else {
        return Err(Failure::new(-1, "Adding an entry failed: user is NULL"));
    };
    let at = stored_time(a.usec, "Login")?;
    let w = writer(target);
    if a.kind == USER_PROCESS {
        let items = SessionItems::from_bytes(user, a.tty, a.host, a.service);
        let logged = w
            .open(&items, wtmpdb::session::this_process(), at)
            .map_err(|e| write_failure(&e))?;
        return match logged.session.id.to_int() {
            // A token of a daemon of an earlier version: no integer a C caller takes.
            id if id < 0 => Err(Failure::new(
                -i64::from(libc::EAGAIN),
                "Adding an entry failed: the database is locked; the login was kept in its \
                 spool and is recorded later, without an ID to log out with",
            )),
            id => Ok(id),
        };
    }
    // Boots and other rows: stored as given (NULL stays NULL), each item bounded.
    let (user, tty, host, service) = (
        stored(user),
        a.tty.map(stored),
        a.host.map(stored),
        a.service.map(stored),
    );
    w.write_row(&NewEntry {
        kind: Kind::from_i64(i64::from(a.kind)),
        user: &user,
        login: at,
        logout: None,
        tty: tty.as_deref(),
        host: host.as_deref(),
        service: service.as_deref(),
    })
    .map(SessionId::to_int)
    .map_err(|e| write_failure(&e))
}

fn open_read(path: &Path) -> Result<Database> {
    let opts = OpenOptions::read_only().busy_timeout(Duration::from_secs(5));
    Database::open(path, &opts).map_err(|e| Failure::storage(&e))
}

/// `wtmpdb_logout`: the row with this ID, or the spooled login with this token.
pub fn logout(db_path: Option<&[u8]>, id: i64, usec: u64) -> Result<()> {
    logout_at(&target(db_path, &socket()), id, usec)
}

pub fn logout_at(target: &Target, id: i64, usec: u64) -> Result<()> {
    let at = stored_time(usec, "Logout")?;
    // No session has a negative ID: what a C caller passes here is a failed login's or
    // lookup's return value.
    if id < 0 {
        return Err(Failure::new(
            -1,
            format!(
                "Update of logout time changed wrong number of rows, expected 1, got 0 (ID {id})"
            ),
        ));
    }
    let closed = writer(target).close(
        CloseTarget::Id(SessionId::from_int(id), None),
        None,
        &SessionItems::default(),
        wtmpdb::session::this_process(),
        at,
    );
    match closed.row {
        Ok(_) => Ok(()),
        Err(e) => Err(match &e.error {
            wtmpdb::session::Error::Storage(s) => Failure::new(storage_code(s), e.to_string()),
            other => Failure::new(write_failure(other).code, e.to_string()),
        }),
    }
}

/// `wtmpdb_get_id`: the newest open session on `tty` (in its stored form, without `/dev/`;
/// a row written with the raw name by another implementation is found too), also one whose
/// login still waits in the spool (its token, which `wtmpdb_logout` takes).
pub fn get_id(db_path: Option<&[u8]>, tty: Option<&[u8]>) -> Result<i64> {
    get_id_at(&target(db_path, &socket()), tty)
}

pub fn get_id_at(target: &Target, tty: Option<&[u8]>) -> Result<i64> {
    let shown = String::from_utf8_lossy(tty.unwrap_or_default()).into_owned();
    let not_found = || {
        Failure::new(
            -i64::from(libc::ENOENT),
            format!("Open entry for tty '{shown}' not found"),
        )
    };
    // The tty as a session stores it (without `/dev/`), then as given.
    let mut names = vec![stored_tty(tty)];
    let raw = stored(tty.unwrap_or_default());
    if raw != names[0] {
        names.push(raw);
    }
    let found = match store(target, DAEMON_TIMEOUT)? {
        Store::Daemon(mut c) => {
            let mut found = None;
            for name in &names {
                if let Some(id) = c.get_id(name).map_err(daemon_failure)? {
                    found = Some(id);
                    break;
                }
            }
            found
        }
        Store::File(path) => {
            let db = open_read(&path)?;
            let mut found = None;
            for name in &names {
                if let Some(id) = wtmpdb::session::newest_open_on_tty(&db, name)
                    .map_err(|e| Failure::storage(&e))?
                {
                    found = Some(id.to_int());
                    break;
                }
            }
            found
        }
    };
    found.ok_or_else(not_found)
}

/// A failed login attempt of `user` (as typed) at `usec`, recorded where this target's
/// sessions go: the daemon's `RecordFailure`, or the root-only failures' file beside the
/// database (see `wtmpdb::storage::failures_path`). Returns its ID.
pub fn failed_login(db_path: Option<&[u8]>, a: &Login<'_>) -> Result<i64> {
    failed_login_at(&target(db_path, &socket()), a)
}

pub fn failed_login_at(target: &Target, a: &Login<'_>) -> Result<i64> {
    // An empty name is no file: the failures' name made from it (`-failed`, relative to the
    // caller's directory) is not where anything reads them. Refused, as the logins' calls
    // refuse it.
    if matches!(target, Target::File(p) if p.as_os_str().is_empty()) {
        return Err(Failure::new(
            -1,
            "Recording a failed login failed: db_path is empty",
        ));
    }
    let Some(user) = a.user else {
        return Err(Failure::new(
            -1,
            "Recording a failed login failed: user is NULL",
        ));
    };
    let time = stored_time(a.usec, "Time")?;
    let (user, tty, host, service) = (
        stored(user),
        a.tty.map(stored),
        a.host.map(stored),
        a.service.map(stored),
    );
    let tty = tty.as_deref().map(|t| t.strip_prefix("/dev/").unwrap_or(t));
    writer(target)
        .record_failure(
            &wtmpdb::storage::NewFailure {
                time,
                user: &user,
                tty,
                host: host.as_deref(),
                service: service.as_deref(),
                pid: Some(i64::from(wtmpdb::session::this_process())),
            },
            &wtmpdb::storage::FailedFiles::default(),
        )
        .map_err(|e| match e {
            wtmpdb::writer::FailureError::Daemon(d) => {
                Failure::new(i64::from(d.errno()), d.to_string())
            }
            other => Failure::new(-1, format!("Recording a failed login failed: {other}")),
        })
}

/// `logwtmpdb`: a login of `name` on `tty` now (its ID), or, without a name, the logout of
/// the newest open row on `tty` now (0).
pub fn logwtmpdb(
    db_path: Option<&[u8]>,
    tty: Option<&[u8]>,
    name: Option<&[u8]>,
    host: Option<&[u8]>,
    service: Option<&[u8]>,
) -> Result<i64> {
    let now = u64::try_from(wtmpdb::time::now()).unwrap_or(0);
    match name {
        Some(n) if !n.is_empty() => login(
            db_path,
            &Login {
                kind: USER_PROCESS,
                user: Some(n),
                usec: now,
                tty,
                host,
                service,
            },
        ),
        _ => {
            let id = get_id(db_path, tty)?;
            logout(db_path, id, now).map(|()| 0)
        }
    }
}

/// One row as the read callbacks get it: the eight columns as text, None for SQL NULL.
pub fn row_strings(e: &Entry) -> [Option<String>; 8] {
    [
        Some(e.id.to_string()),
        Some(e.kind.as_i64().to_string()),
        Some(e.user.clone()),
        Some(e.login.to_string()),
        e.logout.map(|t| t.to_string()),
        e.tty.clone(),
        e.host.clone(),
        e.service.clone(),
    ]
}

/// What a read callback said about a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    More,
    Stop,
}

/// The failure of a read that its callback stopped: upstream returns sqlite3_exec's
/// SQLITE_ABORT negated (-4) with SQLite's message (Debian's 0.75.0 library, observed).
pub fn aborted() -> Failure {
    Failure::new(-4, "SQL error: query aborted")
}

/// `wtmpdb_read_all` / `_v2`: every row, newest login first, to `each` until it says stop.
pub fn read_all(db_path: Option<&[u8]>, each: impl FnMut(&Entry) -> Next) -> Result<()> {
    read_all_at(&target(db_path, &socket()), each)
}

pub fn read_all_at(target: &Target, mut each: impl FnMut(&Entry) -> Next) -> Result<()> {
    let path = match store(target, DAEMON_LONG_TIMEOUT)? {
        // Upstream's ReadAll, which any daemon of this interface answers: the whole table in
        // one reply, newest first.
        Store::Daemon(mut c) => {
            for e in &c.read_all().map_err(daemon_failure)? {
                if each(e) == Next::Stop {
                    return Err(aborted());
                }
            }
            return Ok(());
        }
        Store::File(p) => p,
    };
    let db = open_read(&path)?;
    let mut rows = db.entries(&Default::default());
    while let Some(batch) = rows.next_batch() {
        let batch = batch.map_err(|e| Failure::storage(&e))?;
        for e in &batch {
            if each(e) == Next::Stop {
                return Err(aborted());
            }
        }
        rows.recycle(batch);
    }
    Ok(())
}

/// What a rotation did: the archive written (None when nothing moved) and the rows moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    pub archive: Option<Vec<u8>>,
    pub entries: u64,
}

/// `wtmpdb_rotate`: the rows older than `days` days move into `NAME_YYYYMMDD.db` beside the
/// database, with the core's safe rotate (batches that each commit both files together; the
/// running boot and its open sessions stay; an existing archive is added to, never deleted).
pub fn rotate(db_path: Option<&[u8]>, days: i32) -> Result<Rotated> {
    rotate_at(&target(db_path, &socket()), days)
}

pub fn rotate_at(target: &Target, days: i32) -> Result<Rotated> {
    let Ok(days) = u32::try_from(days) else {
        return Err(Failure::new(
            -i64::from(libc::EINVAL),
            format!("rotate: invalid number of days: {days}"),
        ));
    };
    let path = match store(target, DAEMON_LONG_TIMEOUT)? {
        Store::Daemon(mut c) => {
            return c
                .rotate(days)
                .map(|(entries, archive)| Rotated {
                    archive: archive.map(String::into_bytes),
                    entries,
                })
                .map_err(daemon_failure);
        }
        Store::File(path) => path,
    };
    let mut db = Database::open_read_write(&path).map_err(|e| Failure::storage(&e))?;
    let done =
        ops::rotate(&mut db, &path, days, wtmpdb::time::now(), None).map_err(|e| match &e {
            ops::OpError::Storage(s) => Failure::storage(s),
            other => Failure::new(-1, other.to_string()),
        })?;
    Ok(Rotated {
        archive: done
            .archive
            .map(|p| p.into_os_string().into_encoded_bytes()),
        entries: done.moved,
    })
}

/// `wtmpdb_get_boottime`: the login time of the newest `reboot` row.
pub fn get_boottime(db_path: Option<&[u8]>) -> Result<u64> {
    get_boottime_at(&target(db_path, &socket()))
}

pub fn get_boottime_at(target: &Target) -> Result<u64> {
    let found = match store(target, DAEMON_TIMEOUT)? {
        Store::Daemon(mut c) => c.boot_time().map_err(daemon_failure)?,
        Store::File(path) => open_read(&path)?
            .boot_time()
            .map_err(|e| Failure::storage(&e))?,
    };
    match found {
        Some(t) => Ok(u64::try_from(t).unwrap_or(0)),
        None => Err(Failure::new(-1, "Boot time not found: no boot entry")),
    }
}

/// `wtmpdb_timespec2usec`: USEC_INFINITY for a negative or too large time.
pub fn timespec2usec(sec: i64, nsec: i64) -> u64 {
    let (Ok(sec), Ok(nsec)) = (u64::try_from(sec), u64::try_from(nsec)) else {
        return u64::MAX;
    };
    sec.checked_mul(1_000_000)
        .and_then(|us| us.checked_add(nsec / 1000))
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let s = Path::new("/s");
        assert_eq!(
            target(None, s),
            Target::Auto {
                socket: s.into(),
                file: system_database()
            }
        );
        assert_eq!(
            target(Some(b"varlink"), s),
            Target::Daemon { socket: s.into() }
        );
        assert_eq!(
            target(Some(b"/x/\xffy.db"), s),
            Target::File(PathBuf::from(OsStr::from_bytes(b"/x/\xffy.db")))
        );
    }

    /// An empty `db_path` names no file: the login calls fail on it ("cannot create"), and
    /// so must a failed attempt, which would otherwise land in `-failed` in the caller's
    /// working directory (sshd's is `/`), where nothing reads it.
    #[test]
    fn a_failed_attempt_is_not_recorded_under_an_empty_name() {
        let attempt = Login {
            kind: 6,
            user: Some(b"mallory"),
            usec: 1_000_000,
            tty: Some(b"ssh:notty"),
            host: None,
            service: Some(b"sshd"),
        };
        let stray = Path::new("-failed");
        let existed = stray.exists();
        let r = failed_login_at(&Target::File(PathBuf::new()), &attempt);
        if !existed {
            for side in ["-failed", "-failed-wal", "-failed-shm"] {
                let _ = std::fs::remove_file(side);
            }
        }
        assert!(r.is_err(), "recorded as {:?}", r.ok());
    }

    #[test]
    fn timespec() {
        assert_eq!(timespec2usec(1, 999), 1_000_000);
        assert_eq!(timespec2usec(-1, 0), u64::MAX);
        assert_eq!(timespec2usec(0, -1), u64::MAX);
        assert_eq!(timespec2usec(i64::MAX, 0), u64::MAX);
        // After 2106 (beyond 32-bit unsigned seconds).
        assert_eq!(timespec2usec(5_000_000_000, 1_000), 5_000_000_000_000_001);
    }

    #[test]
    fn threads_log_in_and_out_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.db");
        let path = p.as_os_str().as_bytes().to_vec();
        let ids: Vec<i64> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|t| {
                    let path = &path;
                    s.spawn(move || {
                        let tty = format!("pts/{t}");
                        let mut ids = Vec::new();
                        for i in 0..10u64 {
                            let a = Login {
                                kind: USER_PROCESS,
                                user: Some(b"u"),
                                usec: 1000 + i,
                                tty: Some(tty.as_bytes()),
                                ..Login::default()
                            };
                            let id = login(Some(path), &a).unwrap();
                            logout(Some(path), id, 2000 + i).unwrap();
                            ids.push(id);
                        }
                        ids
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 80);
        let mut open = 0;
        read_all(Some(&path), |e| {
            open += usize::from(e.logout.is_none());
            Next::More
        })
        .unwrap();
        assert_eq!(open, 0);
    }

    #[test]
    fn a_time_beyond_i64_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.db");
        let path = p.as_os_str().as_bytes();
        let a = Login {
            kind: USER_PROCESS,
            user: Some(b"u"),
            usec: u64::MAX,
            ..Login::default()
        };
        let f = login(Some(path), &a).unwrap_err();
        assert_eq!(f.code, -1);
        assert!(f.message.contains("beyond"), "{}", f.message);
    }

    /// A database file that SQLite cannot open fails with SQLite's primary result code
    /// negated, as upstream's `-rc`; other database failures (above) with -1.
    #[test]
    fn a_failed_open_returns_the_negated_sqlite_code() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let f = read_all(Some(missing.as_os_str().as_bytes()), |_| Next::More).unwrap_err();
        assert_eq!(f.code, -14, "SQLITE_CANTOPEN: {}", f.message);
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, [b'x'; 4096]).unwrap();
        let f = read_all(Some(garbage.as_os_str().as_bytes()), |_| Next::More).unwrap_err();
        assert_eq!(f.code, -26, "SQLITE_NOTADB: {}", f.message);
        assert!(
            f.message.ends_with("read-only: file is not a database"),
            "{}",
            f.message
        );
    }

    /// A scripted daemon: answers one connection's request with `reply` and returns the
    /// request it got.
    fn peer(sock: &Path, reply: &'static str) -> std::thread::JoinHandle<serde_json::Value> {
        let t = peer_of(sock, &[reply]);
        std::thread::spawn(move || t.join().unwrap().remove(0))
    }

    /// A scripted daemon that answers one connection's requests with `replies` in turn, and
    /// returns the requests it got.
    fn peer_of(
        sock: &Path,
        replies: &[&'static str],
    ) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
        use std::io::{Read, Write};
        let l = std::os::unix::net::UnixListener::bind(sock).unwrap();
        let replies = replies.to_vec();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            for reply in replies {
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while s.read(&mut b).unwrap() == 1 && b[0] != 0 {
                    req.push(b[0]);
                }
                s.write_all(reply.as_bytes()).unwrap();
                s.write_all(&[0]).unwrap();
                got.push(serde_json::from_slice(&req).unwrap());
            }
            got
        })
    }

    fn alice() -> Login<'static> {
        Login {
            kind: USER_PROCESS,
            user: Some(b"alice"),
            usec: 7,
            tty: Some(b"pts/1"),
            service: Some(b"sshd"),
            ..Login::default()
        }
    }

    #[test]
    fn a_null_path_uses_a_daemon_that_answers_and_varlink_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let t = peer(&sock, r#"{"parameters":{"ID":4294967299}}"#);
        assert_eq!(login_at(&target(None, &sock), &alice()), Ok(4_294_967_299));
        let req = t.join().unwrap();
        assert_eq!(req["method"], "org.openSUSE.wtmpdb.Login");
        let p = &req["parameters"];
        assert_eq!(
            (p["Type"].as_i64(), p["LoginTime"].as_i64()),
            (Some(3), Some(7))
        );
        assert_eq!(
            (&p["User"], &p["TTY"], &p["Service"]),
            (&"alice".into(), &"pts/1".into(), &"sshd".into())
        );
        assert!(p["RemoteHost"].is_null());
        // "varlink" without a daemon: the connect's errno, never the file.
        let f = login_at(
            &target(Some(b"varlink"), &dir.path().join("none")),
            &alice(),
        )
        .unwrap_err();
        assert_eq!(f.code, -i64::from(libc::ENOENT), "{}", f.message);
        // A socket nobody listens on any more: ECONNREFUSED.
        let refused = dir.path().join("refused");
        drop(std::os::unix::net::UnixListener::bind(&refused).unwrap());
        let f = get_id_at(&target(Some(b"varlink"), &refused), Some(b"pts/1")).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::ECONNREFUSED));
    }

    #[test]
    fn daemon_errors_are_upstreams_errno_values() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let t = peer(
            &sock,
            r#"{"error":"org.openSUSE.wtmpdb.NoEntryFound","parameters":{"ErrorMsg":"none"}}"#,
        );
        let f = get_id_at(&target(Some(b"varlink"), &sock), Some(b"pts/9")).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::ENOENT));
        assert_eq!(t.join().unwrap()["parameters"]["TTY"], "pts/9");
        std::fs::remove_file(&sock).unwrap();
        let t = peer(
            &sock,
            r#"{"error":"org.varlink.service.PermissionDenied","parameters":{}}"#,
        );
        let f = logout_at(&target(Some(b"varlink"), &sock), 3, 9).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::EIO));
        assert!(f.message.contains("PermissionDenied"), "{}", f.message);
        let req = t.join().unwrap();
        assert_eq!(req["method"], "org.openSUSE.wtmpdb.CloseSession");
        assert_eq!(
            (
                req["parameters"]["ID"].as_i64(),
                req["parameters"]["LogoutTime"].as_i64()
            ),
            (Some(3), Some(9))
        );
        // A login a daemon of an earlier version spooled (a negative ID): -EAGAIN with a
        // message. One of ours: its token, which the logout takes.
        std::fs::remove_file(&sock).unwrap();
        let t = peer(&sock, r#"{"parameters":{"ID":-77}}"#);
        let f = login_at(&target(Some(b"varlink"), &sock), &alice()).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::EAGAIN), "{}", f.message);
        t.join().unwrap();
        std::fs::remove_file(&sock).unwrap();
        let t = peer(&sock, r#"{"parameters":{"ID":4611686018427387905}}"#);
        let id = login_at(&target(Some(b"varlink"), &sock), &alice()).unwrap();
        assert_eq!(id, (1 << 62) + 1);
        t.join().unwrap();
    }

    /// Upstream's daemon has no `CloseSession`: a logout by ID is then its `Logout`.
    #[test]
    fn a_logout_through_upstreams_daemon_falls_back_to_its_logout() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let t = peer_of(
            &sock,
            &[
                r#"{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"org.openSUSE.wtmpdb.CloseSession"}}"#,
                r#"{"parameters":{"Success":true}}"#,
            ],
        );
        logout_at(&target(Some(b"varlink"), &sock), 3, 9).unwrap();
        let got = t.join().unwrap();
        assert_eq!(got[0]["method"], "org.openSUSE.wtmpdb.CloseSession");
        assert_eq!(got[1]["method"], "org.openSUSE.wtmpdb.Logout");
        assert_eq!(
            (
                got[1]["parameters"]["ID"].as_i64(),
                got[1]["parameters"]["LogoutTime"].as_i64()
            ),
            (Some(3), Some(9))
        );
    }

    #[test]
    fn read_all_through_the_daemon_maps_its_placeholders_back_to_null_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let t = peer(
            &sock,
            r#"{"parameters":{"Success":true,"Data":[
                {"ID":2,"Type":3,"User":"bob","Login":20,"Logout":0,"TTY":"pts/2","RemoteHost":"","Service":""},
                {"ID":1,"Type":1,"User":"reboot","Login":10,"Logout":15,"TTY":"~","RemoteHost":"6.1","Service":""}]}}"#,
        );
        let mut seen = Vec::new();
        let r = read_all_at(&target(Some(b"varlink"), &sock), |e| {
            seen.push(e.clone());
            Next::Stop
        });
        assert_eq!(r.unwrap_err(), aborted());
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].logout, seen[0].host.as_deref()), (None, None));
        assert_eq!(t.join().unwrap()["method"], "org.openSUSE.wtmpdb.ReadAll");
    }
}
