//! The VFS of writers' connections: SQLite's own `unix` VFS, except that its sleeps end at
//! the deadline of the running call, that it opens a `-wal` file that exists without
//! asking to create it (see [`open_file`]), and that it does not truncate a file to the
//! size it has (see [`truncate_file`]).
//!
//! Why: a connection that is the first to open a WAL database rebuilds the index in `-shm`,
//! which takes the index's write lock (byte 120). When another process holds that byte (any
//! user may open the world-readable `-shm` read-only and take a shared `fcntl` lock on it),
//! SQLite does not call the busy handler: it retries up to 100 times, sleeping through the
//! VFS between tries, about 10 s in all, then fails with "locking protocol". A user who
//! toggles such a lock slips past any check made before the open, and a login then waited
//! seconds past its bound. Through this VFS those sleeps are cut to what is left of the
//! deadline set by [`bound_sleeps`] (none set: SQLite's own sleeps, unchanged): past it the
//! remaining tries follow one another at once and SQLite reports the lock as busy, which the
//! session writer answers by spooling the record, within its bound.
//!
//! The VFS is registered while a connection uses it, and unregistered with the last one
//! (counted under a lock): the PAM module is unloaded after each PAM handle, and a VFS left
//! registered in SQLite's process-wide list would then point into unmapped memory.
//!
//! The other calls of SQLite's C API that rusqlite does not wrap are here too
//! ([`persist_wal`], [`index_header`], [`file_start`]), so that storage's `unsafe` is all in
//! this file.

use std::cell::Cell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::ffi;

/// The start of the VFS's name.
const NAME_C: &CStr = c"wtmpdb-bounded";

/// The name this copy of the code registers its VFS under, and its connections open it by:
/// [`NAME_C`] and the address of this copy's registry. SQLite finds a VFS by name in one
/// list for the whole process, and a process may hold several copies of this code at once
/// (libwtmpdb.so.0 linked into sshd and pam_wtmpdb.so loaded by its PAM stack, each with
/// its own registry and thread-local deadline, maybe of two versions): under one name, a
/// copy's connections would open through another's VFS, bounded by the other's deadline,
/// and be left with a freed VFS in unmapped code when the other unregistered it.
fn name() -> CString {
    let at = std::ptr::addr_of!(REGISTRY) as usize;
    CString::new(format!("{}-{at:x}", NAME_C.to_string_lossy())).expect("no NUL in the name")
}

thread_local! {
    /// When SQLite's sleeps on this thread stop sleeping.
    static SLEEP_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How many times this thread slept waiting for a lock (see [`count_lock_sleep`]).
    static LOCK_SLEEPS: Cell<u64> = const { Cell::new(0) };
    /// What SQLite's sleeps on this thread ask before they wait (see [`look_before_waits`]).
    static BEFORE_WAIT: Cell<Option<Look>> = const { Cell::new(None) };
}

/// See [`look_before_waits`].
type Look = fn(Instant) -> bool;

/// Sets what SQLite's internal sleeps on this thread call, with the deadline, before they
/// wait (None: nothing): true ends the waiting at once (the deadline becomes now), as for a
/// lock that no wait gets past. The session writer's look at who holds a lock
/// (`session::bounded`), done only once a wait begins instead of before every open.
pub(crate) fn look_before_waits(look: Option<Look>) {
    BEFORE_WAIT.with(|c| c.set(look));
}

/// [`look_before_waits`] and [`bound_sleeps`] together, for as long as the returned value
/// lives (then the earlier look and bound are back): a reader's first access to a database
/// (see `storage::ReaderLook`). A bound already set on the thread (a writer's call under
/// way) is kept when it ends sooner: a reader opened within that call must not wait past
/// the call's deadline.
pub(crate) fn look_while(look: Look, until: Instant) -> LookWhile {
    let before = BEFORE_WAIT.with(|c| c.replace(Some(look)));
    let until = deadline().map_or(until, |d| d.min(until));
    LookWhile {
        before,
        _bound: bound_sleeps(until),
    }
}

/// See [`look_while`].
pub(crate) struct LookWhile {
    before: Option<Look>,
    _bound: SleepBound,
}

impl Drop for LookWhile {
    fn drop(&mut self) {
        let _ = BEFORE_WAIT.try_with(|c| c.set(self.before));
    }
}

/// Counts one sleep of this thread waiting for a lock: SQLite's own (`xSleep`), the session
/// writer's busy handler's, and the wait for the WAL index's bytes. What a test reads to
/// tell a call that gave up at once from one that waited (see `storage::lock_sleeps`).
pub(crate) fn count_lock_sleep() {
    let _ = LOCK_SLEEPS.try_with(|c| c.set(c.get() + 1));
}

/// The sleeps counted on this thread so far.
pub(crate) fn lock_sleeps() -> u64 {
    LOCK_SLEEPS.try_with(Cell::get).unwrap_or(0)
}

/// Sets the time after which SQLite's internal sleeps on this thread return at once (None:
/// they sleep as SQLite asks). Used by the session writer's deadline.
pub(crate) fn set_deadline(until: Option<Instant>) {
    SLEEP_UNTIL.with(|c| c.set(until));
}

/// The deadline set on this thread, if any (the session writer's busy handler waits until
/// it too).
pub(crate) fn deadline() -> Option<Instant> {
    SLEEP_UNTIL.try_with(Cell::get).ok().flatten()
}

/// Bounds SQLite's internal sleeps on this thread until `until`, for as long as the returned
/// value lives (then the earlier bound is back).
pub fn bound_sleeps(until: Instant) -> SleepBound {
    let before = SLEEP_UNTIL.with(|c| c.replace(Some(until)));
    SleepBound { before }
}

/// See [`bound_sleeps`].
pub struct SleepBound {
    before: Option<Instant>,
}

impl Drop for SleepBound {
    fn drop(&mut self) {
        set_deadline(self.before);
    }
}

/// SQLite's `xSleep`, bounded. Never panics (it runs inside SQLite's C code): nothing here
/// can, and a thread-local already destroyed reads as "no bound".
extern "C" fn bounded_sleep(_vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let mut wait = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    if let Some(until) = deadline() {
        let look = BEFORE_WAIT.try_with(Cell::get).ok().flatten();
        if look.is_some_and(|look| look(until)) {
            set_deadline(Some(Instant::now()));
            return micros;
        }
        wait = wait.min(until.saturating_duration_since(Instant::now()));
    }
    if !wait.is_zero() {
        count_lock_sleep();
        std::thread::sleep(wait);
    }
    micros
}

/// The `unix` VFS's `xOpen`, which [`open_file`] calls.
type XOpen = unsafe extern "C" fn(
    *mut ffi::sqlite3_vfs,
    *const c_char,
    *mut ffi::sqlite3_file,
    c_int,
    *mut c_int,
) -> c_int;

static UNIX_OPEN: OnceLock<XOpen> = OnceLock::new();

/// SQLite's `xOpen`: the `unix` VFS's, except that a `-wal` file is first opened without
/// `SQLITE_OPEN_CREATE`, and with it only when that fails (the file is missing).
///
/// Why: the `unix` VFS syncs the directory of a `-wal` file it opened with that flag at the
/// file's first sync, and SQLite always passes it, so every connection paid one more
/// `fsync` (of the directory) for a file created long ago. Opened without the flag, an
/// existing log costs none; one that SQLite creates still gets its directory synced. What
/// the directory sync used to cover besides is the storage's own business now (see
/// `Database::synced`).
extern "C" fn open_file(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(open) = UNIX_OPEN.get() else {
        return ffi::SQLITE_CANTOPEN;
    };
    let wal_create = ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_CREATE;
    let log = flags & ffi::SQLITE_OPEN_WAL != 0;
    if flags & wal_create == wal_create {
        // SAFETY: SQLite's own arguments, passed on unchanged but for one flag that only
        // narrows what the open may do; the `unix` xOpen initializes `file` on success and
        // leaves it closed (no methods) on failure, so the second call below may reuse it.
        let rc = unsafe { open(vfs, name, file, flags & !ffi::SQLITE_OPEN_CREATE, out_flags) };
        if rc == ffi::SQLITE_OK {
            // SAFETY: the open succeeded, so `file` is an open file of the `unix` VFS
            // whose methods pointer SQLite reads before every call on it.
            unsafe { use_own_methods(file, log) };
            return rc;
        }
    }
    // SAFETY: SQLite's own arguments, unchanged, to the function they were meant for.
    let rc = unsafe { open(vfs, name, file, flags, out_flags) };
    if rc == ffi::SQLITE_OK {
        // SAFETY: the open succeeded, so `file` is an open file of the `unix` VFS whose
        // methods pointer SQLite reads before every call on it.
        unsafe { use_own_methods(file, log) };
    }
    rc
}

/// The `unix` VFS's methods table of a kind of file, where the first file of that kind
/// opened through this VFS had it, and a copy of it but for `xTruncate`.
struct Tables {
    unix: OnceLock<(usize, Methods)>,
    own: OnceLock<Methods>,
    truncate: Truncate,
    /// The own `xFileSize`, when the kind has one (the database file's,
    /// [`database_file_size`]).
    file_size: Option<FileSize>,
}

/// An `xFileSize`, as SQLite's methods table holds it.
type FileSize = unsafe extern "C" fn(*mut ffi::sqlite3_file, *mut ffi::sqlite3_int64) -> c_int;

/// An `xTruncate`, as SQLite's methods table holds it.
type Truncate = unsafe extern "C" fn(*mut ffi::sqlite3_file, ffi::sqlite3_int64) -> c_int;

/// The database file's ([`truncate_file`]).
static DB_TABLES: Tables = Tables {
    unix: OnceLock::new(),
    own: OnceLock::new(),
    truncate: truncate_file,
    file_size: Some(database_file_size),
};

/// A `-wal` file's ([`truncate_log`]): the `unix` VFS gives the files it takes no locks on
/// (every one but the database file) a table of their own.
static LOG_TABLES: Tables = Tables {
    unix: OnceLock::new(),
    own: OnceLock::new(),
    truncate: truncate_log,
    file_size: None,
};

/// A methods table of SQLite's, shared by every file that uses it.
struct Methods(ffi::sqlite3_io_methods);

// SAFETY: a plain table of function pointers and a version number, written once (in its
// OnceLock) and only read after; SQLite calls the methods from any thread.
unsafe impl Send for Methods {}
// SAFETY: as above: never written after it is made.
unsafe impl Sync for Methods {}

/// Points a file the `unix` VFS just opened at the own table of its kind ([`DB_TABLES`],
/// or [`LOG_TABLES`] for a `-wal` file), the same methods but for `xTruncate`. A file with
/// another table than the first one of its kind had (none on Linux, where the `unix` VFS
/// gives every file of a kind the same) keeps its own.
///
/// # Safety
/// `file` is a file the `unix` VFS's `xOpen` opened successfully and SQLite has not closed.
unsafe fn use_own_methods(file: *mut ffi::sqlite3_file, log: bool) {
    // SAFETY: the caller's promise: a live, open file, whose first field is its methods.
    let methods = unsafe { (*file).pMethods };
    if methods.is_null() {
        return;
    }
    let tables = if log { &LOG_TABLES } else { &DB_TABLES };
    let (at, unix) = tables.unix.get_or_init(|| {
        // SAFETY: the `unix` VFS's methods are a static table of the library's, alive as
        // long as the library, which outlives every file it opened.
        (
            methods as usize,
            Methods(unsafe { std::ptr::read(methods) }),
        )
    });
    if *at != methods as usize {
        return;
    }
    let own = tables.own.get_or_init(|| {
        Methods(ffi::sqlite3_io_methods {
            xTruncate: Some(tables.truncate),
            xFileSize: tables.file_size.or(unix.0.xFileSize),
            ..unix.0
        })
    });
    // SAFETY: the table has the same version and methods (all of them the `unix` VFS's
    // own but for `xTruncate`, which calls the `unix` one); it is a static that lives as
    // long as this code, which stays loaded while any connection uses this VFS (`InUse`).
    // SQLite itself sets the pointer to NULL when it closes the file.
    unsafe { (*file).pMethods = &raw const own.0 };
}

/// SQLite's `xTruncate` for a file of this VFS: the `unix` VFS's, unless the file already
/// has that size. Then nothing is done: not even a truncate to the same size, which still
/// costs a synchronous write of the file's inode at the next `fdatasync` on ext4 (it frees
/// blocks allocated past the end, and marks the inode dirty to say so). SQLite truncates
/// the database file to its size at the end of every checkpoint that copied the whole log:
/// that is each write of a connection per call and each group of the daemon's. Measured on
/// the benchmark's machine: a 4 KiB rewrite and `fdatasync` 0.09-0.12 ms, 0.17-0.18 ms
/// with a same-size `ftruncate` between.
extern "C" fn truncate_file(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let Some((_, unix)) = DB_TABLES.unix.get() else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    let (Some(file_size), Some(truncate)) = (unix.0.xFileSize, unix.0.xTruncate) else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    let mut now: ffi::sqlite3_int64 = -1;
    // A size of 0 is always passed on: the `unix` VFS reports a file of one byte as empty.
    // SAFETY: SQLite's own open file, passed to the `unix` VFS's method for it, with a
    // pointer to a live local for the answer.
    if size > 0 && unsafe { file_size(file, &raw mut now) } == ffi::SQLITE_OK && now == size {
        return ffi::SQLITE_OK;
    }
    // SAFETY: SQLite's own arguments, unchanged, to the method they were meant for.
    unsafe { truncate(file, size) }
}

thread_local! {
    /// Set while a checkpoint of a connection whose database file held pages runs on this
    /// thread (see [`watch_truncation`]); `Some(true)` once it found the file empty.
    static TRUNCATION_WATCH: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Watches the checkpoints run on this thread while the returned value lives, for a
/// database file truncated to nothing under the connection (logrotate's `copytruncate`):
/// a checkpoint that finds the file empty fails (`SQLITE_IOERR_FSTAT`) instead of writing
/// its pages into it. Those pages are what the connection changed, and the file
/// written with them alone was a first page of zeros (no header, no schema) that every
/// later write failed on. An empty file at a checkpoint is always another program's doing:
/// a database file in WAL mode keeps its header (SQLite writes it before it switches a
/// new file to WAL), and SQLite never truncates one to nothing. Costs nothing more:
/// SQLite asks the file's size before it copies anything, and this only looks at the
/// answer.
pub(crate) fn watch_truncation() -> TruncationWatch {
    let before = TRUNCATION_WATCH.with(|c| c.replace(Some(false)));
    TruncationWatch { before }
}

/// See [`watch_truncation`].
pub(crate) struct TruncationWatch {
    before: Option<bool>,
}

impl TruncationWatch {
    /// Whether a checkpoint found the database file empty since the watch began.
    pub(crate) fn found(&self) -> bool {
        TRUNCATION_WATCH.try_with(Cell::get).ok().flatten() == Some(true)
    }
}

impl Drop for TruncationWatch {
    fn drop(&mut self) {
        let _ = TRUNCATION_WATCH.try_with(|c| c.set(self.before));
    }
}

/// SQLite's `xFileSize` for a database file of this VFS: the `unix` VFS's, except that it
/// fails for an empty file while [`watch_truncation`] watches this thread.
extern "C" fn database_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let Some(file_size) = DB_TABLES.unix.get().and_then(|(_, unix)| unix.0.xFileSize) else {
        return ffi::SQLITE_IOERR_FSTAT;
    };
    // SAFETY: SQLite's own arguments, unchanged, to the method they were meant for.
    let rc = unsafe { file_size(file, size) };
    // SAFETY: SQLite passes a pointer to a live value for the answer, which the `unix`
    // method set when it succeeded.
    if rc == ffi::SQLITE_OK && unsafe { *size } == 0 {
        let watched = TRUNCATION_WATCH
            .try_with(|c| {
                let on = c.get().is_some();
                if on {
                    c.set(Some(true));
                }
                on
            })
            .unwrap_or(false);
        if watched {
            return ffi::SQLITE_IOERR_FSTAT;
        }
    }
    rc
}

/// SQLite's `xTruncate` for a `-wal` file of this VFS. SQLite truncates a log to 0 only
/// once every frame in it is in the database file and its index says no frame (a TRUNCATE
/// checkpoint, under the writer's, the checkpointer's and the readers' locks; or the last
/// connection's close, after its checkpoint). Then a log of at most
/// `WalSettings::REFILL_BYTES` (a login's and a logout's frames; a larger one, an import's
/// batch, is truncated) keeps its blocks and gets the header of a log without frames
/// instead: new salts, so that SQLite's recovery reads none of the frames behind it, which
/// carry the old ones (see `side_files::empty_log_header`). The next commit of a connection
/// per call then overwrites blocks the file has, and its syncs (the log's header, then its
/// frames) write no size or allocation to the inode. Any other truncate is the `unix`
/// VFS's.
///
/// The header is synced before this returns. A truncate is metadata, which the file
/// system's journal (ext4's) makes durable in order with whatever comes after it; the header
/// is data, which a power cut loses, until the file is synced, even when later renames and
/// creates survive it. The log would then be back as its last sync left it, the frames of
/// the last write valid behind their header, and the next open of the name would read
/// them into whatever file is there by then: a backup put back at the name was seen given
/// the pages of the write before it (its indexes then missing rows). The sync overwrites
/// one block in place: no size or allocation either.
extern "C" fn truncate_log(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let Some((_, unix)) = LOG_TABLES.unix.get() else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    if size == 0 && frameless_header(file, &unix.0) {
        return ffi::SQLITE_OK;
    }
    let Some(truncate) = unix.0.xTruncate else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    // SAFETY: SQLite's own arguments, unchanged, to the method they were meant for.
    unsafe { truncate(file, size) }
}

/// Writes a header without frames over the `-wal` file `file`, and syncs it, when the file
/// is longer than a header and at most `WalSettings::REFILL_BYTES`, and starts with a header
/// of SQLite's (whose page size it keeps). False when that was not done (nothing written,
/// or the header not synced): the caller truncates.
fn frameless_header(file: *mut ffi::sqlite3_file, unix: &ffi::sqlite3_io_methods) -> bool {
    let (Some(file_size), Some(read), Some(write), Some(sync)) =
        (unix.xFileSize, unix.xRead, unix.xWrite, unix.xSync)
    else {
        return false;
    };
    let kept = ffi::sqlite3_int64::try_from(super::WalSettings::REFILL_BYTES).unwrap_or(0);
    let mut now: ffi::sqlite3_int64 = -1;
    // SAFETY: SQLite's own open file, passed to the `unix` VFS's method for it, with a
    // pointer to a live local for the answer.
    if unsafe { file_size(file, &raw mut now) } != ffi::SQLITE_OK || now <= 32 || now > kept {
        return false;
    }
    let mut old = [0u8; 32];
    // SAFETY: as above; the buffer is a live local of the length passed.
    if unsafe { read(file, old.as_mut_ptr().cast(), 32, 0) } != ffi::SQLITE_OK {
        return false;
    }
    if !super::side_files::is_log_header(&old) {
        return false;
    }
    let page_size = u32::from_be_bytes([old[8], old[9], old[10], old[11]]);
    let mut salts = [0u8; 8];
    while salts == [0u8; 8] || salts[..] == old[16..24] {
        // SAFETY: SQLite's generator writes exactly the 8 bytes asked into the live local.
        unsafe { ffi::sqlite3_randomness(8, salts.as_mut_ptr().cast()) };
    }
    let Some(header) = super::side_files::empty_log_header(page_size, salts) else {
        return false;
    };
    // SAFETY: as above; the header is a live local of the length passed.
    if unsafe { write(file, header.as_ptr().cast(), 32, 0) } != ffi::SQLITE_OK {
        return false;
    }
    // `fdatasync`: the header's block, overwritten in place (see `truncate_log`).
    let flags = ffi::SQLITE_SYNC_NORMAL | ffi::SQLITE_SYNC_DATAONLY;
    // SAFETY: SQLite's own open file, passed to the `unix` VFS's method for it.
    unsafe { sync(file, flags) == ffi::SQLITE_OK }
}

struct Registry {
    users: usize,
    vfs: Option<Registered>,
}

/// The registered copy, at a fixed address while SQLite may use it, and its name (which
/// `zName` points into).
struct Registered(Box<ffi::sqlite3_vfs>, CString);

// SAFETY: the struct holds pointers to SQLite's static data (its name, the unix VFS's app
// data) and function pointers; SQLite calls a VFS from any thread, and here it is only
// moved under the registry's lock.
unsafe impl Send for Registered {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    users: 0,
    vfs: None,
});

/// One connection's use of the VFS: it stays registered while any exists. Must outlive the
/// connection (a field declared after it, so dropped after it).
pub(super) struct InUse(());

impl InUse {
    /// The name to open the VFS by.
    pub(super) fn name(&self) -> CString {
        name()
    }
}

impl InUse {
    /// Registers the VFS if no connection uses it yet. None when SQLite has no `unix` VFS
    /// to copy or refuses the registration (the caller then opens with the default VFS), and
    /// when SQLite cannot be loaded (the open that follows then says why).
    pub(super) fn start() -> Option<InUse> {
        crate::sqlite::load().ok()?;
        let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        if r.users == 0 {
            // SAFETY: sqlite3_vfs_find takes a NUL-terminated name and returns a pointer to
            // a registered VFS or NULL; it initializes SQLite if needed.
            let unix = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
            if unix.is_null() {
                return None;
            }
            // SAFETY: `unix` points to SQLite's static unix VFS, a plain C struct that lives
            // as long as the library; a bitwise copy is a VFS with the same methods.
            let mut copy = Box::new(unsafe { std::ptr::read(unix) });
            let name = name();
            copy.zName = name.as_ptr();
            copy.pNext = std::ptr::null_mut();
            copy.xSleep = Some(bounded_sleep);
            let _ = UNIX_OPEN.set(copy.xOpen?);
            copy.xOpen = Some(open_file);
            // SAFETY: the boxed VFS stays at its address until it is unregistered (below,
            // under the same lock, when its last user is gone); it is not the default.
            let rc = unsafe { ffi::sqlite3_vfs_register(&mut *copy, 0) };
            if rc != ffi::SQLITE_OK {
                return None;
            }
            r.vfs = Some(Registered(copy, name));
        }
        r.users += 1;
        Some(InUse(()))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        r.users -= 1;
        if r.users == 0 {
            if let Some(Registered(mut vfs, _name)) = r.vfs.take() {
                // SAFETY: the VFS was registered by `start` and no connection uses it any
                // more (each holds an InUse until it is closed); once unregistered SQLite
                // keeps no pointer to it, so the box may go.
                unsafe { ffi::sqlite3_vfs_unregister(&mut *vfs) };
            }
        }
    }
}

/// Keeps the `-wal` file of `conn`'s main database when the last connection closes
/// (`SQLITE_FCNTL_PERSIST_WAL`): see `WalSettings` in the storage module. Here because it is
/// a call of SQLite's C API, which rusqlite does not wrap.
pub(super) fn persist_wal(conn: &rusqlite::Connection) {
    let mut persist: c_int = 1;
    // SAFETY: the handle is the connection's own, valid while `conn` is borrowed, and used
    // on this thread only; sqlite3_file_control with SQLITE_FCNTL_PERSIST_WAL reads and
    // writes exactly one int through the pointer, which points to a live local.
    unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut persist).cast(),
        );
    }
}

/// Runs `f` on `conn` with every statement still running at `until` ended (it then fails
/// with `SQLITE_INTERRUPT`); None, without running `f`, when that cannot be promised.
///
/// SQLite's interrupt flag ends a statement within a page or a step, the walk of `PRAGMA
/// quick_check` over the b-trees included (SQLite's progress handler is never called in
/// that walk before 3.43, and the system's SQLite may be older: it read a whole file, half
/// a second for a million rows, seconds on a cold disk, past a login's bound). A thread
/// sets the flag at `until` and again every millisecond until `f` returns: a flag set
/// between two statements is cleared when the next one starts.
pub(super) fn until<T>(
    conn: &rusqlite::Connection,
    until: Instant,
    f: impl FnOnce() -> T,
) -> Option<T> {
    let interrupt = conn.get_interrupt_handle();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::Builder::new()
        .name("wtmpdb-deadline".into())
        .spawn(move || {
            let mut wait = until.saturating_duration_since(Instant::now());
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(wait) {
                interrupt.interrupt();
                wait = Duration::from_millis(1);
            }
        })
        .ok()?;
    let out = f();
    drop(done);
    // Ends at once: its channel is closed.
    let _ = watchdog.join();
    Some(out)
}

/// The size of one region of a WAL index, as SQLite maps it (`WALINDEX_PGSZ`).
const INDEX_REGION: c_int = 32768;

/// The first 48 bytes of the `-shm` index of `conn`'s main database (the header of a WAL
/// index), read in SQLite's own mapping of its first region: the `unix` VFS's `xShmMap`,
/// which opens nothing for a connection whose index is open (a connection in WAL mode
/// after its first read) and only looks the mapping up, under SQLite's mutex of the index.
/// None when the file's methods have no `xShmMap` or the region is not mapped. Here because
/// it is SQLite's C API, which rusqlite does not wrap.
pub(super) fn index_header(conn: &rusqlite::Connection) -> Option<[u8; 48]> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection's own handle, valid while `conn` is borrowed and used on this
    // thread only; SQLITE_FCNTL_FILE_POINTER writes one pointer through the argument, which
    // points to a live local.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: SQLite's open main database file, alive while the connection is; its first
    // field is its methods table (SQLite's static one or ours, see `use_own_methods`).
    let methods = unsafe { (*file).pMethods };
    if methods.is_null() {
        return None;
    }
    // SAFETY: a methods table lives as long as the library (or this code) does.
    let (version, map) = unsafe { ((*methods).iVersion, (*methods).xShmMap) };
    let map = map.filter(|_| version >= 2)?;
    let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: the file's own method, called as SQLite calls it: region 0 of SQLite's
    // region size, without extending the file (0), the address written through a pointer
    // to a live local. The caller's connection is in WAL mode and has read, so its index
    // is open and this only looks its mapping up; the connection is used by this thread
    // only meanwhile.
    let rc = unsafe { map(file, 0, INDEX_REGION, 0, &raw mut region) };
    if rc != ffi::SQLITE_OK || region.is_null() {
        return None;
    }
    // SAFETY: the region is a shared mapping of INDEX_REGION bytes, which stays mapped while
    // the connection is open. Other processes may write it meanwhile: read as volatile
    // memory (a torn read differs from the header noted, as their write does).
    Some(unsafe { std::ptr::read_volatile(region.cast::<[u8; 48]>()) })
}

/// The first `N` bytes of the file `path` and its size, read as SQLite reads a database
/// file: opened through the `unix` VFS as a main database, read-only (`xOpen`), then read
/// (`xRead`), sized (`xFileSize`) and closed (`xClose`). None when SQLite cannot be loaded,
/// the file cannot be opened, or it holds fewer than `N` bytes. Here because it is SQLite's
/// C API, which rusqlite does not wrap.
///
/// Why not through `std::fs`: closing any descriptor of a file drops every `fcntl` lock this
/// process holds on the file (POSIX), those of its SQLite connections included (wtmpdbd
/// keeps one open while other threads open the file). The `unix` VFS keeps one record per
/// file (device and inode) for every file it opened in the process, and its `xClose` of a
/// file that has locks on that record leaves the descriptor open, on the record's list of
/// unused ones, instead of closing it: the next open of the file (the next call here, or a
/// connection's) takes it again, and the last lock's release closes it. That is how
/// SQLite's own connections close a file without dropping one another's locks. It is the
/// VFS every connection of ours opens through (the writers' is a copy of it, see
/// [`InUse::start`]); without it, SQLite's default VFS.
pub(crate) fn file_start<const N: usize>(path: &Path) -> Option<([u8; N], u64)> {
    let amount = c_int::try_from(N).ok().filter(|&n| n > 0)?;
    crate::sqlite::load().ok()?;
    // SAFETY: sqlite3_vfs_find takes a NUL-terminated name and returns a registered VFS or
    // NULL; it initializes SQLite if needed.
    let mut vfs = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
    if vfs.is_null() {
        // SAFETY: as above; NULL asks for the default VFS.
        vfs = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    }
    if vfs.is_null() {
        return None;
    }
    // SQLite hands a VFS the name resolved (`xFullPathname`): the `unix` VFS follows no link.
    let file = std::fs::canonicalize(path).ok()?;
    let file = CString::new(file.into_os_string().into_vec()).ok()?;
    // A database's name as SQLite itself hands it to `xOpen`, in which the VFS may look up
    // URI parameters (none here). Those of the journal and the log are left empty: nothing
    // here opens them.
    // SAFETY: NUL-terminated names and no parameters. The result is NULL or a name to free
    // with sqlite3_free_filename.
    let name = unsafe {
        ffi::sqlite3_create_filename(
            file.as_ptr(),
            c"".as_ptr(),
            c"".as_ptr(),
            0,
            std::ptr::null_mut(),
        )
    };
    if name.is_null() {
        return None;
    }
    // SAFETY: `vfs` is a registered VFS (the `unix` one a static of the library), and
    // `name` a name made for xOpen that lives until it is freed below, after the close.
    let start = unsafe { read_start::<N>(vfs, name, amount) };
    // SAFETY: made by sqlite3_create_filename above, and no longer used: the file that
    // kept a pointer to it is closed.
    unsafe { ffi::sqlite3_free_filename(name) };
    start
}

/// [`file_start`] once the VFS and the name are found.
///
/// # Safety
/// `vfs` is a registered VFS and `name` a name from `sqlite3_create_filename` that outlives
/// the call.
unsafe fn read_start<const N: usize>(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    amount: c_int,
) -> Option<([u8; N], u64)> {
    // SAFETY: the caller's promise: a registered VFS, whose fields are only read.
    let (open, size) = unsafe { ((*vfs).xOpen?, (*vfs).szOsFile) };
    // The VFS's file object: `szOsFile` bytes, zeroed, aligned as SQLite's allocator aligns
    // the ones it makes (8 bytes).
    let size = usize::try_from(size)
        .ok()?
        .max(std::mem::size_of::<ffi::sqlite3_file>());
    let mut object = vec![0u64; size.div_ceil(8)];
    let file = object.as_mut_ptr().cast::<ffi::sqlite3_file>();
    let flags = ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_READONLY;
    let mut out_flags: c_int = 0;
    // SAFETY: as SQLite calls xOpen: the VFS itself, a name made for it that outlives the
    // file, room for its file object (which it fills in), valid flags (a main database,
    // read-only, never created), and a live local for the flags it reports.
    let rc = unsafe { open(vfs, name, file, flags, &raw mut out_flags) };
    // SAFETY: the object is ours and was zeroed: its methods pointer is NULL unless the open
    // succeeded (a failed xOpen leaves the file closed, with no methods).
    let methods = unsafe { (*file).pMethods };
    if methods.is_null() {
        return None;
    }
    let mut start = [0u8; N];
    let mut file_size: ffi::sqlite3_int64 = -1;
    // SAFETY: a methods table lives as long as the library does; its fields are read.
    let (read, sized, close) =
        unsafe { ((*methods).xRead, (*methods).xFileSize, (*methods).xClose) };
    let found = rc == ffi::SQLITE_OK
        && read.is_some_and(|read| {
            // SAFETY: the open file, and a live buffer of `amount` (N) bytes to read into,
            // from the file's start. A short read (SQLITE_IOERR_SHORT_READ) is no success.
            unsafe { read(file, start.as_mut_ptr().cast(), amount, 0) == ffi::SQLITE_OK }
        })
        && sized.is_some_and(|sized| {
            // SAFETY: the open file, and a live local for its size.
            unsafe { sized(file, &raw mut file_size) == ffi::SQLITE_OK }
        });
    if let Some(close) = close {
        // SAFETY: the file opened above, closed once, as SQLite closes a file; the object
        // outlives the call. The `unix` VFS's xClose keeps the descriptor open while the
        // file has locks (see `file_start`).
        unsafe { close(file) };
    }
    let file_size = u64::try_from(file_size).ok()?;
    found.then_some((start, file_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_sleep_ends_at_the_deadline_and_an_unbounded_one_sleeps() {
        let t = Instant::now();
        bounded_sleep(std::ptr::null_mut(), 20_000);
        assert!(t.elapsed() >= Duration::from_millis(20));
        let _bound = bound_sleeps(Instant::now());
        let t = Instant::now();
        bounded_sleep(std::ptr::null_mut(), 2_000_000);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    /// A reader's look within a writer's call keeps the call's sooner deadline, and both
    /// the look and the bound before it are back afterwards.
    #[test]
    fn a_look_keeps_a_sooner_deadline_and_restores_what_was_set() {
        fn never(_: Instant) -> bool {
            false
        }
        let call = Instant::now() + Duration::from_millis(50);
        let _bound = bound_sleeps(call);
        {
            let _look = look_while(never, Instant::now() + Duration::from_secs(10));
            assert_eq!(deadline(), Some(call));
            assert!(BEFORE_WAIT.with(Cell::get).is_some());
        }
        assert_eq!(deadline(), Some(call));
        assert!(BEFORE_WAIT.with(Cell::get).is_none());
    }

    /// A check past its deadline ([`until`]) stops within a few pages, not at the end of
    /// the file: the walk of `PRAGMA quick_check` over the b-trees never calls the progress
    /// handler in SQLite before 3.43, and read a whole file (seconds for a large one on a
    /// cold disk) past a login's bound.
    #[test]
    fn a_check_past_its_deadline_stops_within_a_few_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        {
            let mut db = crate::storage::Database::open_read_write(&path).unwrap();
            let rows = (0..300_000).map(|i| crate::storage::NewEntry {
                kind: crate::storage::Kind::UserProcess,
                user: "someone",
                login: i,
                logout: Some(i + 1),
                tty: Some("pts/1"),
                ..Default::default()
            });
            db.insert_all(rows, |_| {}).unwrap();
            assert!(db.checkpoint_now());
        }
        let pages = std::fs::metadata(&path).unwrap().len() / 4096;
        let conn = rusqlite::Connection::open(&path).unwrap();
        let r = until(&conn, Instant::now(), || {
            conn.query_row(crate::storage::queries::QUICK_CHECK, [], |r| {
                r.get::<_, String>(0)
            })
        });
        assert_eq!(
            r.unwrap().unwrap_err().sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
        let (mut read, mut high) = (0, 0);
        // SAFETY: a live connection's handle on this thread; both pointers to live locals.
        let rc = unsafe {
            ffi::sqlite3_db_status(
                conn.handle(),
                ffi::SQLITE_DBSTATUS_CACHE_MISS,
                &raw mut read,
                &raw mut high,
                0,
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        assert!(
            u64::try_from(read).unwrap() < pages / 4,
            "{read} of {pages} pages read past the deadline"
        );
        // Nothing left set: the next statement on the connection runs.
        let ok = conn.query_row(crate::storage::queries::QUICK_CHECK, [], |r| {
            r.get::<_, String>(0)
        });
        assert_eq!(ok.unwrap(), "ok");
    }

    /// The VFS a writer's connection opened through.
    fn vfs_of(db: &crate::storage::Database) -> *mut ffi::sqlite3_vfs {
        let mut vfs: *mut ffi::sqlite3_vfs = std::ptr::null_mut();
        // SAFETY: a live connection's handle on this thread; SQLITE_FCNTL_VFS_POINTER writes
        // one pointer through the argument, which points to a live local.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                db.connection().handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_VFS_POINTER,
                (&raw mut vfs).cast(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        vfs
    }

    /// Regression: every copy of this code in a process registered its VFS under the same
    /// name, and SQLite finds a VFS by its name: with two copies at once (libwtmpdb.so.0 in
    /// sshd and pam_wtmpdb.so in its PAM stack, each with its own registry, or two versions
    /// of them), one copy's connections opened through the other's VFS. Its sleeps then
    /// read the other copy's deadline (none: a login stalled 10 s again), and when that copy
    /// unregistered it (its last connection closed, the PAM module about to be unloaded),
    /// they were left with a freed VFS whose xSleep pointed into unmapped code.
    #[test]
    fn a_vfs_another_copy_registered_under_the_same_name_is_not_used() {
        // What another copy does: a copy of `unix` under the name, registered after ours.
        // SAFETY: as in `InUse::start`.
        let unix = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
        assert!(!unix.is_null());
        // SAFETY: as in `InUse::start`.
        let mut other = Box::new(unsafe { std::ptr::read(unix) });
        other.zName = NAME_C.as_ptr();
        other.pNext = std::ptr::null_mut();
        // Never freed: other tests' connections may open through it while it is registered.
        let other: &'static mut ffi::sqlite3_vfs = Box::leak(other);
        let ours = InUse::start().expect("registered");
        // SAFETY: a VFS that lives as long as the process; not the default.
        let rc = unsafe { ffi::sqlite3_vfs_register(&raw mut *other, 0) };
        assert_eq!(rc, ffi::SQLITE_OK);
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::Database::open_read_write(&dir.path().join("w.db")).unwrap();
        let used = vfs_of(&db);
        let registered = REGISTRY
            .lock()
            .unwrap()
            .vfs
            .as_mut()
            .map(|r| &raw mut *r.0)
            .expect("ours is registered while used");
        // SAFETY: registered above; unregistering leaves the (leaked) struct valid.
        unsafe { ffi::sqlite3_vfs_unregister(&raw mut *other) };
        drop(db);
        drop(ours);
        assert!(
            used == registered,
            "the connection opened through another copy's VFS"
        );
    }

    /// Threads that open and close writers at once (the daemon's committer beside its
    /// connection threads' session writers), with connections on the default VFS among
    /// them: each writer opens through this copy's VFS, which is registered whenever a
    /// connection uses it, and every write lands.
    #[test]
    fn writers_opened_and_closed_on_many_threads_keep_the_vfs_registered_while_used() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared.db");
        crate::storage::Database::open_read_write(&shared).unwrap();
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let own = dir.path().join(format!("{t}.db"));
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let path = if i % 2 == 0 { &own } else { &shared };
                        let db = crate::storage::Database::open_read_write(path).unwrap();
                        let vfs = vfs_of(&db);
                        // SAFETY: the connection's VFS, alive while it is open.
                        let used = unsafe { CStr::from_ptr((*vfs).zName) };
                        assert_eq!(used, name().as_c_str());
                        // Another user of SQLite in the process, on the default VFS.
                        let plain = rusqlite::Connection::open(dir_of(path).join("plain")).unwrap();
                        plain.pragma_update(None, "user_version", i).unwrap();
                        db.login(&crate::storage::NewEntry {
                            kind: crate::storage::Kind::UserProcess,
                            user: "u",
                            login: i,
                            logout: None,
                            tty: Some("pts/1"),
                            host: None,
                            service: None,
                        })
                        .unwrap();
                        drop(db);
                        drop(plain);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let db = crate::storage::Database::open_read_only(&shared).unwrap();
        let n: i64 = db
            .connection()
            .query_row(crate::storage::queries::COUNT_ROWS, [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6 * 20);
    }

    fn dir_of(p: &std::path::Path) -> &std::path::Path {
        p.parent().unwrap()
    }

    #[test]
    fn the_vfs_is_registered_while_used_and_gone_after() {
        let find = || {
            // SAFETY: a NUL-terminated name; the result is only compared with NULL.
            !unsafe { ffi::sqlite3_vfs_find(name().as_ptr()) }.is_null()
        };
        let a = InUse::start().expect("registered");
        let b = InUse::start().expect("registered");
        assert!(find());
        drop(a);
        assert!(find(), "still used");
        drop(b);
        // Other tests of this process may use it meanwhile: only checked when none does.
        let r = REGISTRY.lock().unwrap();
        if r.users == 0 {
            assert!(!find());
        }
    }
}
