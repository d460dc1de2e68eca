//! Failed logins: a file of their own beside the session database, readable only by root
//! (and a group the admin names).
//!
//! A user name typed at a failed login is often a password typed at the wrong prompt, so
//! failures never go into the session database, which every user's `last` reads and which
//! upstream's tools read: they live in [`failures_path`] of it (`wtmp.db` gives
//! `wtmp.db-failed`), one function, so every front end that names a session database (the
//! module's `database=`, `wtmpdb -f`, the daemon's `--database`) addresses its failures by
//! the same name, and upstream's tools reading `wtmp.db` never see them.
//!
//! The file is created 0600 (0640 with the group of [`FailedFiles::group`]), whatever the
//! umask; an existing file that others may read is closed again (its "other" bits cleared)
//! before anything is written to it, and a writer that cannot do that refuses to write. The
//! side files get the database's mode. Links are followed only when root or the caller owns
//! them, as for the session database. The file is kept only in a directory of root's or the
//! writer's that other users cannot write, and an existing file or side file must be the
//! writer's: whoever may create a name there may make the file first and read through it.
//!
//! The journal is WAL with persistent side files (readers of the admin's group need them) and
//! `synchronous=FULL` (a recorded failure survives a power loss): one sync per attempt. No
//! checkpoint at close (it cost two more syncs per attempt, one connection per attempt):
//! the writer whose commit leaves more than [`CHECKPOINT_PAGES`] pages in the log copies it
//! into the file and truncates it, without waiting for anyone. Growth is bounded by [`Retention`]: the count rule on every
//! [`TRIM_EVERY`]th write, both rules by `wtmpdb rotate`.

use std::fs::{self, Permissions};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::error::{Error, sql};
use super::files::{align_side_files, create_parent, file_error, trusted_target};
use super::queries::{
    CREATE_FAILED, FAILED_AFTER_ID, FAILED_BETWEEN, FAILED_COUNT_SINCE, FAILED_NEWEST_SINCE,
    FAILED_OLDEST, FAILED_SAME, FAILED_SEEN, FAILED_SETTINGS, INSERT_FAILED, PRUNE_FAILED,
    SET_FAILED_SEEN, TRIM_FAILED, USER_VERSION,
};
use super::side_files::side_file;
use crate::sys::euid;
use crate::time::{USEC_PER_SEC, Usec};

/// The failures' file of the session database `db`: the one rule that maps a name to it.
/// Beside the file a writer opens, found through the links a writer follows (as the spool
/// is): Debian's /var/lib/wtmpdb/wtmp.db and the /var/log/wtmp.db it links to name the same
/// failures.
pub fn failures_path(db: &Path) -> PathBuf {
    let file = super::files::trusted_file(db).unwrap_or_else(|| db.to_path_buf());
    side_file(&file, "-failed")
}

/// The mode of a failures' file the core creates: root's alone (the daemon's rule, see
/// `storage::private`).
pub const FAILED_MODE: u32 = super::private::Private::ROOT.mode();

/// The mode with a readers' group.
pub const FAILED_GROUP_MODE: u32 = super::private::Private { group: Some(0) }.mode();

/// Pages in the log after which a writer checkpoints (each new connection reads the log to
/// rebuild its index: kept short).
pub const CHECKPOINT_PAGES: u64 = 128;

/// Every how many writes the count rule of the default retention is applied on the way.
pub const TRIM_EVERY: i64 = 256;

/// How a writer creates the failures' file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedFiles {
    /// The group that may read failures too (the file is then 0640 and that group's).
    pub group: Option<u32>,
}

/// How long failures are kept, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Days; 0 keeps them whatever their age.
    pub max_age_days: u32,
    /// Attempts; 0 keeps any number.
    pub max_count: u64,
}

impl Default for Retention {
    /// 90 days, and the newest 100,000 attempts (about 10 MB).
    fn default() -> Self {
        Retention {
            max_age_days: 90,
            max_count: 100_000,
        }
    }
}

/// One recorded failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub id: i64,
    /// µs since the epoch.
    pub time: Usec,
    /// The user name as typed.
    pub user: String,
    pub tty: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    /// The process that authenticated.
    pub pid: Option<i64>,
}

/// A failed attempt to record.
#[derive(Clone, Copy, Debug)]
pub struct NewFailure<'a> {
    pub time: Usec,
    pub user: &'a str,
    pub tty: Option<&'a str>,
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
    pub pid: Option<i64>,
}

/// What a successful login is told: the attempts on its user since the last successful login
/// reported before it, and the newest of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub count: u64,
    pub last: Option<Failure>,
}

impl Notice {
    /// The lines pam_lastlog's `showfailed` printed, time in `format`. None without failures.
    pub fn text(&self, format: impl Fn(Usec) -> String) -> Option<String> {
        let last = self.last.as_ref().filter(|_| self.count > 0)?;
        // Host and terminal as recorded, made safe here: a line break of theirs would
        // otherwise be a line of the notice.
        use crate::escape::for_terminal;
        let mut s = format!("Last failed login: {}", format(last.time));
        if let Some(h) = last.host.as_deref().filter(|h| !h.is_empty()) {
            s.push_str(&format!(" from {}", for_terminal(h)));
        }
        if let Some(t) = last.tty.as_deref().filter(|t| !t.is_empty()) {
            s.push_str(&format!(" on {}", for_terminal(t)));
        }
        s.push('\n');
        if self.count == 1 {
            s.push_str("There was 1 failed login attempt since the last successful login.");
        } else {
            s.push_str(&format!(
                "There were {} failed login attempts since the last successful login.",
                self.count
            ));
        }
        Some(s)
    }
}

/// What can go wrong with the failures' file.
#[derive(Debug, thiserror::Error)]
pub enum FailedError {
    /// The caller may not read (or write) it: failures are root's.
    #[error(
        "{}: failed logins are readable only by root (and the group the admin named): {source}",
        path.display()
    )]
    NotPermitted {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Storage(#[from] Error),
}

pub type FailedResult<T> = std::result::Result<T, FailedError>;

/// An open failures' file.
pub struct FailureStore {
    conn: Connection,
    path: PathBuf,
    /// The wait for another writer's lock, restored after a checkpoint that waits for none.
    busy: Duration,
}

fn denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// Creates `file` with `mode` and `group` unless it exists; closes an existing file that
/// others may read.
fn settle_file(path: &Path, file: &Path, files: &FailedFiles) -> FailedResult<()> {
    closed_directory(path, file)?;
    let mode = if files.group.is_some() {
        FAILED_GROUP_MODE
    } else {
        FAILED_MODE
    };
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FAILED_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file);
    match created {
        Ok(f) => {
            // Root's alone first, whatever the umask; the group and its bit after.
            f.set_permissions(Permissions::from_mode(FAILED_MODE))
                .map_err(|e| file_error(path, "cannot set the mode of", file, e))?;
            if let Some(gid) = files.group {
                std::os::unix::fs::fchown(&f, None, Some(gid))
                    .map_err(|e| file_error(path, "cannot give the readers' group to", file, e))?;
                f.set_permissions(Permissions::from_mode(mode))
                    .map_err(|e| file_error(path, "cannot set the mode of", file, e))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = fs::symlink_metadata(file)
                .map_err(|e| file_error(path, "cannot examine", file, e))?;
            if !m.file_type().is_file() {
                let e = io::Error::other("not a regular file");
                return Err(file_error(path, "refuses to write failures into", file, e).into());
            }
            writers_own(path, file, &m)?;
            if m.mode() & 0o007 != 0 {
                // Never through a file others may read.
                fs::set_permissions(file, Permissions::from_mode(m.mode() & 0o770))
                    .map_err(|e| file_error(path, "cannot close to others", file, e))?;
            }
            Ok(())
        }
        Err(e) if denied(&e) => Err(FailedError::NotPermitted {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(e) => Err(file_error(path, "cannot create", file, e).into()),
    }
}

fn refused(path: &Path, file: &Path, why: String) -> FailedError {
    Error::Refused(Box::new(super::error::Refusal {
        path: path.to_path_buf(),
        file: file.to_path_buf(),
        why,
    }))
    .into()
}

/// The directory of the failures' file `file` must be root's or the writer's and closed to
/// others' writes: whoever may create names in it may make the file, or its log, before the
/// writer does, and read every attempt written into it.
fn closed_directory(path: &Path, file: &Path) -> FailedResult<()> {
    let dir = super::side_files::directory_of(file);
    let m = fs::metadata(dir).map_err(|e| file_error(path, "cannot examine", dir, e))?;
    if m.uid() != 0 && m.uid() != euid() {
        return Err(refused(
            path,
            dir,
            format!(
                "owned by uid {}: failed logins are kept only in a directory of root's or the writer's",
                m.uid()
            ),
        ));
    }
    if m.mode() & 0o002 != 0 {
        return Err(refused(
            path,
            dir,
            format!(
                "mode {:04o}: every user may create files in it, and failed logins are kept only where nobody else can",
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// An existing failures' file or side file `file` (whose `lstat` gave `m`) must be the
/// writer's: another user's stays readable to that user whatever its mode.
fn writers_own(path: &Path, file: &Path, m: &fs::Metadata) -> FailedResult<()> {
    if m.uid() != euid() {
        return Err(refused(
            path,
            file,
            format!(
                "owned by uid {}, not the writer (uid {}): failed logins are not written where another user reads them (remove it)",
                m.uid(),
                euid()
            ),
        ));
    }
    Ok(())
}

/// Every side file of the failures' file `file` that exists must be the writer's.
fn side_files_writers(path: &Path, file: &Path) -> FailedResult<()> {
    for suffix in super::files::SIDE_SUFFIXES {
        let side = side_file(file, suffix);
        match fs::symlink_metadata(&side) {
            Ok(m) => writers_own(path, &side, &m)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(path, "cannot examine", &side, e).into()),
        }
    }
    Ok(())
}

fn failure(r: &rusqlite::Row<'_>) -> rusqlite::Result<Failure> {
    Ok(Failure {
        id: r.get(0)?,
        time: r.get(1)?,
        user: r.get(2)?,
        tty: r.get(3)?,
        host: r.get(4)?,
        service: r.get(5)?,
        pid: r.get(6)?,
    })
}

impl FailureStore {
    /// Opens the failures' file `path` to write, creating it (and its directories) if
    /// missing; SQLite's lock is waited for at most `busy`.
    pub fn open_write(path: &Path, files: &FailedFiles) -> FailedResult<FailureStore> {
        Self::open_write_within(path, files, Duration::from_millis(500))
    }

    /// As [`FailureStore::open_write`], waiting at most `busy` for another writer.
    pub fn open_write_within(
        path: &Path,
        files: &FailedFiles,
        busy: Duration,
    ) -> FailedResult<FailureStore> {
        create_parent(path)?;
        let file = trusted_target(path)?;
        settle_file(path, &file, files)?;
        side_files_writers(path, &file)?;
        align_side_files(path, &file)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = crate::sqlite::open_with_flags(&file, flags).map_err(sql("open failures"))?;
        conn.busy_timeout(busy).map_err(sql("busy timeout"))?;
        super::vfs::persist_wal(&conn);
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(sql("no checkpoint on close"))?;
        let store = FailureStore {
            conn,
            path: path.to_path_buf(),
            busy,
        };
        store.setup(true)?;
        Ok(store)
    }

    /// Opens the failures' file `path` to read; None when it does not exist (nothing was
    /// ever recorded). A caller who may not read it gets [`FailedError::NotPermitted`].
    pub fn open_read(path: &Path) -> FailedResult<Option<FailureStore>> {
        // Only a regular file is read: SQLite's open of a FIFO put there would wait for a
        // writer. Looked at without opening it: closing a descriptor of the file would drop
        // every fcntl lock this process holds on it (POSIX), those of the store opened
        // below and of wtmpdbd's kept writer (which other threads' calls read beside) too.
        let looked = fs::metadata(path)
            .and_then(|m| m.is_file().then(|| crate::sys::may_read(path)).transpose());
        match looked {
            Ok(None) => {
                let e = io::Error::other("not a regular file");
                return Err(file_error(path, "cannot read failures from", path, e).into());
            }
            Ok(Some(())) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if denied(&e) => {
                return Err(FailedError::NotPermitted {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => return Err(file_error(path, "cannot open", path, e).into()),
        }
        // A writer may: the side files then follow the file's mode and the schema exists.
        // Only its own file, where a writer would write: another's (a copy in /tmp, say) is
        // read as it is.
        let write = fs::metadata(path)
            .is_ok_and(|m| m.uid() == euid() && (euid() == 0 || m.mode() & 0o200 != 0))
            && trusted_target(path).is_ok_and(|f| closed_directory(path, &f).is_ok());
        if write {
            return Self::open_write(path, &FailedFiles::default()).map(Some);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = crate::sqlite::open_with_flags(path, flags).map_err(sql("open failures"))?;
        let busy = Duration::from_secs(5);
        conn.busy_timeout(busy).map_err(sql("busy timeout"))?;
        let store = FailureStore {
            conn,
            path: path.to_path_buf(),
            busy,
        };
        store.setup(false)?;
        Ok(Some(store))
    }

    fn setup(&self, write: bool) -> FailedResult<()> {
        if write {
            self.conn
                .query_row(super::queries::JOURNAL_MODE_WAL, [], |_| Ok(()))
                .map_err(sql("journal mode of failures"))?;
            self.conn
                .execute_batch(FAILED_SETTINGS)
                .map_err(sql("settings of failures"))?;
            let version: i64 = self
                .conn
                .query_row(USER_VERSION, [], |r| r.get(0))
                .map_err(sql("schema of failures"))?;
            if version < 1 {
                self.conn
                    .execute_batch(CREATE_FAILED)
                    .map_err(sql("create failures"))?;
            }
        }
        Ok(())
    }

    /// The name it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Records one attempt; returns its ID. Every [`TRIM_EVERY`]th keeps the newest of the
    /// default [`Retention`]'s count.
    pub fn record(&self, f: &NewFailure<'_>) -> FailedResult<i64> {
        self.conn
            .execute(
                INSERT_FAILED,
                params![f.time, f.user, f.tty, f.host, f.service, f.pid],
            )
            .map_err(sql("record failure"))?;
        let id = self.conn.last_insert_rowid();
        if id % TRIM_EVERY == 0 {
            let keep = Retention::default().max_count as i64;
            self.conn
                .execute(TRIM_FAILED, [keep])
                .map_err(sql("trim failures"))?;
        }
        self.checkpoint_past_the_mark();
        Ok(id)
    }

    /// Copies the log into the file and truncates it, waiting for no lock: true when the
    /// log is empty afterwards, every attempt in the file alone (a reader or writer in the
    /// way leaves it for a later try). For a writer that keeps the store open (the daemon),
    /// once its writes pause, so that a copy of the file, a backup or a rename sees every
    /// attempt.
    pub fn checkpoint_now(&self) -> bool {
        if self.conn.busy_timeout(Duration::ZERO).is_err() {
            return false;
        }
        let _ = self
            .conn
            .query_row(super::queries::CHECKPOINT_PASSIVE, [], |_| Ok(()));
        let emptied = super::log_truncated(&self.conn);
        let _ = self.conn.busy_timeout(self.busy);
        emptied
    }

    /// Copies the log into the file and truncates it when it holds more than
    /// [`CHECKPOINT_PAGES`] pages, waiting for no lock (a reader or writer in the way leaves
    /// it to a later writer).
    fn checkpoint_past_the_mark(&self) {
        let log = side_file(&self.path, "-wal");
        let big = fs::metadata(&log).is_ok_and(|m| m.len() > CHECKPOINT_PAGES * 4096 + 32);
        if big && self.conn.busy_timeout(Duration::ZERO).is_ok() {
            super::log_truncated(&self.conn);
            let _ = self.conn.busy_timeout(self.busy);
        }
    }

    /// Records the attempts of an imported file in one transaction, each only when no
    /// attempt on its user at its time on its tty is recorded yet (importing a file again
    /// adds nothing). Returns how many were added.
    pub fn import(&self, attempts: &[NewFailure<'_>]) -> FailedResult<u64> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql("begin import"))?;
        let mut added = 0;
        for f in attempts {
            let known: bool = tx
                .query_row(FAILED_SAME, params![f.user, f.time, f.tty], |r| r.get(0))
                .map_err(sql("look up failure"))?;
            if !known {
                tx.execute(
                    INSERT_FAILED,
                    params![f.time, f.user, f.tty, f.host, f.service, f.pid],
                )
                .map_err(sql("import failure"))?;
                added += 1;
            }
        }
        tx.commit().map_err(sql("commit import"))?;
        Ok(added)
    }

    /// The attempts from `since` to `until`, newest first, each handed to `each` until it
    /// breaks.
    pub fn each_between(
        &self,
        since: Usec,
        until: Usec,
        mut each: impl FnMut(Failure) -> ControlFlow<()>,
    ) -> FailedResult<()> {
        let mut stmt = self
            .conn
            .prepare(FAILED_BETWEEN)
            .map_err(sql("read failures"))?;
        let mut rows = stmt
            .query(params![since, until])
            .map_err(sql("read failures"))?;
        while let Some(r) = rows.next().map_err(sql("read failures"))? {
            let f = failure(r).map_err(sql("read failures"))?;
            if each(f).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The attempts after ID `after`, in ID order, each handed to `each`.
    pub fn each_after_id(&self, after: i64, mut each: impl FnMut(Failure)) -> FailedResult<()> {
        let mut stmt = self
            .conn
            .prepare(FAILED_AFTER_ID)
            .map_err(sql("read failures"))?;
        let mut rows = stmt.query([after]).map_err(sql("read failures"))?;
        while let Some(r) = rows.next().map_err(sql("read failures"))? {
            each(failure(r).map_err(sql("read failures"))?);
        }
        Ok(())
    }

    /// The time of the oldest attempt kept.
    pub fn oldest(&self) -> FailedResult<Option<Usec>> {
        Ok(self
            .conn
            .query_row(FAILED_OLDEST, [], |r| r.get(0))
            .map_err(sql("read failures"))?)
    }

    /// The attempts on `user` since the last successful login reported, and the newest;
    /// then records `now` as the last successful login of `user`.
    pub fn notice(&self, user: &str, now: Usec) -> FailedResult<Notice> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql("begin notice"))?;
        let seen: Usec = tx
            .query_row(FAILED_SEEN, [user], |r| r.get(0))
            .optional()
            .map_err(sql("last successful login"))?
            .unwrap_or(Usec::MIN);
        let count: i64 = tx
            .query_row(FAILED_COUNT_SINCE, params![user, seen], |r| r.get(0))
            .map_err(sql("count failures"))?;
        let last = tx
            .query_row(FAILED_NEWEST_SINCE, params![user, seen], failure)
            .optional()
            .map_err(sql("newest failure"))?;
        tx.execute(SET_FAILED_SEEN, params![user, now])
            .map_err(sql("record successful login"))?;
        tx.commit().map_err(sql("commit notice"))?;
        Ok(Notice {
            count: count as u64,
            last,
        })
    }

    /// Applies `r` at `now`: forgets attempts older than its age, then all but its newest
    /// count. Returns how many were forgotten.
    pub fn prune(&self, r: Retention, now: Usec) -> FailedResult<u64> {
        let mut gone = 0;
        if r.max_age_days > 0 {
            let before = now - i64::from(r.max_age_days) * 86_400 * USEC_PER_SEC;
            gone += self
                .conn
                .execute(PRUNE_FAILED, [before])
                .map_err(sql("prune failures"))?;
        }
        if r.max_count > 0 {
            gone += self
                .conn
                .execute(
                    TRIM_FAILED,
                    [i64::try_from(r.max_count).unwrap_or(i64::MAX)],
                )
                .map_err(sql("trim failures"))?;
        }
        Ok(gone as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(t: Usec, user: &str) -> NewFailure<'_> {
        NewFailure {
            time: t,
            user,
            tty: Some("ssh:notty"),
            host: Some("192.0.2.7"),
            service: Some("sshd"),
            pid: Some(42),
        }
    }

    #[test]
    fn the_failures_file_is_derived_from_the_session_database_name() {
        assert_eq!(
            failures_path(Path::new("/var/lib/wtmpdb/wtmp.db")),
            Path::new("/var/lib/wtmpdb/wtmp.db-failed")
        );
    }

    #[test]
    fn a_new_file_is_its_writer_s_alone_and_a_world_readable_one_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        s.record(&new(1, "root")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&p), FAILED_MODE);
        for side in ["-wal", "-shm"] {
            let f = side_file(&p, side);
            if f.exists() {
                assert_eq!(mode(&f), FAILED_MODE, "{side}");
            }
        }
        drop(s);
        fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        assert_eq!(mode(&p), 0o640);
    }

    /// Whoever may create names in the directory may make the failures' file (or its log)
    /// before the first failure and read every attempt through it: refused.
    #[test]
    fn no_failures_in_a_directory_others_may_write() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o1777)).unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        assert!(FailureStore::open_write(&p, &FailedFiles::default()).is_err());
        assert!(!p.exists());
    }

    /// A FIFO in the file's place is refused at once, never waited on.
    #[test]
    fn a_fifo_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(FailureStore::open_read(&p).is_err()).unwrap());
        let refused = rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(refused, Ok(true), "waited on the FIFO, or read it");
    }

    /// Regression: a read open of the failures' file looked at it through a descriptor of
    /// its own, closed only after the store's connection was open, and that close dropped
    /// every fcntl lock this process held on the file: the new store's own, and those of
    /// wtmpdbd's kept writer, whose calls (`ReadFailures`, a rotation's pruning) read the
    /// file on other threads. Another process's connection then takes the file for its own
    /// (the last one to close checkpoints and deletes the log the kept one writes to).
    #[test]
    fn a_read_open_keeps_a_kept_writers_locks() {
        use crate::storage::tests::locks_held_here;
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let kept = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        kept.record(&new(1, "root")).unwrap();
        let held = locks_held_here(&p);
        assert!(!held.is_empty(), "a connection in WAL mode locks its file");
        let read = FailureStore::open_read(&p).unwrap().unwrap();
        assert_eq!(locks_held_here(&p), held, "with the reader open");
        assert_eq!(read.oldest().unwrap(), Some(1));
        drop(read);
        assert_eq!(locks_held_here(&p), held, "after the reader closed");
        kept.record(&new(2, "root")).unwrap();
    }

    /// A file in such a directory (a copy in /tmp) is still read, as it is.
    #[test]
    fn a_failures_file_in_an_open_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        FailureStore::open_write(&p, &FailedFiles::default())
            .unwrap()
            .record(&new(1, "root"))
            .unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o1777)).unwrap();
        let s = FailureStore::open_read(&p).unwrap().unwrap();
        assert_eq!(s.oldest().unwrap(), Some(1));
    }

    #[test]
    #[ignore = "needs root: a file of another user"]
    fn a_failures_file_or_log_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        // Made by another user (here: nobody) while the directory was open to others.
        for side in ["", "-wal"] {
            let f = side_file(&p, side);
            fs::write(&f, b"").unwrap();
            fs::set_permissions(&f, Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
            let e = FailureStore::open_write(&p, &FailedFiles::default())
                .err()
                .unwrap_or_else(|| panic!("{side}: another user's file was written"));
            assert!(e.to_string().contains("uid 65534"), "{e}");
            fs::remove_file(&f).unwrap();
        }
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        s.record(&new(1, "root")).unwrap();
    }

    #[test]
    fn record_list_notice_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        let day = 86_400 * USEC_PER_SEC;
        for i in 0..5 {
            s.record(&new(i * day, "alice")).unwrap();
        }
        s.record(&new(10 * day, "p4ssw0rd")).unwrap();
        let mut all = Vec::new();
        s.each_between(Usec::MIN, Usec::MAX, |f| {
            all.push(f);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].user, "p4ssw0rd");
        assert_eq!(all[5].time, 0);
        assert_eq!(all[1].pid, Some(42));
        assert_eq!(s.oldest().unwrap(), Some(0));

        let n = s.notice("alice", 11 * day).unwrap();
        assert_eq!(n.count, 5);
        assert_eq!(n.last.as_ref().unwrap().time, 4 * day);
        let text = n.text(|t| t.to_string()).unwrap();
        assert!(
            text.contains("There were 5 failed login attempts since the last successful login.")
        );
        assert!(text.contains("from 192.0.2.7 on ssh:notty"));
        // Reported once: the next login hears only of newer ones.
        assert_eq!(s.notice("alice", 12 * day).unwrap().count, 0);
        s.record(&new(13 * day, "alice")).unwrap();
        let n = s.notice("alice", 14 * day).unwrap();
        assert_eq!(n.count, 1);
        assert!(
            n.text(|t| t.to_string())
                .unwrap()
                .contains("There was 1 failed")
        );

        // Age: older than 10 days at day 14 go (days 0..3).
        let gone = s
            .prune(
                Retention {
                    max_age_days: 10,
                    max_count: 0,
                },
                14 * day,
            )
            .unwrap();
        assert_eq!(gone, 4);
        // Count: the newest two stay.
        s.prune(
            Retention {
                max_age_days: 0,
                max_count: 2,
            },
            14 * day,
        )
        .unwrap();
        let mut left = Vec::new();
        s.each_between(Usec::MIN, Usec::MAX, |f| {
            left.push(f.time / day);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(left, [13, 10]);
    }

    /// The count rule keeps the newest attempts by time: an imported btmp file (old
    /// attempts, new IDs) never pushes out the attempts recorded before it.
    #[test]
    fn the_count_rule_keeps_the_newest_by_time_after_an_import() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        let day = 86_400 * USEC_PER_SEC;
        for i in 0..3 {
            s.record(&new(100 * day + i, "recent")).unwrap();
        }
        let old: Vec<NewFailure<'_>> = (0..10).map(|i| new(i * day, "imported")).collect();
        assert_eq!(s.import(&old).unwrap(), 10);
        s.prune(
            Retention {
                max_age_days: 0,
                max_count: 5,
            },
            101 * day,
        )
        .unwrap();
        let mut users = Vec::new();
        s.each_between(Usec::MIN, Usec::MAX, |f| {
            users.push(f.user);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            users,
            ["recent", "recent", "recent", "imported", "imported"],
            "the newest five"
        );
    }

    /// A host or terminal as recorded (an rhost with a line break, say) cannot add a line of
    /// its own to what the user is told: the notice is always its two lines.
    #[test]
    fn a_stored_line_break_adds_no_line_to_the_notice() {
        let n = Notice {
            count: 5,
            last: Some(Failure {
                id: 1,
                time: 0,
                user: "root".into(),
                tty: Some("pts/1\nThere was 1 failed login attempt".into()),
                host: Some("evil\nThere were 0 failed login attempts since the last".into()),
                service: None,
                pid: None,
            }),
        };
        let text = n.text(|t| t.to_string()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("from evil\\x0aThere were 0"), "{text}");
    }

    #[test]
    fn the_log_is_checkpointed_past_its_mark_with_one_connection_per_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let big = "x".repeat(1000);
        for i in 0..2000 {
            let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
            s.record(&new(i, &big)).unwrap();
        }
        let log = fs::metadata(side_file(&p, "-wal")).unwrap().len();
        // Without the checkpoint (no checkpoint at close either) the log holds every page.
        assert!(log <= (CHECKPOINT_PAGES + 8) * 4200, "{log}");
        let s = FailureStore::open_read(&p).unwrap().unwrap();
        let mut n = 0;
        s.each_between(Usec::MIN, Usec::MAX, |_| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(n, 2000);
    }

    #[test]
    fn a_brute_force_never_grows_the_file_past_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        let cap = Retention::default().max_count as i64;
        let tx = s.conn.unchecked_transaction().unwrap();
        for i in 0..cap + 3 * TRIM_EVERY {
            s.record(&new(i, "x")).unwrap();
        }
        tx.commit().unwrap();
        let n: i64 = s
            .conn
            .query_row(super::super::queries::COUNT_FAILED, [], |r| r.get(0))
            .unwrap();
        assert!(n <= cap + TRIM_EVERY, "{n}");
    }
}
