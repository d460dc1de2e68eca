//! The spool: where a session write goes when the database cannot take it in time.
//!
//! A login must not wait long, and must not be lost: when the database stays locked past
//! [`SPOOL_AFTER`] (an admin's `sqlite3` holding `BEGIN EXCLUSIVE`, another program's long
//! transaction, the first index build on a large upstream file, a user who holds a lock on
//! the world-readable files with `fcntl`), the writer records the login or logout in the
//! spool instead, and the next writer that gets the database merges the spool into it, logins
//! before logouts, oldest first.
//!
//! * **Where**: the directory `NAME-spool` beside the database file (its links resolved), mode
//!   0700, owned by the writer (root, for the system's database): no other user can read the
//!   records, add one, or lock the directory. A directory there that is not ours, or that
//!   others may enter, is refused (the write then fails as before).
//! * **Durable**: each record is one file, written under a name starting with `.`, synced,
//!   renamed to its final name and the directory synced: once the call returns, the record
//!   survives a crash and a power loss, and a reader never sees half a record.
//! * **Merged once**: a spooled login gets a random token (its ID to be); merging it stores
//!   the token with the new row's ID in the table `wtmp_spooled` (which upstream never reads),
//!   in the same transaction, so a merge interrupted before the files are removed does not
//!   add the row again, and a logout spooled with the token finds the row.
//! * **One merger**: a merger takes `flock` on the directory without waiting; others skip.
//!
//! The format of a record is lines of `key value`, strings in hex (items are at most
//! [`super::MAX_ITEM_BYTES`] bytes): simple to parse exactly, and fuzzed
//! (`fuzz/fuzz_targets/spool_record.rs`).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::{self, Database, Kind, NewEntry, files};
use crate::time::Usec;

use super::SessionItems;

/// How long a session write waits for the database before it spools. Longer than a
/// maintenance batch (import and rotate commit every 20-25 ms) and than the queue of a burst
/// of logins, short enough that a login never waits visibly.
pub const SPOOL_AFTER: Duration = Duration::from_millis(40);

/// The suffix of the spool directory's name.
pub const SPOOL_SUFFIX: &str = "-spool";

/// The largest record file read back (a record is a few kilobytes at most).
const MAX_RECORD_BYTES: u64 = 16 * 1024;

/// A spooled login's stand-in for its row ID until the spool is merged: positive, never
/// reused (64 random bits, the sign cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub i64);

impl Token {
    fn new() -> io::Result<Token> {
        let mut b = [0u8; 8];
        File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Token((i64::from_ne_bytes(b) & i64::MAX).max(1)))
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
    if meta.uid() != files::euid() {
        return Err(refuse(format!(
            "owned by uid {}, not the writer (uid {})",
            meta.uid(),
            files::euid()
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

/// Writes `record` durably into the spool of the database `path`.
pub fn put(path: &Path, record: &Record) -> Result<PathBuf, SpoolError> {
    let dir = spool_dir(path);
    let handle = open_dir(&dir, true)?.expect("created");
    let (kind, token) = match record {
        Record::Login { token, .. } => ("login", token.0),
        Record::Logout { .. } => ("logout", Token::new().map(|t| t.0).unwrap_or(0)),
    };
    // Names sort by time of writing; the token keeps them apart.
    let name = format!("{:020}-{:019}-{kind}", crate::time::now().max(0), token);
    let temp = dir.join(format!(".{name}"));
    let done = dir.join(&name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(io_err(&dir, "cannot create a record"))?;
    let written = f
        .write_all(encode(record).as_bytes())
        .and_then(|()| f.sync_data())
        .and_then(|()| fs::rename(&temp, &done))
        .and_then(|()| handle.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_err(&dir, "cannot write a record")(e));
    }
    Ok(done)
}

/// A new login record for `items` at `at`.
pub fn login_record(items: &SessionItems, at: Usec) -> Result<Record, io::Error> {
    Ok(Record::Login {
        token: Token::new()?,
        at,
        items: items.clone(),
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
        _ => return None,
    };
    lines.next().is_none().then_some(record)
}

/// What a merge did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub logins: usize,
    pub logouts: usize,
    /// Record files that could not be read as records, renamed to `.bad-NAME` and left.
    pub bad: usize,
}

/// Takes `flock` on the spool directory for as long as it lives, or None when another
/// merger holds it.
struct MergeLock {
    /// Closing the descriptor releases the lock.
    _held: File,
}

impl MergeLock {
    fn try_take(dir: File) -> Option<MergeLock> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (rc == 0).then_some(MergeLock { _held: dir })
    }
}

/// Merges the spool of `db` into it: one transaction, then the merged files are removed.
/// Nothing to do (no spool, an empty one, another merger at work) is `Ok` with nothing
/// merged; a database that is busy leaves every record for a later writer.
pub fn merge(db: &mut Database) -> Result<Merged, MergeError> {
    // Beside the file the writer opened (its links already resolved and checked).
    let dir = files::side_file(db.file(), SPOOL_SUFFIX);
    let Some(handle) = open_dir(&dir, false)? else {
        return Ok(Merged::default());
    };
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(io_err(&dir, "cannot list it"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    if names.is_empty() {
        return Ok(Merged::default());
    }
    let Some(_lock) = MergeLock::try_take(handle) else {
        return Ok(Merged::default());
    };
    names.sort();
    let mut merged = Merged::default();
    let mut logins = Vec::new();
    let mut logouts = Vec::new();
    let mut files_done = Vec::new();
    for name in names {
        let file = dir.join(&name);
        let text = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&file)
            .and_then(|f| {
                let mut v = Vec::new();
                f.take(MAX_RECORD_BYTES + 1).read_to_end(&mut v).map(|_| v)
            });
        match text
            .ok()
            .filter(|t| t.len() as u64 <= MAX_RECORD_BYTES)
            .as_deref()
            .and_then(decode)
        {
            Some(Record::Login { token, at, items }) => logins.push((token.0, at, items)),
            Some(Record::Logout { of, at }) => logouts.push((of, at)),
            None => {
                let _ = fs::rename(&file, dir.join(format!(".bad-{name}")));
                merged.bad += 1;
                continue;
            }
        }
        files_done.push(file);
    }
    let entries: Vec<(i64, NewEntry<'_>)> = logins
        .iter()
        .map(|(token, at, items)| {
            (
                *token,
                NewEntry {
                    kind: Kind::UserProcess,
                    user: &items.user,
                    login: *at,
                    logout: None,
                    tty: Some(&items.tty),
                    host: items.host.as_deref(),
                    service: items.service.as_deref(),
                },
            )
        })
        .collect();
    let outs: Vec<(Result<i64, i64>, Usec)> = logouts
        .iter()
        .map(|(of, at)| {
            let of = match of {
                LogoutOf::Row(id) => Ok(*id),
                LogoutOf::Spooled(t) => Err(t.0),
            };
            (of, *at)
        })
        .collect();
    db.merge_spooled(&entries, &outs)?;
    merged.logins = entries.len();
    merged.logouts = outs.len();
    for f in files_done {
        // A file left behind (a crash here) is merged again harmlessly: its login's token is
        // in wtmp_spooled, and a logout keeps the first logout time.
        let _ = fs::remove_file(f);
    }
    Ok(merged)
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
        for r in [&login, &logout, &by_row] {
            assert_eq!(decode(encode(r).as_bytes()).as_ref(), Some(r));
        }
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
                bad: 0
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
}
