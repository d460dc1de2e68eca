//! The spool: where a session write goes when the database cannot take it in time.
//!
//! A login must not wait long, and must not be lost: when the database stays locked past
//! [`SPOOL_AFTER`] (an admin's `sqlite3` holding `BEGIN EXCLUSIVE`, another program's long
//! transaction, the first index build on a large upstream file, a user who holds a lock on
//! the world-readable files with `fcntl`), the writer records the login or logout (by ID, or
//! by user, tty and service when the login's ID was lost) in the spool instead, and the next
//! writers that get the database merge the spool into it, oldest first.
//!
//! * **Where**: the directory `NAME-spool` beside the database file (its links resolved), mode
//!   0700, owned by the writer (root, for the system's database): no other user can read the
//!   records, add one, or lock the directory. A directory there that is not ours, or that
//!   others may enter, is refused (the write then fails as before).
//! * **Durable**: each record is one file, written under a name starting with `.`, synced,
//!   renamed to its final name and the directory synced: once the call returns, the record
//!   survives a crash and a power loss, and a reader never sees half a record.
//! * **On a full disk too**: a record file that cannot be written for want of space takes a
//!   slot of the [`reserve`] (space set aside in advance) instead.
//! * **Merged once**: a spooled login gets a random token (its ID to be); merging it stores
//!   the token with the new row's ID in the table `wtmp_spooled` (which upstream never reads),
//!   in the same transaction, so a merge interrupted before the files are removed does not
//!   add the row again, and a logout spooled with the token finds the row.
//! * **One merger**: a merger takes `flock` on the directory without waiting; others skip.
//! * **In order, a bounded part at a time**: a merge applies the records oldest first, each
//!   as it would have been written live at its time (a logout by lookup closes the session
//!   its login left open, even when that login is spooled too), and takes at most
//!   [`MERGE_MAX_RECORDS`], read within [`MERGE_READ_TIME`]: after a long outage a login
//!   does not wait for thousands of others' records. What is left, the next write merges.
//! * **Tidy**: a temporary file older than [`TEMP_MAX_AGE`] (its writer was killed before the
//!   rename) is removed; a file that is not a record is renamed `.bad-NAME`, reported once by
//!   the merge that set it aside (see [`Merged`]), kept [`BAD_KEEP`] for the admin, then
//!   removed.
//!
//! The format of a record is lines of `key value`, strings in hex (items are at most
//! [`super::MAX_ITEM_BYTES`] bytes): simple to parse exactly, and fuzzed
//! (`fuzz/fuzz_targets/spool_record.rs`). Records of a kind a reader does not know (the
//! `lookup` logout, to a version before it) are set aside as `.bad-NAME`, not lost.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::storage::{self, Database, SpooledDone, SpooledWrite, files};
use crate::time::Usec;

use super::SessionItems;

pub mod reserve;

/// How long a session write waits for the database before it spools. Longer than a
/// maintenance batch (import and rotate commit every 20-25 ms) and than the queue of a burst
/// of logins, short enough that a login never waits visibly.
pub const SPOOL_AFTER: Duration = Duration::from_millis(40);

/// The suffix of the spool directory's name.
pub const SPOOL_SUFFIX: &str = "-spool";

/// The largest record file read back (a record is a few kilobytes at most).
const MAX_RECORD_BYTES: u64 = 16 * 1024;

/// The most records one merge takes (one transaction of a few milliseconds).
pub const MERGE_MAX_RECORDS: usize = 200;

/// How long one merge reads record files (at least one): then it merges what it read, and
/// leaves the rest to the next write.
pub const MERGE_READ_TIME: Duration = Duration::from_millis(10);

/// A temporary record file (`.NAME`) older than this was left by a writer killed before it
/// renamed it (a writer takes at most [`super::LOCK_WAIT`]): a merge removes it.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// How long a file set aside as `.bad-NAME` is kept for the admin (as long as a merged
/// login's token).
pub const BAD_KEEP: Duration = Duration::from_secs(30 * 86_400);

/// The prefix of a file set aside.
const BAD_PREFIX: &str = ".bad-";

/// A spooled login's stand-in for its row ID until the spool is merged: never reused (62
/// random bits), drawn in `[2^62, 2^63)` so that as one integer it is positive and apart
/// from every row ID (see [`super::SessionId`]). Records of earlier versions hold tokens of
/// any positive value; they merge as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub i64);

impl Token {
    fn new() -> io::Result<Token> {
        let min = super::id::SPOOLED_MIN;
        Ok(Token((crate::sys::random_i64()? & (min - 1)) | min))
    }
}

/// Which row a spooled logout closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutOf {
    Row(i64),
    Spooled(Token),
}

/// One spooled write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Login {
        token: Token,
        at: Usec,
        items: SessionItems,
    },
    Logout {
        of: LogoutOf,
        at: Usec,
    },
    /// A logout whose login's ID was lost ([`super::CloseTarget::Lookup`]): merged, it
    /// closes the newest open session of `user` on `tty` with `service`, if exactly one
    /// matches, as the live logout does. The token marks it merged.
    LookupLogout {
        token: Token,
        at: Usec,
        user: String,
        tty: String,
        service: Option<String>,
    },
    /// A row that is not a session's (a boot, a run level), written as it was given: `kind`
    /// is its Type. The token marks it merged, as a login's.
    Row {
        token: Token,
        kind: i64,
        at: Usec,
        user: String,
        tty: Option<String>,
        host: Option<String>,
        service: Option<String>,
    },
    /// A logout by row ID with the session's identity ([`super::CloseTarget::Id`]): merged,
    /// it closes row `row` only if it is still the session of `user` on `tty` that logged in
    /// at `login`; otherwise it is a [`Record::LookupLogout`] of `user`, `tty` and
    /// `service` (marked merged by `token`).
    CheckedLogout {
        row: i64,
        token: Token,
        at: Usec,
        user: String,
        tty: String,
        login: Usec,
        service: Option<String>,
    },
}

impl Record {
    /// The token the record was drawn with (a logout by ID or by a login's token has none).
    pub fn token(&self) -> Option<Token> {
        match self {
            Record::Login { token, .. }
            | Record::Row { token, .. }
            | Record::LookupLogout { token, .. }
            | Record::CheckedLogout { token, .. } => Some(*token),
            Record::Logout { .. } => None,
        }
    }
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {}: {what}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("spool {}: {why}; not used", dir.display())]
    Refused { dir: PathBuf, why: String },
}

fn io_err<'a>(dir: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        dir: dir.to_path_buf(),
        what,
        source,
    }
}

/// The spool directory of the database `path`: beside the file a writer opens, found through
/// the links a writer follows (root's or the caller's) and no others.
pub fn spool_dir(path: &Path) -> PathBuf {
    let file = files::trusted_file(path).unwrap_or_else(|| path.to_path_buf());
    files::side_file(&file, SPOOL_SUFFIX)
}

/// Opens the spool directory, creating it (0700) if `create`; None if it does not exist and
/// may not be created. A directory that is a link, another user's, or open to others is
/// refused.
fn open_dir(dir: &Path, create: bool) -> Result<Option<File>, SpoolError> {
    if create {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            // The new directory's own entry must be on disk before a record in it counts
            // as durable.
            Ok(()) => dir
                .parent()
                .map_or(Ok(()), |p| File::open(p).and_then(|d| d.sync_all()))
                .map_err(io_err(dir, "cannot sync the directory holding it"))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(dir, "cannot create it")(e)),
        }
    }
    let handle = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
    {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) => return Err(io_err(dir, "cannot open it")(e)),
    };
    let meta = handle
        .metadata()
        .map_err(io_err(dir, "cannot examine it"))?;
    let refuse = |why: String| SpoolError::Refused {
        dir: dir.to_path_buf(),
        why,
    };
    if meta.uid() != crate::sys::euid() {
        return Err(refuse(format!(
            "owned by uid {}, not the writer (uid {})",
            meta.uid(),
            crate::sys::euid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        if create {
            // Made by us just now under an odd umask, or by us earlier: ours to close.
            handle
                .set_permissions(fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir, "cannot set its mode"))?;
        } else {
            return Err(refuse(format!(
                "mode {:o}, open to others",
                meta.mode() & 0o777
            )));
        }
    }
    Ok(Some(handle))
}

/// A record written into the spool.
#[derive(Debug)]
pub struct Spooled {
    /// Its file.
    pub path: PathBuf,
    /// Set when the disk was full and the record went into a slot of the [`reserve`]: the
    /// slots left.
    pub reserve_left: Option<usize>,
}

/// Writes `record` durably into the spool of the database `path`: its file.
pub fn put(path: &Path, record: &Record) -> Result<PathBuf, SpoolError> {
    put_record(path, record).map(|s| s.path)
}

/// Writes `record` durably into the spool of the database `path`, through a slot of the
/// [`reserve`] when the disk is full.
pub fn put_record(path: &Path, record: &Record) -> Result<Spooled, SpoolError> {
    let dir = spool_dir(path);
    let handle = open_dir(&dir, true)?.expect("created");
    let (kind, token) = match record {
        Record::Login { token, .. } | Record::Row { token, .. } => ("login", token.0),
        Record::Logout { .. } => ("logout", Token::new().map(|t| t.0).unwrap_or(0)),
        Record::LookupLogout { token, .. } | Record::CheckedLogout { token, .. } => {
            ("logout", token.0)
        }
    };
    // Names sort by time of writing; the token keeps them apart.
    let name = format!("{:020}-{:019}-{kind}", crate::time::now().max(0), token);
    let temp = dir.join(format!(".{name}"));
    let done = dir.join(&name);
    let text = encode(record);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(|e| ("cannot create a record", e))
        .and_then(|mut f| {
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_data())
                .and_then(|()| fs::rename(&temp, &done))
                .and_then(|()| handle.sync_all())
                .map_err(|e| {
                    let _ = fs::remove_file(&temp);
                    ("cannot write a record", e)
                })
        });
    match written {
        Ok(()) => Ok(Spooled {
            path: done,
            reserve_left: None,
        }),
        Err((_, e)) if reserve::is_full(&e) => {
            match reserve::take(&dir, &handle, &temp, &done, text.as_bytes()) {
                Ok(reserve::Taken::Done { left }) => Ok(Spooled {
                    path: done,
                    reserve_left: Some(left),
                }),
                Ok(reserve::Taken::Empty) => Err(io_err(
                    &dir,
                    "cannot write a record (the disk is full and the reserve is empty)",
                )(e)),
                Err(taken) => Err(io_err(
                    &dir,
                    "cannot write a record (the disk is full), nor into the reserve",
                )(taken)),
            }
        }
        Err((what, e)) => Err(io_err(&dir, what)(e)),
    }
}

/// Fills the [`reserve`] of the spool of the database `path` (creating the spool, 0700,
/// when missing): the slots it holds now (fewer than [`reserve::RESERVE_SLOTS`] when the
/// disk is full). For `wtmpdbd` as it starts and `wtmpdb boot`.
pub fn fill_reserve(path: &Path) -> Result<usize, SpoolError> {
    let dir = spool_dir(path);
    // On btrfs, the database's directory first (the files made in it from now on are
    // written in place, see `storage::files::in_place_on_btrfs`), then the spool's.
    crate::storage::files::in_place_on_btrfs(&dir);
    match open_dir(&dir, true) {
        Ok(handle) => {
            if let Some(h) = handle {
                let _ = crate::sys::no_copy_on_write_on_btrfs(&h);
            }
        }
        Err(SpoolError::Io { source, .. }) if reserve::is_full(&source) => return Ok(0),
        Err(e) => return Err(e),
    }
    reserve::fill(&dir).map_err(io_err(&dir, "cannot fill its reserve"))
}

/// A new login record for `items` at `at`.
pub fn login_record(items: &SessionItems, at: Usec) -> Result<Record, io::Error> {
    Ok(Record::Login {
        token: Token::new()?,
        at,
        items: items.clone(),
    })
}

/// A new record of the row `entry` (not a session's).
pub fn row_record(entry: &crate::storage::NewEntry<'_>) -> Result<Record, io::Error> {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    Ok(Record::Row {
        token: Token::new()?,
        kind: entry.kind.as_i64(),
        at: entry.login,
        user: entry.user.to_owned(),
        tty: owned(entry.tty),
        host: owned(entry.host),
        service: owned(entry.service),
    })
}

/// A new logout record of row `row`, checked against the session's `identity` (see
/// [`Record::CheckedLogout`]), ended at `at`.
pub fn checked_logout_record(
    row: i64,
    identity: &super::Identity,
    items: &SessionItems,
    at: Usec,
) -> Result<Record, io::Error> {
    Ok(Record::CheckedLogout {
        row,
        token: Token::new()?,
        at,
        user: identity.user.clone(),
        tty: identity.tty.clone(),
        login: identity.login,
        service: items.service.clone(),
    })
}

/// A new logout record by lookup for the session of `items` (its user, tty and service),
/// ended at `at`.
pub fn lookup_record(items: &SessionItems, at: Usec) -> Result<Record, io::Error> {
    Ok(Record::LookupLogout {
        token: Token::new()?,
        at,
        user: items.user.clone(),
        tty: items.tty.clone(),
        service: items.service.clone(),
    })
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    // Lower-case digits only, as `hex` writes them: one spelling per string.
    if s.len() % 2 != 0
        || s.len() > 2 * super::MAX_ITEM_BYTES
        || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn opt_hex(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "-".to_string(), hex)
}

fn opt_unhex(s: &str) -> Option<Option<String>> {
    if s == "-" {
        Some(None)
    } else {
        unhex(s).map(Some)
    }
}

/// The text of a record.
pub fn encode(record: &Record) -> String {
    match record {
        Record::Login { token, at, items } => format!(
            "wtmpdb-spool 1\nlogin {}\nat {at}\nuser {}\ntty {}\nhost {}\nservice {}\n",
            token.0,
            hex(&items.user),
            hex(&items.tty),
            opt_hex(&items.host),
            opt_hex(&items.service),
        ),
        Record::Logout { of, at } => {
            let of = match of {
                LogoutOf::Row(id) => format!("row {id}"),
                LogoutOf::Spooled(t) => format!("token {}", t.0),
            };
            format!("wtmpdb-spool 1\nlogout {of}\nat {at}\n")
        }
        Record::LookupLogout {
            token,
            at,
            user,
            tty,
            service,
        } => format!(
            "wtmpdb-spool 1\nlookup {}\nat {at}\nuser {}\ntty {}\nservice {}\n",
            token.0,
            hex(user),
            hex(tty),
            opt_hex(service),
        ),
        Record::Row {
            token,
            kind,
            at,
            user,
            tty,
            host,
            service,
        } => format!(
            "wtmpdb-spool 1\nrow {}\nkind {kind}\nat {at}\nuser {}\ntty {}\nhost {}\nservice {}\n",
            token.0,
            hex(user),
            opt_hex(tty),
            opt_hex(host),
            opt_hex(service),
        ),
        Record::CheckedLogout {
            row,
            token,
            at,
            user,
            tty,
            login,
            service,
        } => format!(
            "wtmpdb-spool 1\nchecked {row}\ntoken {}\nat {at}\nuser {}\ntty {}\nlogin {login}\n\
             service {}\n",
            token.0,
            hex(user),
            hex(tty),
            opt_hex(service),
        ),
    }
}

/// Parses a record; None for anything that is not exactly what [`encode`] writes.
pub fn decode(text: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != "wtmpdb-spool 1" {
        return None;
    }
    let (kind, rest) = lines.next()?.split_once(' ')?;
    let field = |line: Option<&str>, key: &str| -> Option<String> {
        let (k, v) = line?.split_once(' ')?;
        (k == key).then(|| v.to_string())
    };
    let number = |s: &str| -> Option<i64> {
        // Exactly as written: no sign on positive numbers, no leading zeros.
        let n: i64 = s.parse().ok()?;
        (n.to_string() == s).then_some(n)
    };
    let record = match kind {
        "login" => {
            let token = number(rest).filter(|t| *t > 0)?;
            let at = number(&field(lines.next(), "at")?)?;
            let user = unhex(&field(lines.next(), "user")?)?;
            let tty = unhex(&field(lines.next(), "tty")?)?;
            let host = opt_unhex(&field(lines.next(), "host")?)?;
            let service = opt_unhex(&field(lines.next(), "service")?)?;
            Record::Login {
                token: Token(token),
                at,
                items: SessionItems {
                    user,
                    tty,
                    host,
                    service,
                },
            }
        }
        "logout" => {
            let (how, n) = rest.split_once(' ')?;
            let n = number(n).filter(|n| *n > 0)?;
            let of = match how {
                "row" => LogoutOf::Row(n),
                "token" => LogoutOf::Spooled(Token(n)),
                _ => return None,
            };
            let at = number(&field(lines.next(), "at")?)?;
            Record::Logout { of, at }
        }
        "lookup" => {
            let token = number(rest).filter(|t| *t > 0)?;
            let at = number(&field(lines.next(), "at")?)?;
            let user = unhex(&field(lines.next(), "user")?)?;
            let tty = unhex(&field(lines.next(), "tty")?)?;
            let service = opt_unhex(&field(lines.next(), "service")?)?;
            Record::LookupLogout {
                token: Token(token),
                at,
                user,
                tty,
                service,
            }
        }
        "row" => {
            let token = number(rest).filter(|t| *t > 0)?;
            let kind = number(&field(lines.next(), "kind")?)?;
            let at = number(&field(lines.next(), "at")?)?;
            let user = unhex(&field(lines.next(), "user")?)?;
            let tty = opt_unhex(&field(lines.next(), "tty")?)?;
            let host = opt_unhex(&field(lines.next(), "host")?)?;
            let service = opt_unhex(&field(lines.next(), "service")?)?;
            Record::Row {
                token: Token(token),
                kind,
                at,
                user,
                tty,
                host,
                service,
            }
        }
        "checked" => {
            let row = number(rest).filter(|n| *n > 0)?;
            let token = number(&field(lines.next(), "token")?).filter(|t| *t > 0)?;
            let at = number(&field(lines.next(), "at")?)?;
            let user = unhex(&field(lines.next(), "user")?)?;
            let tty = unhex(&field(lines.next(), "tty")?)?;
            let login = number(&field(lines.next(), "login")?)?;
            let service = opt_unhex(&field(lines.next(), "service")?)?;
            Record::CheckedLogout {
                row,
                token: Token(token),
                at,
                user,
                tty,
                login,
                service,
            }
        }
        _ => return None,
    };
    lines.next().is_none().then_some(record)
}

/// What a merge did. Each count is of this merge only: a file set aside or removed is
/// reported by the merge that did it, once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub logins: usize,
    pub logouts: usize,
    /// Of `logouts`, those that closed no row: a lookup that found no open session or
    /// several (as live), a logout of a spooled login that never reached the database.
    pub unmatched: usize,
    /// Record files that could not be read as records, renamed to `.bad-NAME` and left.
    pub bad: usize,
    /// Record files left for a later write: beyond this merge's bound, not readable now, or
    /// all of them when another merger is at work.
    pub left: usize,
    /// Temporary files older than [`TEMP_MAX_AGE`] removed.
    pub removed_temp: usize,
    /// `.bad-NAME` files older than [`BAD_KEEP`] removed.
    pub removed_bad: usize,
    /// The rows this merge wrote (false) or closed (true), in order: their journal events.
    pub rows: Vec<(i64, bool)>,
}

impl Merged {
    /// What was merged, left or removed, as one line (None when nothing was), e.g. for a
    /// notice in the log. Files set aside (`bad`) deserve an error line of their own.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.left > 0 {
            parts.push(format!("{} records left for a later write", self.left));
        }
        if self.removed_temp > 0 {
            parts.push(format!(
                "{} stale temporary files removed",
                self.removed_temp
            ));
        }
        if self.removed_bad > 0 {
            parts.push(format!(
                "{} .bad-* files older than {} days removed",
                self.removed_bad,
                BAD_KEEP.as_secs() / 86_400
            ));
        }
        let mut line = if self.logins + self.logouts > 0 {
            let mut l = format!(
                "Merged the spool: {} logins, {} logouts",
                self.logins, self.logouts
            );
            if self.unmatched > 0 {
                l += &format!(" ({} closed no session)", self.unmatched);
            }
            l
        } else if parts.is_empty() {
            return None;
        } else {
            "Spool".to_string()
        };
        for p in parts {
            line += &format!("; {p}");
        }
        Some(line)
    }
}

/// Takes `flock` on the spool directory for as long as it lives, or None when another
/// merger holds it.
struct MergeLock {
    /// Closing the descriptor releases the lock.
    _held: File,
}

impl MergeLock {
    fn try_take(dir: File) -> Option<MergeLock> {
        // Any failure to take it, as someone else holding it, means no merge now.
        let taken = matches!(crate::sys::flock_exclusive_nonblocking(&dir), Ok(true));
        taken.then_some(MergeLock { _held: dir })
    }
}

/// Merges the spool of `db` into it, a bounded part (see the module's documentation): one
/// transaction, then the merged files are removed. Nothing to do (no spool, an empty one,
/// another merger at work) is `Ok` with nothing merged; a database that is busy leaves
/// every record for a later writer.
pub fn merge(db: &mut Database) -> Result<Merged, MergeError> {
    merge_bounded(db, MERGE_MAX_RECORDS, MERGE_READ_TIME)
}

/// What reading one record file gave.
enum ReadOutcome {
    Record(Record),
    /// Not a record (nor a regular file): to be set aside.
    Bad(Option<File>),
    /// Not readable now (e.g. out of descriptors): left for a later merge.
    Later,
}

fn read_record(file: &Path) -> ReadOutcome {
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)
    {
        Ok(f) => f,
        // A link (O_NOFOLLOW) is no record of ours.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return ReadOutcome::Bad(None),
        Err(_) => return ReadOutcome::Later,
    };
    match f.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return ReadOutcome::Bad(None),
        Err(_) => return ReadOutcome::Later,
    }
    let mut text = Vec::new();
    if (&f)
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut text)
        .is_err()
    {
        return ReadOutcome::Later;
    }
    let record = if text.len() as u64 <= MAX_RECORD_BYTES {
        decode(&text)
    } else {
        None
    };
    match record {
        Some(r) => ReadOutcome::Record(r),
        None => ReadOutcome::Bad(Some(f)),
    }
}

/// Renames the record file `name` to `.bad-NAME` (its time set to now, from which it is
/// kept [`BAD_KEEP`]).
fn set_aside(dir: &Path, name: &str, open: Option<File>) {
    // A name too long to take the prefix keeps its start and gets the time.
    let bad = if name.len() <= 200 {
        format!("{BAD_PREFIX}{name}")
    } else {
        let mut end = 200;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        format!("{BAD_PREFIX}{}-{}", &name[..end], crate::time::now())
    };
    if fs::rename(dir.join(name), dir.join(bad)).is_ok() {
        if let Some(f) = open {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

/// Removes the temporary files older than [`TEMP_MAX_AGE`] and the `.bad-NAME` files older
/// than [`BAD_KEEP`] among `hidden` (names starting with `.`).
fn tidy(dir: &Path, hidden: &[String], merged: &mut Merged) {
    let now = SystemTime::now();
    for name in hidden {
        let path = dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        let (keep, count) = if name.starts_with(BAD_PREFIX) {
            (BAD_KEEP, &mut merged.removed_bad)
        } else {
            (TEMP_MAX_AGE, &mut merged.removed_temp)
        };
        if age > keep && fs::remove_file(&path).is_ok() {
            *count += 1;
        }
    }
}

/// [`merge`] of at most `max` records, read for at most `read_time` (at least one).
fn merge_bounded(db: &mut Database, max: usize, read_time: Duration) -> Result<Merged, MergeError> {
    // Beside the file the writer opened (its links already resolved and checked).
    let dir = files::side_file(db.file(), SPOOL_SUFFIX);
    let Some(handle) = open_dir(&dir, false)? else {
        return Ok(Merged::default());
    };
    let mut names = Vec::new();
    let mut hidden = Vec::new();
    for e in fs::read_dir(&dir).map_err(io_err(&dir, "cannot list it"))? {
        let Ok(name) = e.map(|e| e.file_name()) else {
            continue;
        };
        // Names the writer did not make (not UTF-8) are left alone.
        let Ok(name) = name.into_string() else {
            continue;
        };
        if name == reserve::RESERVE_DIR {
            // Not a record, nor a temporary file: the reserve's, never tidied here.
            continue;
        }
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            names.push(name);
        }
    }
    if names.is_empty() && hidden.is_empty() {
        return Ok(Merged::default());
    }
    let Some(_lock) = MergeLock::try_take(handle) else {
        return Ok(Merged {
            left: names.len(),
            ..Merged::default()
        });
    };
    let mut merged = Merged::default();
    tidy(&dir, &hidden, &mut merged);
    // Oldest first: the names start with the time of writing.
    names.sort_unstable();
    let reading = Instant::now();
    let mut records: Vec<(PathBuf, Record)> = Vec::new();
    let mut looked_at = 0;
    for name in &names {
        if looked_at >= max || (looked_at > 0 && reading.elapsed() >= read_time) {
            break;
        }
        looked_at += 1;
        let file = dir.join(name);
        match read_record(&file) {
            ReadOutcome::Record(r) => records.push((file, r)),
            ReadOutcome::Bad(open) => {
                set_aside(&dir, name, open);
                merged.bad += 1;
            }
            ReadOutcome::Later => merged.left += 1,
        }
    }
    merged.left += names.len() - looked_at;
    if records.is_empty() {
        return Ok(merged);
    }
    let writes: Vec<SpooledWrite<'_>> = records
        .iter()
        .map(|(_, r)| match r {
            Record::Login { token, at, items } => SpooledWrite::Login {
                token: token.0,
                entry: items.login_entry(*at),
            },
            Record::Logout { of, at } => SpooledWrite::Logout {
                of: match of {
                    LogoutOf::Row(id) => Ok(*id),
                    LogoutOf::Spooled(t) => Err(t.0),
                },
                at: *at,
            },
            Record::LookupLogout {
                token,
                at,
                user,
                tty,
                service,
            } => SpooledWrite::LookupLogout {
                token: token.0,
                user,
                tty,
                service: service.as_deref().unwrap_or(""),
                at: *at,
            },
            Record::Row {
                token,
                kind,
                at,
                user,
                tty,
                host,
                service,
            } => SpooledWrite::Login {
                token: token.0,
                entry: crate::storage::NewEntry {
                    kind: crate::storage::Kind::from_i64(*kind),
                    user,
                    login: *at,
                    logout: None,
                    tty: tty.as_deref(),
                    host: host.as_deref(),
                    service: service.as_deref(),
                },
            },
            Record::CheckedLogout {
                row,
                token,
                at,
                user,
                tty,
                login,
                service,
            } => {
                // Read before the merge's transaction: a row's user, tty and login time
                // never change.
                let same = matches!(db.row(*row), Ok(Some(r))
                    if r.user == *user && r.tty.as_deref().unwrap_or("") == tty && r.login == *login);
                if same {
                    SpooledWrite::Logout {
                        of: Ok(*row),
                        at: *at,
                    }
                } else {
                    SpooledWrite::LookupLogout {
                        token: token.0,
                        user,
                        tty,
                        service: service.as_deref().unwrap_or(""),
                        at: *at,
                    }
                }
            }
        })
        .collect();
    let done = db.merge_spooled(&writes)?;
    let more = merged.left > 0;
    for ((file, record), done) in records.iter().zip(done) {
        if let SpooledDone::Written(row) = done {
            let closed = !matches!(record, Record::Login { .. } | Record::Row { .. });
            merged.rows.push((row, closed));
        }
        match record {
            Record::Login { .. } | Record::Row { .. } => merged.logins += 1,
            // Its login may be among the records left (written under a clock set back):
            // it waits for them.
            Record::Logout {
                of: LogoutOf::Spooled(_),
                ..
            } if done == SpooledDone::NoRow && more => {
                merged.left += 1;
                continue;
            }
            Record::Logout { .. } | Record::LookupLogout { .. } | Record::CheckedLogout { .. } => {
                merged.logouts += 1;
                if done == SpooledDone::NoRow {
                    merged.unmatched += 1;
                }
            }
        }
        // A file left behind (a crash here) is merged again harmlessly: its token is in
        // wtmp_spooled, and a logout keeps the first logout time.
        let _ = fs::remove_file(file);
    }
    if merged.logins + merged.logouts > 0 {
        // Records merged may have taken slots of the reserve (a full disk): those are
        // made again, as far as the disk has room.
        let _ = reserve::fill_if_short(&dir);
    }
    Ok(merged)
}

/// The most record files [`pending_login_on_tty`] reads (the newest).
pub const PENDING_MAX_FILES: usize = 1000;

/// The newest login on `tty` that waits in the spool of the database file `db_file` and
/// whose logout does not wait there too: its token and login time. What a lookup of the
/// newest open session on a tty (upstream's `wtmpdb_get_id`) must also see, so that a login
/// spooled under a lock can be logged out by its tty before it is merged. Reads at most the
/// [`PENDING_MAX_FILES`] newest records, without the merge lock (a record file is complete
/// once it has its name); a spool this process may not use is no spool.
pub fn pending_login_on_tty(db_file: &Path, tty: &str) -> Option<(Token, Usec)> {
    let dir = files::side_file(db_file, SPOOL_SUFFIX);
    open_dir(&dir, false).ok()??;
    let mut names: Vec<String> = fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    names.truncate(PENDING_MAX_FILES);
    let mut logins = Vec::new();
    let mut ended = std::collections::HashSet::new();
    for name in &names {
        match read_record(&dir.join(name)) {
            ReadOutcome::Record(Record::Login { token, at, items }) if items.tty == tty => {
                logins.push((token, at));
            }
            ReadOutcome::Record(Record::Logout {
                of: LogoutOf::Spooled(t),
                ..
            }) => {
                ended.insert(t);
            }
            _ => {}
        }
    }
    logins
        .into_iter()
        .filter(|(t, _)| !ended.contains(t))
        .max_by_key(|&(_, at)| at)
}

/// How many records wait in the spool of the database `path`: 0 when there is no spool
/// directory; an error when it cannot be listed (another user's 0700 directory). Temporary
/// and set-aside files are not records.
pub fn waiting(path: &Path) -> io::Result<usize> {
    waiting_in(&spool_dir(path))
}

/// [`waiting`] in the spool directory `dir` (its name already resolved: see [`spool_dir`]).
fn waiting_in(dir: &Path) -> io::Result<usize> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
            .count()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// How long [`merge_before_read`] waits for the database's lock.
pub const READ_MERGE_WAIT: Duration = SPOOL_AFTER;

/// How long [`merge_before_read`] merges (bounded parts, one after the other, logins passing
/// between them) at most. A spool is large only after the database was held from writers
/// (a reader pinning the log, a lock): 200 ms left a third of 140 sessions' records waiting
/// in a run under load, shown to no one but counted on stderr; an admin's read after such an
/// attack may take a second to show everything.
pub const READ_MERGE_TIME: Duration = Duration::from_secs(1);

/// What a reader learns from [`merge_before_read`].
#[derive(Debug, PartialEq, Eq)]
pub enum BeforeRead {
    /// No record waits in the spool (none did, or this reader merged them all).
    Nothing,
    /// `count` records wait in the spool `dir` and are not in the table: this reader may
    /// not merge them (the spool is another user's, or the database is not its to write),
    /// or the database stayed busy, or there were more than it merges in its time.
    Waiting { count: usize, dir: PathBuf },
    /// The spool cannot be listed by this reader (root's 0700 directory, read by another
    /// user): whether records wait is unknown.
    Unknown,
}

/// Before a report reads the database file `path` itself: when records wait in its spool and
/// this reader owns the spool (the user who writes the database: root, for the system's),
/// merges them first, bounded ([`READ_MERGE_WAIT`] for the lock, [`READ_MERGE_TIME`] in all;
/// a busy database is skipped, not waited for). A database that does not exist is not
/// created. Then tells what still waits, as far as this reader may list the spool.
///
/// The journal events of the rows it merges are sent as `events` says.
pub fn merge_before_read(path: &Path, events: &crate::journal::Events) -> BeforeRead {
    let dir = spool_dir(path);
    match waiting_in(&dir) {
        Ok(0) => return BeforeRead::Nothing,
        Ok(_) => {}
        Err(_) => return BeforeRead::Unknown,
    }
    let is_file = fs::metadata(path).is_ok_and(|m| m.is_file());
    if is_file && matches!(open_dir(&dir, false), Ok(Some(_))) {
        let start = Instant::now();
        let _bound = storage::vfs::bound_sleeps(start + READ_MERGE_WAIT);
        let opts = storage::OpenOptions::read_write()
            .busy_timeout(READ_MERGE_WAIT)
            .migrate(storage::Migrate::UpToRows(super::MIGRATE_MAX_ROWS));
        if let Ok(mut db) = Database::open(path, &opts) {
            while start.elapsed() < READ_MERGE_TIME {
                let merged = merge(&mut db);
                if let Ok(m) = &merged {
                    events.merged(&db, m);
                }
                match merged {
                    Ok(m) if m.left > 0 && m.logins + m.logouts > 0 => {}
                    _ => break,
                }
            }
        }
    }
    match waiting_in(&dir) {
        Ok(0) => BeforeRead::Nothing,
        Ok(count) => BeforeRead::Waiting { count, dir },
        Err(_) => BeforeRead::Unknown,
    }
}

/// Why a merge failed; the records stay in the spool.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Kind, NewEntry};

    fn items() -> SessionItems {
        SessionItems {
            user: "DOMAIN\\alice".into(),
            tty: "pts/1".into(),
            host: Some("192.0.2.1".into()),
            service: None,
        }
    }

    #[test]
    fn records_round_trip_and_nothing_else_parses() {
        let login = Record::Login {
            token: Token(42),
            at: 4_400_000_000_000_000,
            items: items(),
        };
        let logout = Record::Logout {
            of: LogoutOf::Spooled(Token(42)),
            at: -1,
        };
        let by_row = Record::Logout {
            of: LogoutOf::Row(1 << 40),
            at: 7,
        };
        let lookup = Record::LookupLogout {
            token: Token(9),
            at: 300,
            user: "DOMAIN\\alice".into(),
            tty: String::new(),
            service: Some("sshd".into()),
        };
        let lookup_without_service = Record::LookupLogout {
            token: Token(10),
            at: -5,
            user: "bob".into(),
            tty: "pts/0".into(),
            service: None,
        };
        let row = Record::Row {
            token: Token(12),
            kind: 1,
            at: 4_400_000_000_000_000,
            user: "reboot".into(),
            tty: Some("~".into()),
            host: Some("6.1.0\n".into()),
            service: None,
        };
        let checked = Record::CheckedLogout {
            row: 3,
            token: Token(11),
            at: 8,
            user: "e\u{301}\n".into(),
            tty: "pts/4".into(),
            login: -9,
            service: None,
        };
        for r in [
            &login,
            &logout,
            &by_row,
            &lookup,
            &lookup_without_service,
            &checked,
            &row,
        ] {
            assert_eq!(decode(encode(r).as_bytes()).as_ref(), Some(r));
        }
        // Records written before the lookup logout existed read as they always did.
        assert_eq!(
            decode(
                b"wtmpdb-spool 1\nlogin 42\nat 100\nuser 61\ntty 7074732f31\nhost -\nservice -\n"
            ),
            Some(Record::Login {
                token: Token(42),
                at: 100,
                items: SessionItems {
                    user: "a".into(),
                    tty: "pts/1".into(),
                    host: None,
                    service: None,
                },
            })
        );
        assert_eq!(
            decode(b"wtmpdb-spool 1\nlogout row 7\nat 200\n"),
            Some(Record::Logout {
                of: LogoutOf::Row(7),
                at: 200
            })
        );
        let text = encode(&lookup);
        assert_eq!(
            decode(text.replace("lookup 9", "lookup 0").as_bytes()),
            None
        );
        assert_eq!(decode(text.replace("service ", "host ").as_bytes()), None);
        let text = encode(&login);
        assert_eq!(decode(text.trim_end().as_bytes()), None, "no final newline");
        assert_eq!(
            decode(format!("{text}x\n").as_bytes()),
            None,
            "trailing line"
        );
        assert_eq!(
            decode(text.replace("login 42", "login 042").as_bytes()),
            None
        );
        assert_eq!(
            decode(text.replace("login 42", "login -42").as_bytes()),
            None
        );
        assert_eq!(decode(text.replace("user ", "user 0").as_bytes()), None);
        // Found by the fuzzer: upper-case or signed hex is another spelling of the same record.
        assert_eq!(decode(text.replace("4f4d", "4F4D").as_bytes()), None);
        assert_eq!(decode(text.replace("user 44", "user +4").as_bytes()), None);
        assert_eq!(decode(b""), None);
    }

    /// Regression: a login whose user is empty (the library's writer takes one, and writes
    /// its row when the database is free) was spooled, then read back as no record and set
    /// aside at the merge: lost only when the database was busy.
    #[test]
    fn a_login_without_user_survives_the_spool() {
        let login = Record::Login {
            token: Token(7),
            at: 10,
            items: SessionItems {
                user: String::new(),
                ..items()
            },
        };
        assert_eq!(decode(encode(&login).as_bytes()), Some(login));
    }

    /// A merge killed after its commit and before it removed the files merges them again:
    /// the login's token is known, so no row is added twice, and the logout keeps the
    /// first logout time.
    #[test]
    fn a_merge_repeated_after_a_crash_adds_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        let login = login_record(&items(), 100).unwrap();
        let Record::Login { token, .. } = &login else {
            unreachable!()
        };
        let logout = Record::Logout {
            of: LogoutOf::Spooled(*token),
            at: 200,
        };
        let files: Vec<(PathBuf, Vec<u8>)> =
            [put(&path, &login).unwrap(), put(&path, &logout).unwrap()]
                .into_iter()
                .map(|p| {
                    let text = fs::read(&p).unwrap();
                    (p, text)
                })
                .collect();
        assert_eq!(
            merge(&mut db).unwrap(),
            Merged {
                logins: 1,
                logouts: 1,
                rows: vec![(1, false), (1, true)],
                ..Merged::default()
            }
        );
        // The crash: the files are back as they were.
        for (p, text) in &files {
            fs::write(p, text).unwrap();
        }
        let again = Record::Logout {
            of: LogoutOf::Spooled(*token),
            at: 300,
        };
        put(&path, &again).unwrap();
        merge(&mut db).unwrap();
        let rows: Vec<_> = db
            .entries(&Default::default())
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].login, rows[0].logout), (100, Some(200)));
        assert_eq!(rows[0].user, "DOMAIN\\alice");
        // A file that is not a record is set aside, not merged and not lost.
        fs::write(spool_dir(&path).join("99-junk"), b"junk").unwrap();
        assert_eq!(merge(&mut db).unwrap().bad, 1);
        assert!(spool_dir(&path).join(".bad-99-junk").exists());
    }

    fn rows(db: &Database) -> Vec<storage::Entry> {
        db.entries(&Default::default())
            .map(Result::unwrap)
            .collect()
    }

    fn lookup(user: &str, tty: &str, at: Usec) -> Record {
        Record::LookupLogout {
            token: Token::new().unwrap(),
            at,
            user: user.into(),
            tty: tty.into(),
            service: Some("sshd".into()),
        }
    }

    fn session(user: &str, tty: &str) -> SessionItems {
        SessionItems {
            user: user.into(),
            tty: tty.into(),
            host: None,
            service: Some("sshd".into()),
        }
    }

    /// Writes `records` into the spool of `path` as files named in this order (without the
    /// syncs of `put`, which would make hundreds of records slow to write).
    fn spool_in_order(path: &Path, records: &[Record]) {
        let dir = spool_dir(path);
        fs::DirBuilder::new().mode(0o700).create(&dir).ok();
        let before = fs::read_dir(&dir).unwrap().count();
        for (i, r) in records.iter().enumerate() {
            let name = format!("{:020}-{:019}-r", before + i, i);
            fs::write(dir.join(name), encode(r)).unwrap();
        }
    }

    /// Issue 8: a logout by lookup (the login's ID lost) spooled after its login, both
    /// spooled, ends as one closed row; merged in order, it closes only the session its
    /// login left open: not a later login on the same tty (spooled after it, or written
    /// live before the merge), and not again when the merge is repeated after a crash.
    #[test]
    fn a_spooled_lookup_logout_closes_its_session_in_order_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        let first = login_record(&session("alice", "pts/1"), 100).unwrap();
        let again = login_record(&session("alice", "pts/1"), 300).unwrap();
        let files: Vec<PathBuf> = [&first, &lookup("alice", "pts/1", 200), &again]
            .into_iter()
            .map(|r| put(&path, r).unwrap())
            .collect();
        let texts: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
        // Written live after the logout, before the merge: logged in after it.
        let live = db
            .login(&NewEntry {
                kind: Kind::UserProcess,
                user: "alice",
                login: 250,
                logout: None,
                tty: Some("pts/1"),
                host: None,
                service: Some("sshd"),
            })
            .unwrap();
        assert_eq!(
            merge(&mut db).unwrap(),
            Merged {
                logins: 2,
                logouts: 1,
                rows: vec![(2, false), (2, true), (3, false)],
                ..Merged::default()
            }
        );
        let times = |db: &Database| -> Vec<(Usec, Option<Usec>)> {
            let mut t: Vec<_> = rows(db).iter().map(|r| (r.login, r.logout)).collect();
            t.sort();
            t
        };
        assert_eq!(
            times(&db),
            [(100, Some(200)), (250, None), (300, None)],
            "row {live} and the second login stay open"
        );
        // The crash: the files are back. The logout is known, and closes nothing more (not
        // a session that is open now and began before it, as a lookup would).
        for (f, t) in files.iter().zip(&texts) {
            fs::write(f, t).unwrap();
        }
        db.logout(live, 260).unwrap();
        db.login(&NewEntry {
            kind: Kind::UserProcess,
            user: "alice",
            login: 150,
            logout: None,
            tty: Some("pts/1"),
            host: None,
            service: Some("sshd"),
        })
        .unwrap();
        merge(&mut db).unwrap();
        assert_eq!(
            times(&db),
            [(100, Some(200)), (150, None), (250, Some(260)), (300, None)]
        );
        // As live: a lookup that finds several open sessions, or none, closes nothing.
        put(&path, &login_record(&session("bob", "pts/2"), 400).unwrap()).unwrap();
        put(&path, &login_record(&session("bob", "pts/2"), 410).unwrap()).unwrap();
        put(&path, &lookup("bob", "pts/2", 420)).unwrap();
        put(&path, &lookup("carol", "pts/2", 420)).unwrap();
        let m = merge(&mut db).unwrap();
        assert_eq!((m.logouts, m.unmatched), (2, 2));
        assert!(
            rows(&db)
                .iter()
                .all(|r| r.user != "bob" || r.logout.is_none())
        );
    }

    /// Issue 8: after a long outage a merge took every record at once, inside one login's
    /// bounded call. Now a merge takes a bounded part, in order, and the next ones the rest:
    /// a logout in a later part than its login still finds it, by token or by lookup.
    #[test]
    fn a_merge_takes_a_bounded_part_in_order_and_the_next_ones_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        let sessions = 400;
        let mut records = Vec::new();
        for i in 0..sessions {
            let tty = format!("pts/{i}");
            let at = 1000 * i as Usec;
            let login = login_record(&session("alice", &tty), at).unwrap();
            let Record::Login { token, .. } = &login else {
                unreachable!()
            };
            let logout = if i % 2 == 0 {
                Record::Logout {
                    of: LogoutOf::Spooled(*token),
                    at: at + 1,
                }
            } else {
                lookup("alice", &tty, at + 1)
            };
            records.push(login);
            records.push(logout);
        }
        spool_in_order(&path, &records);
        let first = merge(&mut db).unwrap();
        assert!(
            first.logins + first.logouts <= MERGE_MAX_RECORDS,
            "one merge took {first:?}"
        );
        assert_eq!(first.logins + first.logouts + first.left, 2 * sessions);
        let mut merges = 1;
        let mut last = first;
        while last.left > 0 {
            last = merge(&mut db).unwrap();
            merges += 1;
            assert!(merges < 100, "the spool never drained: {last:?}");
        }
        assert!(merges >= 4, "{merges} merges");
        let r = rows(&db);
        assert_eq!(r.len(), sessions);
        assert!(
            r.iter().all(|r| r.logout == Some(r.login + 1)),
            "every logout found its login"
        );
        // Nothing left but the reserve, which the merge filled.
        let left: Vec<_> = fs::read_dir(spool_dir(&path))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [reserve::RESERVE_DIR]);

        // The same, a few records at a time: every cut between a login and its logout.
        let path = dir.path().join("v.db");
        let mut db = Database::open_read_write(&path).unwrap();
        spool_in_order(&path, &records[..40]);
        for max in [1, 2, 3] {
            let m = merge_bounded(&mut db, max, Duration::from_secs(1)).unwrap();
            assert_eq!(m.logins + m.logouts, max);
        }
        while merge_bounded(&mut db, 3, Duration::from_secs(1))
            .unwrap()
            .left
            > 0
        {}
        let r = rows(&db);
        assert_eq!(r.len(), 20);
        assert!(r.iter().all(|r| r.logout == Some(r.login + 1)));
    }

    /// Issue 8: temporary files of writers killed before their rename, and files set aside
    /// as not records, stayed for good. A merge removes the temporary files older than an
    /// hour and the set-aside files older than 30 days, and reports each file it sets aside
    /// or removes once.
    #[test]
    fn a_merge_removes_stale_temporary_files_and_old_bad_files_and_reports_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        let spool = spool_dir(&path);
        let record = put(&path, &login_record(&items(), 10).unwrap()).unwrap();
        let aged = |name: &str, age: Duration| {
            let f = File::create(spool.join(name)).unwrap();
            f.set_modified(SystemTime::now() - age).unwrap();
        };
        let hour = Duration::from_secs(3600);
        aged(".00000000000000000001-0000000000000000001-login", 2 * hour);
        aged(".00000000000000000002-0000000000000000002-login", hour / 2);
        aged(".bad-old", BAD_KEEP + hour);
        aged(".bad-recent", BAD_KEEP - hour);
        fs::write(spool.join("junk"), b"junk").unwrap();
        // A set-aside file counts from when it was set aside, not from when it was written.
        File::open(spool.join("junk"))
            .unwrap()
            .set_modified(SystemTime::now() - BAD_KEEP - hour)
            .unwrap();
        let m = merge(&mut db).unwrap();
        assert_eq!(
            m,
            Merged {
                logins: 1,
                bad: 1,
                removed_temp: 1,
                removed_bad: 1,
                rows: vec![(1, false)],
                ..Merged::default()
            }
        );
        let summary = m.summary().unwrap();
        assert!(
            summary.starts_with("Merged the spool: 1 logins, 0 logouts;")
                && summary.contains("1 stale temporary files removed")
                && summary.contains(".bad-* files older than 30 days removed"),
            "{summary}"
        );
        assert!(!record.exists());
        let mut left: Vec<String> = fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".00000000000000000002-0000000000000000002-login",
                ".bad-junk",
                ".bad-recent",
                reserve::RESERVE_DIR,
            ]
        );
        // Nothing new: nothing to report.
        assert_eq!(merge(&mut db).unwrap(), Merged::default());
    }

    #[test]
    fn a_spool_directory_of_another_mode_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let spool = files::side_file(&db, SPOOL_SUFFIX);
        fs::create_dir(&spool).unwrap();
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            open_dir(&spool, false),
            Err(SpoolError::Refused { .. })
        ));
        fs::remove_dir(&spool).unwrap();
        std::os::unix::fs::symlink(dir.path(), &spool).unwrap();
        assert!(open_dir(&spool, true).is_err());
    }

    fn slots_of(path: &Path) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut s: Vec<_> = fs::read_dir(spool_dir(path).join(reserve::RESERVE_DIR))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().ino(),
                )
            })
            .collect();
        s.sort();
        s
    }

    /// The reserve lies inside the spool under a name starting with `.`: a merge, its
    /// clean-up of stale temporary and set-aside files, and the count of records waiting
    /// must never take it for one of those, however old it is.
    #[test]
    fn a_merge_and_its_clean_up_leave_the_reserve_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        assert_eq!(fill_reserve(&path).unwrap(), reserve::RESERVE_SLOTS);
        let spool = spool_dir(&path);
        let slots = slots_of(&path);
        assert_eq!(slots.len(), reserve::RESERVE_SLOTS);
        // Only the reserve: nothing waits, nothing to merge, nothing reported.
        assert_eq!(waiting(&path).unwrap(), 0);
        assert_eq!(merge(&mut db).unwrap(), Merged::default());
        // Old enough for every clean-up: the directory and each slot.
        let old = SystemTime::now() - BAD_KEEP - Duration::from_secs(3600);
        let reserve = spool.join(reserve::RESERVE_DIR);
        for (name, _) in &slots {
            File::open(reserve.join(name))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        File::open(&reserve).unwrap().set_modified(old).unwrap();
        // A merge with work to do: a record, a stale temporary file, a file to set aside.
        put(&path, &login_record(&items(), 10).unwrap()).unwrap();
        File::create(spool.join(".00000000000000000001-0000000000000000001-login"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        fs::write(spool.join("junk"), b"junk").unwrap();
        let m = merge(&mut db).unwrap();
        assert_eq!((m.logins, m.bad, m.removed_temp), (1, 1, 1), "{m:?}");
        assert_eq!(slots_of(&path), slots, "the slots, each the same file");
        assert!(
            !spool
                .join(format!("{BAD_PREFIX}{}", reserve::RESERVE_DIR))
                .exists()
        );
        assert_eq!(waiting(&path).unwrap(), 0);
        assert_eq!(pending_login_on_tty(&path, "pts/1"), None);
    }

    /// A record taken into a slot is the file a spool write makes: its name, its exact
    /// text (the slot's zeros cut off), mode 0600; the slot is gone from the reserve, and
    /// the merge that merges the record fills the reserve again.
    #[test]
    fn a_record_written_into_a_slot_is_a_plain_record_and_the_merge_refills() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        fill_reserve(&path).unwrap();
        let spool = spool_dir(&path);
        let handle = open_dir(&spool, false).unwrap().unwrap();
        let record = login_record(&items(), 10).unwrap();
        let text = encode(&record);
        let (temp, done) = (spool.join(".x-login"), spool.join("x-login"));
        let taken = reserve::take(&spool, &handle, &temp, &done, text.as_bytes()).unwrap();
        assert!(
            matches!(taken, reserve::Taken::Done { left } if left == reserve::RESERVE_SLOTS - 1),
            "{taken:?}"
        );
        assert!(!temp.exists());
        assert_eq!(fs::read(&done).unwrap(), text.as_bytes());
        assert_eq!(fs::metadata(&done).unwrap().mode() & 0o777, 0o600);
        assert_eq!(waiting(&path).unwrap(), 1);
        // Files in the reserve that are not slots are not taken: a link, a short file.
        let reserve = spool.join(reserve::RESERVE_DIR);
        for (name, _) in slots_of(&path) {
            fs::remove_file(reserve.join(name)).unwrap();
        }
        std::os::unix::fs::symlink(&path, reserve.join("link")).unwrap();
        fs::write(reserve.join("short"), b"0").unwrap();
        let again = reserve::take(&spool, &handle, &temp, &spool.join("y-login"), b"x\n");
        assert!(matches!(again, Ok(reserve::Taken::Empty)), "{again:?}");
        assert!(fs::read(&path).unwrap().starts_with(b"SQLite format 3"));
        // The merge takes the record and makes the slots again (the junk removed).
        assert_eq!(merge(&mut db).unwrap().logins, 1);
        assert_eq!(slots_of(&path).len(), reserve::RESERVE_SLOTS);
        assert_eq!(rows(&db).len(), 1);
    }

    /// A slot holds the largest record a merge reads back.
    #[test]
    fn the_largest_record_fits_a_slot() {
        let item = "\u{7f}".repeat(crate::session::MAX_ITEM_BYTES);
        let big = [
            Record::Row {
                token: Token(i64::MAX),
                kind: i64::MIN,
                at: i64::MIN,
                user: item.clone(),
                tty: Some(item.clone()),
                host: Some(item.clone()),
                service: Some(item.clone()),
            },
            Record::Login {
                token: Token(i64::MAX),
                at: i64::MIN,
                items: SessionItems {
                    user: item.clone(),
                    tty: item.clone(),
                    host: Some(item.clone()),
                    service: Some(item.clone()),
                },
            },
            Record::CheckedLogout {
                row: i64::MAX,
                token: Token(i64::MAX),
                at: i64::MIN,
                user: item.clone(),
                tty: item.clone(),
                login: i64::MIN,
                service: Some(item.clone()),
            },
        ];
        for r in &big {
            let text = encode(r);
            assert_eq!(decode(text.as_bytes()).as_ref(), Some(r));
            assert!(text.len() as u64 <= reserve::SLOT_BYTES, "{}", text.len());
        }
    }

    /// A reserve that is a link, or open to others, is neither filled nor used.
    #[test]
    fn a_reserve_of_another_mode_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        drop(Database::open_read_write(&path).unwrap());
        let spool = spool_dir(&path);
        fs::DirBuilder::new().mode(0o700).create(&spool).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        let reserve = spool.join(reserve::RESERVE_DIR);
        std::os::unix::fs::symlink(&elsewhere, &reserve).unwrap();
        assert!(fill_reserve(&path).is_err());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        fs::remove_file(&reserve).unwrap();
        fs::create_dir(&reserve).unwrap();
        fs::set_permissions(&reserve, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(fill_reserve(&path).is_err());
        let handle = open_dir(&spool, false).unwrap().unwrap();
        assert!(reserve::take(&spool, &handle, &spool.join(".t"), &spool.join("t"), b"x").is_err());
    }
}
