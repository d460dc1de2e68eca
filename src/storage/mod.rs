//! The only code that touches SQLite.
//!
//! The file format is upstream's: one STRICT table `wtmp`. Our additions are indexes (see
//! `migrations/`) tracked by `PRAGMA user_version`, which upstream ignores, and the journal:
//! every writer keeps the database in WAL mode with persistent side files (see
//! [`WalSettings`]), so that no reader, however long it holds a read transaction, delays a
//! login, and a user without write access to the directory still reads the file.
//!
//! A reader that finds a WAL database whose `-wal` file is gone (upstream's tools, like any
//! SQLite program that does not persist it, delete both side files when they close the last
//! connection, after copying everything into the database) reads the database file alone,
//! without locks (`immutable`), and checks after each chunk that the file did not change
//! meanwhile (see `Fingerprint`). It never creates a file next to the database.
//!
//! Readers never keep a read transaction open while they print: [`Entries`] fetches a
//! bounded chunk, resets its statement (which releases the shared lock) and hands the rows
//! out, so a login can commit between two chunks.
//!
//! A writer first settles the files (see `files`): the directory and the database are
//! created with fixed modes, a link is followed only when root or the caller owns it, and
//! the side files get the database's mode; SQLite then opens the resolved file
//! with `SQLITE_OPEN_NOFOLLOW`. A reader that finds the journal of an interrupted write rolls
//! it back through one read-write connection when the caller may write the file, and
//! otherwise says that root must.
//!
//! By concern: `schema` (migrations and when to apply them), `record` (a row and its kind),
//! `queries` (every statement), `read` (lookups and the chunked reader), `write` (rows in
//! and out), `files` (the files and their modes), `side_files` (their names), `proc_locks`
//! (other processes' locks on the WAL index), `private` (the daemon's root-only files and the
//! hand-over of a database every user can open), `error`; this file opens a database and
//! holds the connection settings.

mod build;
mod error;
pub mod failed;
pub(crate) mod files;
mod foreign;
mod lastlog2;
pub mod private;
mod proc_locks;
mod queries;
mod read;
mod record;
mod schema;
mod side_files;
// A copy of SQLite's unix VFS and the one file control the writers set: SQLite's C API,
// FFI by nature.
#[allow(unsafe_code)]
pub(crate) mod vfs;
mod write;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

pub use build::{Built, build_new, remove_abandoned};
pub use error::{Access, Error, FileStep, Refusal, Result, SqliteError};
pub use failed::{
    FailedError, FailedFiles, Failure, FailureStore, NewFailure, Notice, Retention, failures_path,
};
pub use lastlog2::{Lastlog2, Latest};
pub use proc_locks::ForeignLock;
#[doc(hidden)]
pub use proc_locks::{
    ParsedLock, parse_line as parse_proc_locks_line, verdicts as proc_locks_verdicts,
};
pub use read::{Entries, Filter, OpenRow, Paused};
pub use record::{Entry, Kind, NewEntry};
pub use schema::{Migrate, SCHEMA_VERSION};
pub use side_files::{directory_of, log_may_hold_frames};
pub use write::{GroupDone, GroupWrite, LoginOf, SpooledDone, SpooledWrite};

use error::sql;

/// Where upstream keeps the database.
pub const DEFAULT_PATH: &str = "/var/lib/wtmpdb/wtmp.db";

/// How to open a database.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub write: bool,
    /// The journal a writer keeps the file in.
    pub journal: Journal,
    /// How long to wait for another process's lock before failing with "database is locked".
    pub busy_timeout: Duration,
    /// Create missing indexes (and later schema steps) on a read-write open. A login may
    /// prefer to skip this on a large upstream database and leave it to `wtmpdb`.
    pub migrate: Migrate,
    /// A WAL writer's commits go into the database file before the write returns (see
    /// [`OpenOptions::copy_each_commit`]).
    pub copy_each_commit: bool,
    /// A writer reads `/proc/locks` before it opens (see
    /// [`OpenOptions::look_for_locks_before_open`]).
    pub look_for_locks_before_open: bool,
}

impl OpenOptions {
    pub fn read_only() -> Self {
        OpenOptions {
            write: false,
            journal: Journal::Keep,
            busy_timeout: Duration::from_secs(5),
            migrate: Migrate::Never,
            copy_each_commit: false,
            look_for_locks_before_open: true,
        }
    }
    pub fn read_write() -> Self {
        OpenOptions {
            write: true,
            journal: Journal::Wal,
            busy_timeout: Duration::from_secs(5),
            migrate: Migrate::Always,
            copy_each_commit: false,
            look_for_locks_before_open: true,
        }
    }
    pub fn busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }
    pub fn migrate(mut self, m: Migrate) -> Self {
        self.migrate = m;
        self
    }
    pub fn journal(mut self, j: Journal) -> Self {
        self.journal = j;
        self
    }
    /// For a connection per call (the session writer): each commit is copied into the
    /// database file and the log emptied right after it, and that copy's syncs make it
    /// durable (see `Database::synced`), instead of one sync of the log per commit and the
    /// copy as the connection closes.
    pub fn copy_each_commit(mut self, yes: bool) -> Self {
        self.copy_each_commit = yes;
        self
    }
    /// Whether a writer looks for other processes' locks on the WAL index in `/proc/locks`
    /// before it opens, and waits for them up to the busy timeout (see
    /// `wait_for_wal_index`). Reading that list takes a lock of the kernel's that waits for
    /// every CPU (an RCU grace period: from a tenth of a millisecond on a quiet machine to
    /// ten on a busy one), so the session writer, whose waits all end at its deadline
    /// through the bounded VFS, looks only once a wait begins (see `vfs`).
    pub fn look_for_locks_before_open(mut self, yes: bool) -> Self {
        self.look_for_locks_before_open = yes;
        self
    }
}

/// The journal a writer keeps a database in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// WAL with persistent side files: see [`WalSettings`]. Every writer of the live database.
    Wal,
    /// Whatever the file uses (archives, which nobody writes after rotate: a rollback
    /// journal leaves no side files behind).
    Keep,
}

/// How writers keep the live database, and why.
///
/// * **WAL**: readers never block a writer and a writer never blocks a reader, so a user who
///   opens the world-readable database and holds a read transaction (or a slow `last`, or
///   cockpit polling it) cannot delay a login. In a rollback journal, any reader's shared lock
///   stops every commit.
/// * **Persistent side files** (`SQLITE_FCNTL_PERSIST_WAL`): a user without write access to
///   the directory can read a WAL database only while its `-wal` and `-shm` files exist, so
///   writers never delete them. They have the database's mode and owner (SQLite gives them
///   those when it creates them, and `files` checks them on every write open).
/// * **No checkpoint on close** (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`): a login or logout is
///   then one commit, one `fdatasync` of the `-wal` file. The pages reach the database file
///   when the `-wal` file holds [`WalSettings::CHECKPOINT_PAGES`] pages: the writer that
///   crosses the mark checkpoints and truncates it (`wal_checkpoint(TRUNCATE)`), without
///   waiting for anyone (a reader in the way leaves it to a later writer). Truncating matters
///   because every connection per call is the first to open the `-shm` index, which SQLite
///   then rebuilds by reading the whole `-wal` file; SQLite's own automatic checkpoint never
///   resets a log whose index was rebuilt, so the log and each login's cost would grow
///   without end.
/// * **One `fdatasync` per commit, done by us**: `synchronous=NORMAL`, under which SQLite
///   writes a commit to the `-wal` file without syncing it, and then `Database::synced`
///   syncs that file before the write returns. That is exactly what `synchronous=FULL` adds to
///   `NORMAL` (SQLite documents FULL in WAL mode as NORMAL plus a sync of the log after each
///   commit; both sync the log before a checkpoint, the database after it and the log header
///   when the log is reused), so a committed row survives a power loss as with FULL. A
///   connection per call (the session writer, [`OpenOptions::copy_each_commit`]) checkpoints
///   right after each commit instead, and a checkpoint that copied everything has synced the
///   log and then the database file: no sync of its own is needed then.
/// * **The directory synced once per connection, by us**: SQLite's `unix` VFS syncs the
///   directory of a `-wal` file it opened with `SQLITE_OPEN_CREATE` at the file's first sync,
///   and SQLite always asks for it: one more `fsync` per call with one connection per call.
///   The writers' VFS opens an existing log without that flag (see `vfs`), and
///   `Database::synced` syncs the directory at the connection's first sync of the log (a
///   commit copied into the database file needs it only for a database file that was
///   empty, whose name may not be on disk yet).
pub struct WalSettings;

impl WalSettings {
    /// Pages in the `-wal` file after which the writer checkpoints. Each new connection
    /// reads this much of the log to rebuild its index, each checkpoint costs two syncs:
    /// 128 pages keep the first under half a millisecond and the second to one checkpoint
    /// every twenty or so logins.
    pub const CHECKPOINT_PAGES: u64 = 128;

    /// Commits after which a connection that keeps its log allocated (see
    /// [`Database::keep_log_allocated`]), whose file size no longer tells how much the log
    /// holds, checkpoints: a few groups of writes, a few hundred kilobytes at most.
    pub const KEPT_CHECKPOINT_COMMITS: u32 = 16;

    /// The size of the `-wal` file past which a session write appends nothing to it while
    /// no checkpoint can reset it (see [`held_log`]): its record goes to the spool instead.
    /// A reader that holds a read transaction (any user who may read the file) keeps every
    /// checkpoint from resetting the log; without this bound the log grew by some 34 KB per
    /// session for as long as it lasted, and, when the reader could not attach to the
    /// index (read-only, as for every user but root, and come while no writer was
    /// connected), each connection, the first to open the index, rebuilt it by reading the
    /// whole log: the cost of a session grew with it. 1 MiB
    /// is some thirty sessions, and rebuilding an index from it takes about a millisecond.
    pub const LOG_CAP_BYTES: u64 = 1 << 20;

    /// The zeros a kept log is given back at rest (see [`Database::refill_emptied_log`]):
    /// room for a login and a logout (their frames some 25 and 8 KB) without extending it.
    /// Also the largest log that keeps its blocks when SQLite empties it (the writers' VFS
    /// writes a header without frames over it instead of truncating it, see `vfs`): a
    /// larger one is truncated.
    pub const REFILL_BYTES: u64 = 64 << 10;
}

/// A `-wal` file over [`WalSettings::LOG_CAP_BYTES`] that another process keeps from being
/// reset (see [`held_log`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldLog {
    /// The size of the `-wal` file.
    pub size: u64,
    /// The process seen holding it, when it was seen (see [`held_log`]).
    pub holder: Option<i32>,
}

impl std::fmt::Display for HeldLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database's log is {} KiB, over its bound, and ",
            self.size / 1024
        )?;
        match self.holder {
            Some(pid) => write!(f, "process {pid} holds a read transaction on it"),
            None => write!(
                f,
                "a checkpoint could not copy it (a reader holds an old snapshot)"
            ),
        }
    }
}

/// Whether a PASSIVE checkpoint's report (kept from running, frames in the log, frames
/// copied) says every frame of the log is in the database file: a checkpoint counts a frame
/// copied only once the log and then the file are synced.
fn copied_whole(copy: Option<(bool, i64, i64)>) -> bool {
    matches!(copy, Some((false, log, copied)) if copied == log)
}

/// SQLite's TRUNCATE checkpoint on `conn` (the log copied into its database file, which is
/// synced, and the log emptied), waiting as the connection's busy handling says: true when
/// the log is empty afterwards. The one place that reads that answer, for the session
/// database and the failed logins' file alike.
pub(super) fn log_truncated(conn: &Connection) -> bool {
    conn.query_row(queries::CHECKPOINT_TRUNCATE, [], |r| {
        Ok(r.get::<_, i64>(0)? == 0 && r.get::<_, i64>(1)? == 0)
    })
    .unwrap_or(false)
}

/// Before a session write opens the database `path`: what `stat` says of its `-wal` file
/// when it is over [`WalSettings::LOG_CAP_BYTES`] (None otherwise), for [`held_log`] to go
/// on from. Costs one `stat`, after an `lstat` of the name (and of each link it leads
/// through).
pub fn log_over_cap(path: &Path) -> Option<std::fs::Metadata> {
    // The log lies beside the file the name's links lead to; links among the directories
    // above it need no resolving here (the kernel follows them as SQLite's resolved name
    // does), so no `realpath`, which reads each component of the path as a link.
    let file = files::trusted_target(path).unwrap_or_else(|_| path.to_path_buf());
    std::fs::symlink_metadata(side_files::side_file(&file, "-wal"))
        .ok()
        .filter(|m| m.len() > WalSettings::LOG_CAP_BYTES)
}

/// For a write to the database `path` that failed as malformed (see
/// [`Error::is_malformed`]): sets its `-wal` file aside as `NAME-wal.orphaned-USEC` (and
/// removes the `-shm` index) when the log is another database's, and returns the new name
/// (None: nothing was done). The case: a reader held the log of the file at the name (a
/// read transaction pins it), the admin renamed that file and put another in its place
/// (`mv wtmp.db old.db; cp backup.db wtmp.db`); the log stayed beside the name, and every
/// open reads its frames over the new file's pages. `wtmpdbd`'s kept connection sees the
/// rename; a direct writer, with a connection per call, sees only this failure.
///
/// The log is taken for another database's when it holds frames, the database file alone
/// (read without its log) is sound (`PRAGMA quick_check`) and holds the `wtmp` table, the
/// file read through the log is not (both checks must finish by `until`), and the log is
/// still the file it was before them (its inode, size and modification time): a file that
/// is sound alone, and malformed with the log read over it, was not made by that log's
/// commits. A sound file with a sound log of its own is left alone, whatever failure led
/// here. A log of the file's own would only fail so when it is damaged itself; its frames
/// are kept all the same (renamed, never deleted).
/// Each step fails towards doing nothing (the caller then spools the record): a check not
/// finished in time, a file that cannot be read, a log that changed meanwhile.
pub fn set_aside_foreign_log(path: &Path, until: Instant) -> Result<Option<PathBuf>> {
    let Some(file) = files::trusted_file(path) else {
        return Ok(None);
    };
    let log = side_files::side_file(&file, "-wal");
    if !side_files::log_may_hold_frames(&log) {
        return Ok(None);
    }
    let Ok(before) = Fingerprint::of(&log) else {
        return Ok(None);
    };
    // Through the log first: a malformed file usually shows it within a few pages, while
    // the file alone must be read whole to pass (0.5 s for a million rows here).
    if !std::fs::metadata(&file).is_ok_and(|m| m.len() > 0)
        || sound(&file, false, until) != Some(false)
        || sound(&file, true, until) != Some(true)
    {
        return Ok(None);
    }
    // Its contents (SQLite running as root gives the log its owner again at each open,
    // which changes only the change time).
    if !Fingerprint::of(&log).is_ok_and(|now| !before.contents_differ(&now)) {
        return Ok(None);
    }
    files::set_aside_log(path, &file).map(Some)
}

/// Whether the database file `file` holds the `wtmp` table and passes `PRAGMA
/// quick_check`: read `alone` (without its side files) or through its log. None when that
/// could not be told by `until` (the check ran out of time, the file could not be opened).
fn sound(file: &Path, alone: bool, until: Instant) -> Option<bool> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if alone {
        crate::sqlite::open_with_flags(immutable_uri(file), flags | OpenFlags::SQLITE_OPEN_URI)
    } else {
        crate::sqlite::open_with_flags(file, flags)
    }
    .ok()?;
    let malformed = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    };
    vfs::until(&conn, until, || {
        match schema::has_wtmp_table(&conn) {
            Ok(true) => {}
            Ok(false) => return Some(false),
            Err(e) => return malformed(&e).then_some(false),
        }
        match conn.query_row(queries::QUICK_CHECK, [], |r| r.get::<_, String>(0)) {
            Ok(v) => Some(v == "ok"),
            Err(e) => malformed(&e).then_some(false),
        }
    })
    .flatten()
}

/// How recently a log over its cap must have been written for [`held_log`] to take it for
/// a writer's at work rather than one a reader holds: an import's batch (some 4 MB, written
/// at its commit) is in the log from its commit to the end of its copy into the file, a few
/// to some tens of milliseconds, and every login in between found the log over the cap. A
/// log that a reader pins stops growing once it is over the cap (the writes go to the
/// spool), so it is soon older than this.
const LOG_AT_WORK: Duration = Duration::from_millis(100);

/// For a session write whose database `path` has its log over the cap (`log`, as
/// [`log_over_cap`] found it): the log, when another process is seen holding a read transaction on
/// it without being attached to its index (`nobody`'s read-only reader: see
/// `proc_locks::unattached_reader`), which keeps any checkpoint from resetting it. Read from
/// `/proc/locks` (at most `PROC_LOCKS_MIN_TIME`: any user can make the list long), without
/// opening the database: while such a reader lasts, a connection is the first to open the
/// index and reads the whole log to rebuild it. None when nobody such is seen: then the
/// caller opens the database (attached connections keep the index, so that costs little)
/// and a checkpoint ([`Database::log_may_grow`]) tells. Not looked for in a log written in
/// the last [`LOG_AT_WORK`]: a writer is at work on it.
pub fn held_log(path: &Path, log: &std::fs::Metadata) -> Option<HeldLog> {
    let size = log.len();
    // Written just now: a writer at work (an import's batch on its way into the file), not
    // a reader's doing. `/proc/locks` is not read then: each read waits for an RCU grace
    // period of the kernel, in which no process can take or release an `fcntl` lock, some
    // 0.2 ms on an idle machine and 10-37 ms under an import's load, paid by nearly every
    // login during an import. The caller's checkpoint decides instead, on an index the
    // writer keeps attached (no rebuild).
    if log
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age < LOG_AT_WORK)
    {
        return None;
    }
    let file = files::trusted_file(path).unwrap_or_else(|| path.to_path_buf());
    let until = std::time::Instant::now() + PROC_LOCKS_MIN_TIME;
    proc_locks::unattached_reader(&file, Some(until)).map(|pid| HeldLog {
        size,
        holder: Some(pid),
    })
}

/// How many times this thread has slept waiting for a database lock (SQLite's own retries,
/// the session writer's busy handler, the wait for the WAL index): for tests that tell a
/// write that gave up at once from one that waited out its bound.
pub fn lock_sleeps() -> u64 {
    vfs::lock_sleeps()
}

/// For a session write of the database file `file` that found the write lock taken: a
/// shared lock of another process on a byte SQLite takes only exclusively (see
/// `proc_locks::shared_lock_on_a_writer_byte`), which no wait gets past; the writer then
/// spools at once instead of waiting out its bound. Asked of the kernel through this
/// process's own descriptor of the `-shm` file when it has one (SQLite's, once the index is
/// open: see `proc_locks::shared_lock_on_a_writer_byte_seen_here`), otherwise read from
/// `/proc/locks` until `until` at most.
pub(crate) fn writers_shut_out(file: &Path, until: std::time::Instant) -> Option<ForeignLock> {
    if let Some(seen) = proc_locks::shared_lock_on_a_writer_byte_seen_here(file) {
        return seen;
    }
    proc_locks::shared_lock_on_a_writer_byte(
        file,
        Some(until.max(std::time::Instant::now() + PROC_LOCKS_MIN_TIME)),
    )
}

/// The least time a writer spends reading `/proc/locks` for foreign locks on the WAL index
/// (see `wait_for_wal_index`), even with no time to wait for them: a list of a few thousand
/// locks is read whole in well under this.
const PROC_LOCKS_MIN_TIME: Duration = Duration::from_millis(10);

/// How long a reader tries again an open that fails as a WAL index in the making does.
pub(super) const INDEX_IN_THE_MAKING: Duration = Duration::from_millis(500);

/// How long a maintenance batch tries to copy its commit into the database file while
/// another checkpoint is at work (see [`Database::maintenance_synced`]).
pub const MAINTENANCE_COPY_WAIT: Duration = Duration::from_millis(100);

/// How long it tries while a reader's snapshot keeps part of the log from being copied.
pub const MAINTENANCE_PIN_WAIT: Duration = Duration::from_millis(5);

/// The pause between those tries.
const COPY_RETRY_PAUSE: Duration = Duration::from_micros(500);

/// What an open file holds, decided once at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contents {
    /// The `wtmp` table (with or without rows).
    Table,
    /// Nothing: a 0-byte file opened read-only, which upstream reads as a database without
    /// rows. No statement may run against it (there is no table), so every read asks
    /// [`Database::table`] first.
    Nothing,
}

/// An open wtmpdb database.
pub struct Database {
    conn: Connection,
    path: PathBuf,
    /// The file SQLite opened: for a writer, `path` with its links resolved (see `files`).
    file: PathBuf,
    contents: Contents,
    /// For a database read without locks (see the module documentation): what the file was
    /// when opened, to be checked after each read.
    unlocked: Option<Fingerprint>,
    /// For a writer in WAL mode: the log each commit syncs (see [`WalSettings`]).
    log: Option<WalLog>,
    /// The busy handling in force, restored after a checkpoint that must not wait.
    busy: std::cell::Cell<Option<BusyHandler>>,
    /// See [`OpenOptions::copy_each_commit`].
    copy_each_commit: bool,
    /// Set when the last commit's checkpoint left the log empty: nothing for the close to
    /// copy (see `Drop`).
    settled: std::cell::Cell<bool>,
    /// Set when a checkpoint found the database file truncated under this connection (see
    /// [`Error::TruncatedUnderWrite`]): no later checkpoint copies anything into it (the
    /// pages it would write are what this connection changed, over the file as it was).
    truncated: std::cell::Cell<bool>,
    busy_timeout: Duration,
    /// Whether the Login index exists, when a reader learned it as it opened.
    login_index: Option<bool>,
    /// Whether a User index exists, when a reader learned it as it opened.
    user_index: Option<bool>,
    /// A writer's use of the bounded VFS (see `vfs`). Declared last: dropped after `conn`.
    _vfs: Option<vfs::InUse>,
}

/// A busy handler: called with the retry count, true to retry.
type BusyHandler = fn(i32) -> bool;

/// The `-wal` file of a writer's connection, synced after every commit.
struct WalLog {
    path: PathBuf,
    file: std::cell::OnceCell<std::fs::File>,
    /// Whether its directory has not been synced by this connection yet. SQLite syncs it
    /// only when it creates the file (see `vfs::open_file`); the first sync of the log by
    /// this connection syncs it too, as SQLite used to at every connection, since the
    /// process that created the file may have ended before any sync of its own.
    dir_unsynced: std::cell::Cell<bool>,
    /// Whether the database file was empty when the connection was opened (just created,
    /// by this writer or by logrotate's `create`): its directory entry may not be on disk
    /// yet, and a commit copied into it syncs the directory too.
    young_database: bool,
    /// Checkpoints copy the log without truncating it (see [`Database::keep_log_allocated`]).
    keep: std::cell::Cell<bool>,
    /// Commits since the last complete checkpoint, counted when `keep` is set.
    commits: std::cell::Cell<u32>,
}

/// What identifies the state of a file: a write to it changes its modification or change
/// time, a replacement its inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    /// Whether `other` may be the same file with other contents: another inode, size or
    /// modification time (a change of mode or owner alone changes only the change time).
    pub(crate) fn contents_differ(&self, other: &Fingerprint) -> bool {
        (self.dev, self.ino, self.size, self.mtime)
            != (other.dev, other.ino, other.size, other.mtime)
    }

    fn of(path: &Path) -> std::io::Result<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The database file and its side files as they are now (None: absent, or not examined),
/// compared before and after a reader's open that failed. What the reader's open changes
/// itself does not count: as root, SQLite gives the `-wal` and `-shm` files their
/// database's owner again at each open (a new change time), and a reader that may write
/// the `-shm` index writes its read mark into it (new modification and change times; it
/// may also rebuild it, which leaves its size as it was). A writer's commits change the
/// log, its first steps make the side files and size the index.
#[derive(PartialEq, Eq)]
struct FilesNow {
    db: Option<Fingerprint>,
    log: Option<Fingerprint>,
    index: Option<Fingerprint>,
    journal: Option<Fingerprint>,
}

impl FilesNow {
    fn of(path: &Path) -> FilesNow {
        // Beside the file a link leads to, as SQLite names them (see `wal_without_log`).
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let side = |suffix| Fingerprint::of(&side_files::side_file(&file, suffix)).ok();
        let root = crate::sys::euid() == 0;
        let marks = root || crate::sys::may_write(&side_files::side_file(&file, "-shm"));
        // Without the times this reader's open sets itself.
        let untimed = |f: Fingerprint, mtime: bool| Fingerprint {
            mtime: if mtime { (0, 0) } else { f.mtime },
            ctime: (0, 0),
            ..f
        };
        FilesNow {
            db: Fingerprint::of(path).ok(),
            log: side("-wal").map(|f| if root { untimed(f, false) } else { f }),
            index: side("-shm").map(|f| if marks { untimed(f, true) } else { f }),
            journal: side("-journal"),
        }
    }
}

/// Runs `attempt` (a reader's open of `path`) again, a millisecond later, while it fails as
/// a database or its index in the making does, until `until`: the file or one of its side
/// files changed during the attempt (a writer at work), or the failure is one of a WAL
/// index being rebuilt (see [`Error::is_index_in_the_making`]). A lasting failure with
/// nothing at work (a side file this user cannot read, a foreign file) is reported at once.
fn while_in_the_making<T>(
    path: &Path,
    until: std::time::Instant,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    loop {
        let before = FilesNow::of(path);
        match attempt() {
            Err(e)
                if std::time::Instant::now() < until
                    && ((e.is_index_in_the_making() && is_wal_file(path))
                        || FilesNow::of(path) != before) =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// The files a WAL connection works on, by device and inode: the database file its name
/// leads to, the `-wal` log and the `-shm` index beside it (see [`Database::open_files`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    db: (u64, u64),
    log: (u64, u64),
    index: (u64, u64),
}

impl OpenFiles {
    fn of(path: &Path) -> Option<OpenFiles> {
        OpenFiles::at(&std::fs::canonicalize(path).ok()?)
    }

    /// The regular files `file` (itself, not followed) and the side files beside it are.
    fn at(file: &Path) -> Option<OpenFiles> {
        // Asked of the kernel without the files' times: see `sys::file_id`.
        let id = |p: &Path| {
            crate::sys::file_id(p)
                .ok()
                .filter(|f| f.regular)
                .map(|f| (f.dev, f.ino))
        };
        Some(OpenFiles {
            db: id(file)?,
            log: id(&side_files::side_file(file, "-wal"))?,
            index: id(&side_files::side_file(file, "-shm"))?,
        })
    }

    /// Whether `path` still leads to these files where readers look for them (a kept
    /// connection asks before each group, see [`Database::open_files`]). Readers (SQLite
    /// itself) resolve the name's links and look for the side files beside the file it
    /// leads to; the connection's side files are beside `file`, the name as it was resolved
    /// at the open. Following the name to the same database file does not tell that it is
    /// still there: a file moved to another directory, with a link left at its name (or the
    /// link the name was retargeted), is the same file in another place, and its side files
    /// left behind are still the connection's, but no reader's.
    ///
    /// When the name had no link at the open (`path` is `file`: the usual case), three
    /// `statx` calls: the name itself, not followed, is still this regular file (a link put
    /// at its name is not), so it leads to it through the directory its side files are
    /// looked up in, and then those. Otherwise the name is resolved again, as at the open
    /// ([`OpenFiles::of`]: a `readlink` per component more).
    pub fn still_at(&self, path: &Path, file: &Path) -> bool {
        let now = if path == file {
            OpenFiles::at(file)
        } else {
            OpenFiles::of(path)
        };
        now == Some(*self)
    }

    /// Whether `path` still leads to the database file these were taken of (whatever became
    /// of the side files).
    pub fn database_is_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.db)
    }

    /// Sets the log beside `file` (the name the connection resolved at its open) aside as
    /// `NAME-wal.orphaned-USEC` and removes the index beside it, when both are still these
    /// files: for a connection whose name leads to another database file now, whose last
    /// commits could not be copied into its own file (a reader pins them). Left at the
    /// name, the next open would read them over the new file. The new name, or None when
    /// the side files at the name are no longer these.
    pub fn set_aside_log(&self, path: &Path, file: &Path) -> Result<Option<PathBuf>> {
        let id = |suffix| {
            crate::sys::file_id(&side_files::side_file(file, suffix))
                .ok()
                .map(|f| (f.dev, f.ino))
        };
        if id("-wal") != Some(self.log) || id("-shm") != Some(self.index) {
            return Ok(None);
        }
        files::set_aside_log(path, file).map(Some)
    }
}

/// The bytes of a WAL index's header: what changes at every commit, checkpoint that
/// empties the log or rebuild of the index, by any connection of any process (the frame
/// count, the change counter, the salts, their checksum). Read by
/// [`Database::index_state`]: the header as a connection last left it, compared with what
/// the index holds later, tells whether another connection used that index meanwhile
/// (SQLite shares an index between every connection that opens a database file of the
/// same name, whatever the file).
pub type IndexState = [u8; 48];

impl Database {
    /// Opens read-only: a missing file is an error, nothing is created or changed.
    pub fn open_read_only(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_only())
    }

    /// Opens read-write, creating the directory (0755) and the file (0644) if missing, and
    /// brings the schema up to date.
    pub fn open_read_write(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_write())
    }

    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Database> {
        if let Some(why) = crate::input::not_a_regular_file(path) {
            let access = if opts.write {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            let path = path.to_path_buf();
            return Err(Error::NotAFile { path, access, why });
        }
        if opts.write {
            return Self::open_writer(path, opts);
        }
        // A reader's open that failed while the file or its side files changed met a writer
        // at work, most often a database in its first moments (its header written, its
        // mode, owner and table set, its side files made, in a few milliseconds): each step
        // fails an open in its own way (the file read without a log that then appears, a
        // journal in use). It is tried again, as one that meets an index being rebuilt is,
        // for at most [`INDEX_IN_THE_MAKING`] or the busy timeout.
        let until = std::time::Instant::now() + opts.busy_timeout.min(INDEX_IN_THE_MAKING);
        while_in_the_making(path, until, || Self::open_reader_once(path, opts))
    }

    /// A reader's open, recovering a hot rollback journal when this user can.
    fn open_reader_once(path: &Path, opts: &OpenOptions) -> Result<Database> {
        match Self::open_reader(path, opts) {
            Err(e) if e.is_hot_journal() => {
                if !recover_journal(path, opts)? {
                    return Err(Error::HotJournal {
                        path: path.to_path_buf(),
                        readable: files::readable(&side_files::side_file(
                            &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
                            "-journal",
                        )),
                    });
                }
                Self::open_reader(path, opts)
            }
            other => other,
        }
    }

    fn open_writer(path: &Path, opts: &OpenOptions) -> Result<Database> {
        let look = opts.look_for_locks_before_open;
        let (conn, file, vfs) = connect_writer(path, true, look.then_some(opts.busy_timeout))?;
        if opts.journal == Journal::Wal {
            // Before any statement: a connection whose open fails (a lock in the way of the
            // index's rebuild) must not, as it closes, take the database file's exclusive lock,
            // checkpoint past the locks of the index and delete the side files that other
            // processes still use (SQLite does that for the last connection to a file).
            keep_side_files(&conn);
        }
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
            file,
            contents: Contents::Table,
            unlocked: None,
            log: None,
            busy: std::cell::Cell::new(None),
            copy_each_commit: opts.copy_each_commit,
            settled: std::cell::Cell::new(false),
            truncated: std::cell::Cell::new(false),
            busy_timeout: opts.busy_timeout,
            login_index: None,
            user_index: None,
            _vfs: vfs,
        };
        db.setup(opts)?;
        if opts.journal == Journal::Wal {
            db.use_wal();
        }
        if schema::migrate(&mut db.conn, path, opts.migrate)? {
            db.synced()?;
        }
        Ok(db)
    }

    fn open_reader(path: &Path, opts: &OpenOptions) -> Result<Database> {
        // An empty file holds no rows, whatever lies beside it; SQLite, opening it, would
        // delete a `-wal` file there as stale, and after logrotate's rename + create that is
        // the renamed database's newest commits (see `files::keep_orphaned_log`).
        if wal_without_log(path) || std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Self::open_unlocked(path, opts);
        }
        // With a `-wal` file the rows in it count: read through it or fail (side files this
        // user cannot read), never without it.
        Self::open_reader_with(path, opts, None)
    }

    /// Opens the database file alone, without locks and without its side files (see the
    /// module documentation), remembering what the file was.
    fn open_unlocked(path: &Path, opts: &OpenOptions) -> Result<Database> {
        let seen = Fingerprint::of(path).map_err(|e| Error::Open {
            path: path.to_path_buf(),
            access: Access::ReadOnly,
            source: SqliteError::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(e.to_string()),
            )),
        })?;
        let db = Self::open_reader_with(path, opts, Some(seen))?;
        db.still_unchanged()?;
        Ok(db)
    }

    fn open_reader_with(
        path: &Path,
        opts: &OpenOptions,
        unlocked: Option<Fingerprint>,
    ) -> Result<Database> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // A reader of the file with its side files opens through the bounded VFS, whose
        // sleeps look for a foreign lock on the index before the first of them (see
        // `ReaderLook`).
        let in_use = unlocked.is_none().then(vfs::InUse::start).flatten();
        let conn = match (&unlocked, &in_use) {
            (Some(_), _) => {
                flags |= OpenFlags::SQLITE_OPEN_URI;
                crate::sqlite::open_with_flags(immutable_uri(path), flags)
            }
            (None, Some(vfs)) => {
                crate::sqlite::open_with_flags_and_vfs(path, flags, vfs.name().as_c_str())
            }
            (None, None) => crate::sqlite::open_with_flags(path, flags),
        }
        .map_err(open_failed(path, Access::ReadOnly))?;
        let look = ReaderLook::start(path);
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
            file: path.to_path_buf(),
            contents: Contents::Table,
            unlocked,
            log: None,
            busy: std::cell::Cell::new(None),
            copy_each_commit: false,
            settled: std::cell::Cell::new(false),
            truncated: std::cell::Cell::new(false),
            busy_timeout: opts.busy_timeout,
            login_index: None,
            user_index: None,
            _vfs: in_use,
        };
        // Reading the schema is the first access to the file: it reports a foreign or
        // corrupt file here, once, with the path (and a journal to roll back, see `open`).
        // One read transaction for the schema and this statement about it.
        let first_access = (|| {
            db.setup(opts)?;
            let conn = &db.conn;
            read::in_an_opens_first_read(
                conn,
                |e| setup_failed(path, Access::ReadOnly)(e),
                || {
                    let seen = reader_schema(conn).map_err(setup_failed(path, Access::ReadOnly))?;
                    let no_schema = seen.nothing
                        && conn
                            .query_row(queries::READER_NOTHING_SET, [], |r| r.get::<_, bool>(0))
                            .map_err(setup_failed(path, Access::ReadOnly))?;
                    Ok((seen, no_schema))
                },
            )
        })();
        let (seen, no_schema) = look.end(first_access)?;
        match seen.table {
            None => {
                // An SQLite file with nothing in its schema is a database in its first
                // moments (its first writer has written the file's header, setting WAL
                // mode, and not yet committed its table) or one nobody wrote to: no rows,
                // as a 0-byte file. A schema that holds something else is foreign, and so
                // is a short file that is not SQLite's (which SQLite reads as empty) and
                // an empty one with a schema version or an application id set: another
                // program's, or one whose tables were dropped, not one in the making.
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(1);
                if size != 0 && !no_schema {
                    return Err(Error::NotWtmpdb {
                        path: path.to_path_buf(),
                    });
                }
                db.contents = Contents::Nothing;
            }
            // Created as upstream creates it: its shape is upstream's.
            Some(sql) if sql == queries::UPSTREAM_WTMP_TABLE => {}
            Some(_) => foreign::check_table(&db.conn, path)?,
        }
        // Indexes are never dropped, and one made after this open only goes unused by it.
        db.login_index = Some(seen.login_index);
        db.user_index = Some(seen.user_index);
        Ok(db)
    }

    /// The connection settings of every open.
    fn setup(&self, opts: &OpenOptions) -> Result<()> {
        let access = if opts.write {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        self.conn
            .busy_timeout(opts.busy_timeout)
            .map_err(setup_failed(&self.path, access))?;
        if !opts.write {
            self.conn
                .execute_batch(queries::READER_CACHE_SIZE)
                .map_err(setup_failed(&self.path, access))?;
        }
        self.conn
            .execute_batch(queries::TEMP_STORE_MEMORY)
            .map_err(setup_failed(&self.path, access))
    }

    /// The connection to read the table through, or None when the file holds no table
    /// (see [`Contents::Nothing`]): then every read answers "no rows".
    fn table(&self) -> Option<&Connection> {
        match self.contents {
            Contents::Table => Some(&self.conn),
            Contents::Nothing => None,
        }
    }

    /// Whether the file holds the `wtmp` table: false for an empty file or a database whose
    /// first writer has not committed its table yet (every read then answers "no rows").
    pub fn has_table(&self) -> bool {
        self.table().is_some()
    }

    /// A second read-only connection to the same file (for reading on another thread).
    pub fn reopen_read_only(&self) -> Result<Database> {
        if self.table().is_some() {
            return Database::open_read_only(&self.path);
        }
        // Reads nothing, as this connection does (also if the file was written since).
        Ok(Database {
            conn: crate::sqlite::open_in_memory().map_err(sql("Cannot open database"))?,
            path: self.path.clone(),
            file: self.file.clone(),
            contents: Contents::Nothing,
            unlocked: None,
            log: None,
            busy: std::cell::Cell::new(None),
            copy_each_commit: false,
            settled: std::cell::Cell::new(false),
            truncated: std::cell::Cell::new(false),
            busy_timeout: self.busy_timeout,
            login_index: None,
            user_index: None,
            _vfs: None,
        })
    }

    /// For a database read without locks: fails when the file changed since it was opened
    /// (a writer checkpointed into it, or it was replaced), since what was read may then mix
    /// two states. Every read checks it after fetching; a locked read always passes.
    pub(crate) fn still_unchanged(&self) -> Result<()> {
        let Some(seen) = self.unlocked else {
            return Ok(());
        };
        match Fingerprint::of(&self.path) {
            Ok(now) if now == seen => Ok(()),
            _ => Err(Error::ChangedWhileUnlocked {
                path: self.path.clone(),
            }),
        }
    }

    /// Puts a writer's connection in WAL mode with the settings of [`WalSettings`]. Best
    /// effort: a database another connection holds open in a rollback journal cannot switch
    /// now (the next writer does it), and is written in its own mode meanwhile, as before.
    fn use_wal(&mut self) {
        let log = side_files::side_file(&self.file, "-wal");
        let young_database = std::fs::symlink_metadata(&self.file).is_ok_and(|m| m.len() == 0);
        let mode = match self.journal_mode() {
            Ok(m) if m == "wal" => m,
            _ => self
                .conn
                .query_row(queries::JOURNAL_MODE_WAL, [], |r| r.get::<_, String>(0))
                .map(|m| m.to_ascii_lowercase())
                .unwrap_or_default(),
        };
        if mode != "wal" {
            // Still in a rollback journal (another connection holds the file): synced by
            // SQLite at every commit, as upstream does.
            let _ = self.conn.execute_batch(queries::SYNCHRONOUS_FULL);
            return;
        }
        keep_side_files(&self.conn);
        // Our checkpoint replaces SQLite's (see `WalSettings`).
        let _ = self.conn.execute_batch(&queries::set_wal_autocheckpoint(0));
        if self.conn.execute_batch(queries::SYNCHRONOUS_NORMAL).is_ok() {
            self.log = Some(WalLog {
                path: log,
                file: std::cell::OnceCell::new(),
                dir_unsynced: std::cell::Cell::new(true),
                young_database,
                keep: std::cell::Cell::new(false),
                commits: std::cell::Cell::new(0),
            });
        }
    }

    /// Makes what this connection committed durable: in WAL mode, syncs the `-wal` file (and
    /// its directory, at the connection's first sync); with a rollback journal SQLite already
    /// did. Every write calls it after its commit and before it returns (see [`WalSettings`]).
    ///
    /// A connection that copies each commit ([`OpenOptions::copy_each_commit`]) checkpoints
    /// first: a checkpoint syncs the log before it copies a frame into the database file and
    /// that file after, and it counts a frame as copied only once both syncs are done, so
    /// when it reports every frame of the log copied, or empties the log (which it does only
    /// once everything is copied), this commit is durable in the database file and the log
    /// needs no sync of its own. The directory is synced then only for a database file that
    /// was empty at the open (its name may not be on disk yet). Otherwise (a reader pins the
    /// log, another checkpoint is at work) the log is synced here as for any connection.
    pub(crate) fn synced(&self) -> Result<()> {
        self.sync_commit(self.copy_each_commit, None)
    }

    /// [`Database::synced`] for a maintenance batch (an import's), which copies its commit
    /// into the database file itself, at once, as a connection that copies each commit does.
    /// The batch's pages (a thousand or more: every index leaf it added to) must not be
    /// left in the log for a login to copy: a session write checkpoints after its commit,
    /// and before it when the log is over [`WalSettings::LOG_CAP_BYTES`], and copying a
    /// batch kept it tens of milliseconds. So the checkpoint starts right after the commit,
    /// without a sync of the log first (the checkpoint syncs it before it copies); a login
    /// that commits meanwhile finds the copy under way and only syncs the log. While
    /// another checkpoint is at work (a login's, of its own few pages) or a reader's
    /// snapshot keeps frames from being copied, the copy is tried again, for at most
    /// [`MAINTENANCE_COPY_WAIT`] (a snapshot only [`MAINTENANCE_PIN_WAIT`]: a reader may hold
    /// one for long); then the log is synced as for any commit.
    pub(crate) fn maintenance_synced(&self) -> Result<()> {
        self.sync_commit(true, Some(MAINTENANCE_COPY_WAIT))
    }

    /// The pause after one transaction of a maintenance job (import, rotate), in which
    /// waiting writers take the lock: [`write::MAINTENANCE_PAUSE`], and again as long as
    /// other connections committed during the last one, up to
    /// [`write::MAINTENANCE_PAUSE_MAX`] in all. A session's writes come in twos (a login and
    /// its logout, a write and its mirror's merge): the second found the job's next batch
    /// under way and waited for the whole of it.
    pub(crate) fn maintenance_pause(&self) {
        let version = || {
            self.conn
                .query_row(queries::DATA_VERSION, [], |r| r.get::<_, i64>(0))
                .ok()
        };
        let started = Instant::now();
        let mut before = version();
        loop {
            std::thread::sleep(write::MAINTENANCE_PAUSE);
            let now = version();
            if now.is_none() || now == before || started.elapsed() >= write::MAINTENANCE_PAUSE_MAX {
                return;
            }
            before = now;
        }
    }

    fn sync_commit(&self, copy_first: bool, retry: Option<Duration>) -> Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let failed = |what, p: &Path, e| files::file_error(&self.path, what, p, e);
        let sync_dir = || match log.path.parent() {
            Some(dir) => std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| failed("cannot sync", dir, e)),
            None => Ok(()),
        };
        if copy_first {
            let start = std::time::Instant::now();
            loop {
                // A file that held pages at the open and is empty now was truncated by
                // another program: nothing is copied into it (see `vfs::watch_truncation`).
                let watch = vfs::watch_truncation();
                let (copy, emptied) = self.checkpoint(true);
                if watch.found() {
                    // No checkpoint later either, at the close included: the commit stays
                    // in the log, which the next writer keeps as orphaned (see
                    // `files::keep_orphaned_log`).
                    self.truncated.set(true);
                    return Err(Error::TruncatedUnderWrite {
                        path: self.path.clone(),
                    });
                }
                let copied = emptied || copied_whole(copy);
                self.settled.set(emptied);
                if copied {
                    if log.young_database && log.dir_unsynced.replace(false) {
                        sync_dir()?;
                    }
                    return Ok(());
                }
                // Kept from running (busy, or no answer): another checkpoint is at work, and
                // ends soon. Ran but could not copy everything: a reader's snapshot, which
                // may last.
                let wait = match copy {
                    None | Some((true, _, _)) => retry,
                    Some(_) => retry.map(|r| r.min(MAINTENANCE_PIN_WAIT)),
                };
                match wait {
                    Some(w) if start.elapsed() < w => std::thread::sleep(COPY_RETRY_PAUSE),
                    _ => break,
                }
            }
        }
        let file = match log.file.get() {
            Some(f) => f,
            None => match std::fs::File::open(&log.path) {
                Ok(f) => log.file.get_or_init(|| f),
                // Nothing written yet (a connection that only read).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(failed("cannot sync", &log.path, e)),
            },
        };
        // Whatever an earlier copy left, this commit is in the log only: said before the
        // sync, which may fail and return (a connection that claimed to be at rest would
        // then let its retire leave the commit behind, see `Database::at_rest`).
        self.settled.set(false);
        file.sync_data()
            .map_err(|e| failed("cannot sync", &log.path, e))?;
        if log.dir_unsynced.replace(false) {
            sync_dir()?;
        }
        if copy_first {
            return Ok(());
        }
        let due = if log.keep.get() {
            log.commits.set(log.commits.get() + 1);
            log.commits.get() >= WalSettings::KEPT_CHECKPOINT_COMMITS
        } else {
            let pages = file.metadata().map(|m| m.len()).unwrap_or(0) / 4096;
            pages >= WalSettings::CHECKPOINT_PAGES
        };
        if due {
            self.checkpoint_now();
        }
        Ok(())
    }

    /// Copies the log into the database file, syncs that file and truncates the log, unless
    /// a reader or writer is in the way: then nothing waits (SQLite copies what it can
    /// without waiting, up to the oldest snapshot a reader holds), and a later writer or a
    /// later try does the rest. The caller's busy handling is restored afterwards. True when
    /// the log is empty afterwards: every commit is in the database file alone, and the file
    /// can be renamed, copied or read without its side files (see [`WalSettings`]). False
    /// for a connection not in WAL mode (nothing to do: SQLite writes the file at commit).
    ///
    /// The copy and its syncs are a PASSIVE checkpoint, which takes no write lock, so other
    /// writers commit meanwhile; the TRUNCATE after it, which holds the write lock, then only
    /// empties the log (or copies the few frames committed in between).
    pub fn checkpoint_now(&self) -> bool {
        self.checkpoint(false).1
    }

    /// [`Database::checkpoint_now`] for a connection at rest: the log is emptied even when
    /// the connection keeps it allocated (see [`Database::keep_log_allocated`]). A kept
    /// connection is never closed (the daemon exits without closing it: Quit, the idle exit,
    /// SIGTERM), and frames left in the `-wal` file, copied or not, are read again by the
    /// next open of the name: over a backup put back in place (the newer commits come back
    /// in it), or over logrotate's new empty file (set aside as orphaned). True when the
    /// log is empty afterwards.
    pub fn checkpoint_at_rest(&self) -> bool {
        let emptied = self.checkpoint(true).1;
        // Every commit in the file now, until the next one (see `sync_commit`).
        if emptied {
            self.settled.set(true);
        }
        emptied
    }

    /// Whether every commit of this connection is in its database file and none is left in
    /// the log: its last commit was followed by a checkpoint that emptied the log (see
    /// [`Database::checkpoint_at_rest`], [`OpenOptions::copy_each_commit`]).
    pub fn at_rest(&self) -> bool {
        self.settled.get()
    }

    /// Closes the connection without copying its log into the file (see `Drop`): for a
    /// connection whose name has come to lead to another file, whose side files it may now
    /// share with that file's connections (SQLite finds them by name). A checkpoint then
    /// reads which frames to copy from that shared index, and would copy the other file's
    /// page numbers out of this connection's own log into this file. The caller decided
    /// whether a checkpoint was safe before (see [`Database::index_state`]). SQLite's close
    /// does no checkpoint and deletes no side file (see [`WalSettings`]).
    pub fn close_leaving_side_files(self) {
        self.settled.set(true);
    }

    /// For a connection kept open between writes (the daemon's): its checkpoints copy the
    /// log into the file and leave the `-wal` file at its size, and the next commit starts
    /// the log again at its beginning, over frames already copied. The file then keeps its
    /// blocks, and each commit's `fdatasync` overwrites them: on ext4, a sync that extends a
    /// file also commits the file system's journal (about 1 ms here under load, against
    /// 0.15–0.35 ms to overwrite). A truncated log would grow again with every commit. Only
    /// for a connection that keeps the log's index alive: a fresh connection would rebuild
    /// the index by reading every frame still valid in the file.
    pub fn keep_log_allocated(&self) {
        if let Some(log) = &self.log {
            log.keep.set(true);
        }
    }

    /// For a connection that keeps its log allocated, once [`Database::checkpoint_at_rest`]
    /// emptied it: gives the `-wal` file back `bytes`, synced, an empty log's header and
    /// zeros, so that the first commits after a rest (a login on a quiet machine: most of
    /// them) overwrite blocks the file has instead of extending it, and their syncs write no
    /// allocation or size (an extending sync: a journal commit on ext4 with a journal; on
    /// this project's benchmark machine, ext4 without one, a login after 350 ms of rest took
    /// 1.79 ms over pam_permit with the log emptied and 1.42 ms with it refilled).
    ///
    /// That is no frame: SQLite's recovery stops at the first frame whose salts are not the
    /// header's (zeros here; nor does [`side_files::log_may_hold_frames`] see any), so the
    /// file at rest still holds every commit alone, as with an empty log. The header is
    /// there for the readers that may not write the index (a member of `--readers`' group,
    /// the `sqlite3` shell): while no writer is connected, such a reader builds an index of
    /// its own, and at each read it trusts its page cache unless the log is shorter than a
    /// header or its header's salts changed. Zeros would have the same salts (zero) after
    /// every run of the daemon, and the reader would read its cache of before that run; so
    /// the salts are new at every refill. (Zeros at the salts are also the only content
    /// without a header that such a reader can read at all: it builds zero salts from a
    /// log without the magic, and retries while the log's differ.) The checkpoint count is
    /// 0, so that a writer that next builds its index from this draws new salts itself.
    ///
    /// Written under the write lock (an IMMEDIATE transaction that writes nothing), and
    /// only into a log that is empty then: its index says no frame (a TRUNCATE checkpoint
    /// reset it), so the next writer, of whatever process, starts the log at its beginning
    /// with a header of its own. A log another writer has written since is left alone.
    /// False when nothing was done.
    pub fn refill_emptied_log(&self, bytes: u64) -> bool {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let Some(log) = self.log.as_ref().filter(|l| l.keep.get()) else {
            return false;
        };
        let refill = || -> std::io::Result<bool> {
            let Ok(tx) = rusqlite::Transaction::new_unchecked(
                &self.conn,
                rusqlite::TransactionBehavior::Immediate,
            ) else {
                return Ok(false);
            };
            // Not through a link, and not waiting on a FIFO put at the name (the checks
            // below refuse both it and a device).
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&log.path)?;
            let m = f.metadata()?;
            if !m.is_file() || m.len() != 0 {
                return Ok(false);
            }
            let (Ok(page_size), Ok(salts)) = (
                self.conn
                    .query_row(queries::PAGE_SIZE, [], |r| r.get::<_, u32>(0)),
                self.conn
                    .query_row(queries::RANDOM_SALTS, [], |r| r.get::<_, Vec<u8>>(0)),
            ) else {
                return Ok(false);
            };
            let Ok(mut salts) = <[u8; 8]>::try_from(salts) else {
                return Ok(false);
            };
            // Never the zero salts of an index built from a log without a header.
            salts[0] |= 1;
            let Some(header) = side_files::empty_log_header(page_size, salts) else {
                return Ok(false);
            };
            let mut fill = vec![0u8; bytes.max(32) as usize];
            fill[..32].copy_from_slice(&header);
            let written = f.write_all_at(&fill, 0).and_then(|()| f.sync_data());
            if written.is_err() {
                // A full disk: the log as it was.
                let _ = f.set_len(0);
            }
            drop(tx);
            written.map(|()| true)
        };
        self.without_waiting(refill)
            .is_some_and(|done| done.unwrap_or(false))
    }

    /// Runs `f` with this connection waiting for no lock (SQLite's busy timeout 0), then
    /// restores its busy handling; None when the timeout could not be set (nothing run).
    fn without_waiting<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.conn.busy_timeout(Duration::ZERO).ok()?;
        let out = f();
        let _ = match self.busy.get() {
            Some(handler) => self.conn.busy_handler(Some(handler)),
            None => self.conn.busy_timeout(self.busy_timeout),
        };
        Some(out)
    }

    /// [`Database::checkpoint_now`]: what its copy (PASSIVE) reported (whether it was kept
    /// from running, the frames in the log, the frames copied), and whether the log is empty
    /// afterwards. A connection that keeps its log allocated truncates it only `at_rest`.
    fn checkpoint(&self, at_rest: bool) -> (Option<(bool, i64, i64)>, bool) {
        if self.log.is_none() || self.truncated.get() {
            return (None, false);
        }
        self.without_waiting(|| {
            let copy = self
                .conn
                .query_row(queries::CHECKPOINT_PASSIVE, [], |r| {
                    Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
                })
                .ok();
            let kept = self.log.as_ref().filter(|l| l.keep.get());
            let emptied = if kept.is_some() && !at_rest {
                // Copied whole: the next commit restarts the log (the file holds every commit).
                copied_whole(copy)
            } else {
                log_truncated(&self.conn)
            };
            if let Some(l) = kept.filter(|_| emptied) {
                l.commits.set(0);
            }
            (copy, emptied)
        })
        .unwrap_or((None, false))
    }

    /// For a writer that found the log over [`WalSettings::LOG_CAP_BYTES`]: checkpoints as
    /// [`Database::checkpoint_now`] does, and tells whether the log may take more commits.
    /// False when a snapshot pins it: the copy (PASSIVE) ran, was not kept from running
    /// (busy: another checkpoint at work, a transient state), and could not copy every frame
    /// because a reader holds an older snapshot (or read mark 0), and the log is not empty
    /// afterwards. A checkpoint that found another at work, or that copied everything, pins
    /// nothing: the log is reset as soon as nobody uses it.
    ///
    /// A checkpoint kept out by a shared lock on the write, checkpoint or recovery byte is
    /// not a transient state: SQLite takes those bytes only exclusively, so it is a user's
    /// (read access to the `-shm` file suffices), and while it lasts no checkpoint resets
    /// the log. Then the log may not grow either. Asked of the kernel through SQLite's own
    /// descriptor of the `-shm` file (no `/proc/locks` read); [`held_log`] does not look for
    /// it in a log written a moment ago, so without this each write that came soon after
    /// the one before appended to a log no checkpoint could reset.
    pub fn log_may_grow(&self) -> bool {
        let (copy, emptied) = self.checkpoint(false);
        if emptied {
            return true;
        }
        match copy {
            Some((false, log, copied)) if copied < log => false,
            Some((true, _, _)) => !matches!(
                proc_locks::shared_lock_on_a_writer_byte_seen_here(&self.file),
                Some(Some(_))
            ),
            _ => true,
        }
    }

    /// Copies the whole log into the database file this connection has open and empties the
    /// log (SQLite's TRUNCATE checkpoint, under its locks), trying for at most `within`. For
    /// a connection kept open whose name came to lead to another file (see
    /// [`OpenFiles::database_is_at`]): its commits are then in the file it opened, where they
    /// belong, and not in a log beside the name that the next open would take for the new
    /// file's. Only while no other connection shares its index (see [`IndexState`]): the
    /// copy reads from the index which frames to copy, and copies them out of this
    /// connection's own log. `alone` says so, and is asked before each try.
    ///
    /// No try waits for a lock: a checkpoint that waited for the write lock would take it
    /// once another connection's transaction ended, then read the index with that commit
    /// in it, and copy its frames too (a writer of the file now at the name, begun before
    /// `alone` looked, committed meanwhile: seen copying its row into the renamed file and
    /// losing it from the new one). Without waiting, a write lock held makes the try a
    /// PASSIVE copy of what is committed then; it is tried again while `alone` still says
    /// so. Some(true) when the log is empty afterwards, Some(false) when it was not within
    /// `within` (a reader in the way), None when `alone` said no first.
    pub fn checkpoint_into_file(
        &self,
        mut alone: impl FnMut() -> bool,
        within: Duration,
    ) -> Option<bool> {
        let end = Instant::now() + within;
        loop {
            if !alone() {
                return None;
            }
            if self.log.is_none() || self.truncated.get() {
                return Some(false);
            }
            if self
                .without_waiting(|| log_truncated(&self.conn))
                .unwrap_or(false)
            {
                return Some(true);
            }
            if Instant::now() >= end {
                return Some(false);
            }
            std::thread::sleep(COPY_RETRY_PAUSE);
        }
    }

    /// The files this database's name leads to now, when they are a WAL database with both
    /// side files (None otherwise). A connection kept open between writes takes them right
    /// after its open and compares before each write: a database renamed away and created
    /// anew (logrotate), or side files deleted by a program that took itself for their last
    /// user, mean the connection no longer writes where readers look, and must be reopened.
    pub fn open_files(&self) -> Option<OpenFiles> {
        self.log.as_ref()?;
        OpenFiles::of(&self.path)
    }

    /// The header of this connection's `-shm` index now (see [`IndexState`]), read where
    /// SQLite reads it: in its own mapping of the index's first region (see
    /// `vfs::index_header`). None for a connection not in WAL mode, or whose index is not
    /// mapped.
    ///
    /// Never through a descriptor of our own: closing any descriptor of the `-shm` file
    /// drops every `fcntl` lock this process holds on it (POSIX), those of SQLite's
    /// connections included, and the daemon has others on the same index (readers, the
    /// session writer's fallback, a rotate): another process could then take the write
    /// lock one of them holds, or start the index afresh under them.
    pub fn index_state(&self) -> Option<IndexState> {
        self.log.as_ref()?;
        vfs::index_header(&self.conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file's device, inode, size and times now (None when it cannot be
    /// read): for a connection kept open between writes, to see the file written by
    /// something other than SQLite (see `session::group`).
    pub(crate) fn file_fingerprint(&self) -> Option<Fingerprint> {
        Fingerprint::of(&self.file).ok()
    }

    /// The file SQLite opened: for a writer, [`Database::path`] with its links resolved.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// What SQLite's integrity check finds, its lines joined ("ok": nothing), for this
    /// crate's tests.
    #[cfg(test)]
    pub(crate) fn integrity(&self) -> String {
        let lines = self
            .conn
            .prepare(queries::INTEGRITY_CHECK)
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        match lines {
            Ok(lines) => lines.join("; "),
            Err(e) => e.to_string(),
        }
    }

    /// The underlying connection, for this crate's tests.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Replaces the busy handling with `handler` (called with the retry count; true = retry),
    /// for callers that bound their total waiting themselves (the session writer).
    pub(crate) fn set_busy_handler(&self, handler: fn(i32) -> bool) -> Result<()> {
        self.busy.set(Some(handler));
        self.conn
            .busy_handler(Some(handler))
            .map_err(sql("Cannot set busy handler"))
    }

    /// The journal mode of this connection, lower case (`delete`, `persist`, `wal`, ...).
    pub fn journal_mode(&self) -> Result<String> {
        self.conn
            .query_row(queries::JOURNAL_MODE, [], |r| r.get::<_, String>(0))
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot read journal mode"))
    }

    /// Sets this connection's rollback journal mode (`delete`, `truncate` or `persist`: all
    /// readable by upstream) and returns the mode in force afterwards.
    pub fn set_journal_mode(&self, mode: &str) -> Result<String> {
        let statement =
            queries::set_journal_mode(mode).ok_or_else(|| Error::UnsupportedJournalMode {
                mode: mode.to_string(),
            })?;
        self.conn
            .query_row(statement, [], |r| r.get::<_, String>(0))
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot set journal mode"))
    }
}

/// A writer's connection leaves what it committed in the database file when it closes.
///
/// SQLite would checkpoint only when the last connection to the file closes, and waits
/// for nobody's lock then; our writers turn that off and keep the side files (see
/// [`WalSettings`]), so without this every commit of a connection per call (the session
/// writer, the C library, `wtmpdb boot`) would stay in the `-wal` file beside the name until
/// the log grew past [`WalSettings::CHECKPOINT_PAGES`]: logrotate's rename + `create`
/// (Debian's stanza for `wtmp.db`), an admin's `cp` or the loss of that file left them
/// behind. Now the log is copied into the database file, which is synced, and truncated
/// ([`Database::checkpoint_now`]) as the connection closes: after the write, before the call
/// returns, within a session call's deadline. Nothing is waited for: another writer in the
/// way does the same as it closes, and a reader holding an older snapshot keeps what it
/// pins in the log until a later writer's close. A connection that copies each commit
/// ([`OpenOptions::copy_each_commit`]) and found the log empty after its last one has
/// nothing left to copy.
impl Drop for Database {
    fn drop(&mut self) {
        // A connection that copies each commit did so at the last one.
        if !self.settled.get() {
            self.checkpoint_now();
        }
    }
}

/// What [`queries::READER_SCHEMA`] tells a reader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ReaderSchema {
    /// The text of the first table named `wtmp` (None: no such table).
    pub(super) table: Option<String>,
    /// Whether the index `wtmp_login` exists.
    pub(super) login_index: bool,
    /// Whether the User index `wtmp_user` exists.
    pub(super) user_index: bool,
    /// Whether the schema holds nothing at all.
    pub(super) nothing: bool,
}

pub(super) fn reader_schema(conn: &Connection) -> rusqlite::Result<ReaderSchema> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(queries::READER_SCHEMA)?;
    let mut rows = stmt.query([])?;
    let mut seen = ReaderSchema {
        nothing: true,
        ..ReaderSchema::default()
    };
    let mut table = None;
    while let Some(r) = rows.next()? {
        seen.nothing = false;
        match (r.get_ref(0)?, r.get_ref(1)?) {
            (ValueRef::Text(b"table"), ValueRef::Text(b"wtmp")) if table.is_none() => {
                table = Some(r.get::<_, Option<String>>(2)?);
            }
            (ValueRef::Text(b"index"), ValueRef::Text(b"wtmp_login")) => seen.login_index = true,
            (ValueRef::Text(b"index"), ValueRef::Text(b"wtmp_user")) => {
                seen.user_index = true;
            }
            _ => {}
        }
    }
    seen.table = table.flatten();
    Ok(seen)
}

/// The side files of `conn`'s database stay when it closes, untouched: no checkpoint then
/// and no deletion (see [`WalSettings`]).
fn keep_side_files(conn: &Connection) {
    vfs::persist_wal(conn);
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
}

/// A reader's first access to a database (its settings and the schema), failing at once
/// instead of stalling in SQLite for about ten seconds when another process holds a lock
/// on the `-shm` file that SQLite never takes (see `proc_locks::foreign_shm_lock`): SQLite
/// retries the index's locks in a loop of its own, sleeping through the bounded VFS
/// between tries, and the first of those sleeps looks in `/proc/locks` (once). A lock seen
/// there ends the sleeps (the loop's tries then follow one another and fail), and the
/// access fails with that lock named. Nothing is read before the open: each read of
/// `/proc/locks` waits for an RCU grace period of the kernel, during which no process can
/// take or release an `fcntl` lock (0.2 ms on an idle machine, tens under load), and every
/// `last` paid it on a WAL database.
struct ReaderLook {
    _look: vfs::LookWhile,
}

/// A reader's first access on this thread (see [`ReaderLook`]).
#[derive(Default)]
struct FirstAccess {
    /// The database it is to.
    file: Option<PathBuf>,
    /// Whether the look was made (it is made once).
    looked: bool,
    /// The foreign lock it found.
    found: Option<ForeignLock>,
}

thread_local! {
    static READER_LOOK: std::cell::RefCell<FirstAccess> = const {
        std::cell::RefCell::new(FirstAccess {
            file: None,
            looked: false,
            found: None,
        })
    };
}

/// How long a reader's first access may sleep in SQLite's loops in all: as long as SQLite's
/// own (about ten seconds); the look, not this bound, is what ends a stall on a foreign lock.
const READER_FIRST_ACCESS: Duration = Duration::from_secs(10);

impl ReaderLook {
    fn start(file: &Path) -> ReaderLook {
        READER_LOOK.with(|l| {
            *l.borrow_mut() = FirstAccess {
                file: Some(file.to_path_buf()),
                ..FirstAccess::default()
            }
        });
        ReaderLook {
            _look: vfs::look_while(
                ReaderLook::look,
                std::time::Instant::now() + READER_FIRST_ACCESS,
            ),
        }
    }

    /// Called before a sleep of SQLite's: looks once for a foreign lock on the index.
    fn look(_until: std::time::Instant) -> bool {
        let file = READER_LOOK.with(|l| {
            let mut l = l.borrow_mut();
            (!std::mem::replace(&mut l.looked, true))
                .then(|| l.file.clone())
                .flatten()
        });
        let Some(file) = file else {
            return READER_LOOK.with(|l| l.borrow().found.is_some());
        };
        let found = proc_locks::foreign_shm_lock_from_within(&file);
        READER_LOOK.with(|l| l.borrow_mut().found = found);
        found.is_some()
    }

    /// The first access's outcome; a failure after the look found a foreign lock is that
    /// lock's.
    fn end<T>(self, outcome: Result<T>) -> Result<T> {
        let FirstAccess { file, found, .. } = READER_LOOK.with(|l| l.take());
        match (outcome, found, file) {
            (Err(_), Some(lock), Some(path)) => Err(Error::ForeignShmLock {
                path,
                lock,
                shuts_writers_out: false,
            }),
            (outcome, _, _) => outcome,
        }
    }
}

/// The first 100 bytes of an SQLite file say its journal: bytes 18 and 19 (the read and
/// write format versions) are 2 in WAL mode, 1 with a rollback journal. Read through
/// SQLite's VFS, never a descriptor of our own: its close would drop every fcntl lock this
/// process holds on the file, those of its connections included (see [`vfs::file_start`]).
pub(super) fn is_wal_file(path: &Path) -> bool {
    vfs::file_start::<20>(path).is_some_and(|(header, _)| {
        header.starts_with(b"SQLite format 3\0") && header[18..20] == [2, 2]
    })
}

/// A WAL database without its `-wal` file, or with an empty one and no `-shm` index:
/// everything is in the database file (SQLite deletes the log only after copying all of it
/// there; a writer that opens the file creates the log first, empty, then the index), and
/// SQLite would try to create the side files to read it, which a user without write access
/// to the directory cannot do and root must not do to a file it only reads. (An empty log
/// without its index is a new writer's open half done: a user's `last` failed there, with
/// "unable to open database file". A log with frames but no index may hold rows the file
/// lacks, a copied database with its log, say: it is opened with it.)
pub(super) fn wal_without_log(path: &Path) -> bool {
    // The log lies beside the file a link points to (SQLite names it after the resolved
    // file), not beside the link: /var/lib/wtmpdb/wtmp.db on Debian links /var/log/wtmp.db.
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let log = side_files::side_file(&file, "-wal");
    let without = match std::fs::metadata(&log) {
        Err(_) => true,
        // Empty, or zeros (a log wtmpdbd emptied and kept allocated): no frames.
        Ok(_) => {
            !side_files::log_may_hold_frames(&log) && !side_files::side_file(&file, "-shm").exists()
        }
    };
    // The header only when the side files say it matters: reading it opens the database
    // file (through SQLite's VFS, which keeps this process's locks, see `is_wal_file`). A
    // database a writer of ours opened always has both side files.
    without && is_wal_file(&file)
}

/// The URI that opens `path` read-only without locks or side files. Characters with a
/// meaning in URIs are percent-encoded.
pub(super) fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn open_failed(path: &Path, access: Access) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::Open {
        path: path.to_path_buf(),
        access,
        source: SqliteError::new(source),
    }
}

fn setup_failed(path: &Path, access: Access) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::OpenSetup {
        path: path.to_path_buf(),
        access,
        source: SqliteError::new(source),
    }
}

/// A writer's connection to `path` and the file it opened. The files are settled first (see
/// `files`): with `create`, the missing directories (0755) and the database file (0644);
/// always, a link is followed only when root or the caller owns it, and the side files get
/// the database's mode, and foreign locks on the WAL index are waited for up to `wait`, when
/// given (see `wait_for_wal_index`). SQLite then opens the resolved name and follows no link (one put in
/// its place since is refused).
fn connect_writer(
    path: &Path,
    create: bool,
    wait: Option<Duration>,
) -> Result<(Connection, PathBuf, Option<vfs::InUse>)> {
    if create {
        files::create_parent(path)?;
    }
    let (target, found) = files::trusted_target_seen(path)?;
    // A name that led to something needs no `O_EXCL` try: whatever it is, the checks below
    // and SQLite's open (which never creates the database file) decide.
    if create && !found {
        files::create_file(path, &target)?;
    }
    let file = files::resolved(path, &target)?;
    if let Some(wait) = wait {
        wait_for_wal_index(path, &file, wait)?;
    }
    files::keep_orphaned_log(path, &file)?;
    files::align_side_files(path, &file)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    // Through the bounded VFS when it can be had (see `vfs`).
    let in_use = vfs::InUse::start();
    let conn = match &in_use {
        Some(vfs) => crate::sqlite::open_with_flags_and_vfs(&file, flags, vfs.name().as_c_str()),
        None => crate::sqlite::open_with_flags(&file, flags),
    }
    .map_err(open_failed(path, Access::ReadWrite))?;
    Ok((conn, file, in_use))
}

/// Waits up to `timeout` for the `-shm` bytes of the resolved database `file` that rebuilding
/// the WAL index needs to be free of other processes' locks (see `proc_locks::foreign_shm_lock`), and fails as a lock that must
/// not be waited for (so a session write spools) when they stay held. SQLite would wait for
/// them without any bound.
fn wait_for_wal_index(path: &Path, file: &Path, timeout: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    let until = start + timeout;
    // Reading the list of locks stops here (see `proc_locks::foreign_shm_lock`): any user can make
    // it long enough to take seconds. A lock not seen in time is met by SQLite, whose
    // retries end at the writer's deadline through the bounded VFS.
    let reading = until.max(start + PROC_LOCKS_MIN_TIME);
    while let Some(lock) = proc_locks::foreign_shm_lock(file, Some(reading)) {
        // A shared lock there is never a connection's (SQLite takes those bytes only
        // exclusively): it is a user keeping writers out, and no wait gets past it.
        let shared = proc_locks::shared_lock_on_a_writer_byte(file, Some(reading));
        let now = std::time::Instant::now();
        if now >= until || shared.is_some() {
            return Err(Error::ForeignShmLock {
                path: path.to_path_buf(),
                lock: shared.unwrap_or(lock),
                shuts_writers_out: shared.is_some(),
            });
        }
        vfs::count_lock_sleep();
        std::thread::sleep((until - now).min(Duration::from_millis(1)));
    }
    Ok(())
}

/// Rolls back the journal of an interrupted write that a read-only open of `path` found, if
/// the caller may write the database: one read-write connection's first read does it, under
/// SQLite's own locks. False when the caller cannot write it (the file opened read-only).
fn recover_journal(path: &Path, opts: &OpenOptions) -> Result<bool> {
    let (conn, _, in_use) = connect_writer(path, false, Some(opts.busy_timeout))?;
    let recovered = (|| {
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(setup_failed(path, Access::ReadWrite))?
        {
            return Ok(false);
        }
        conn.busy_timeout(opts.busy_timeout)
            .map_err(setup_failed(path, Access::ReadWrite))?;
        schema::has_wtmp_table(&conn).map_err(setup_failed(path, Access::ReadWrite))?;
        Ok(true)
    })();
    // The connection before its VFS's registration.
    drop(conn);
    drop(in_use);
    recovered
}
