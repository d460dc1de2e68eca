//! SQLite, loaded when it is first needed rather than when the program starts.
//!
//! Nothing links `libsqlite3`: rusqlite is built with its `loadable_extension` feature, which
//! makes every `sqlite3_*` call go through a table of SQLite's routines
//! (`sqlite3_api_routines`) that must be filled in before the first call. [`load`] fills it:
//! it loads `libsqlite3.so.0` (`RTLD_NOW | RTLD_LOCAL`, never unloaded), asks SQLite for that
//! table the only way SQLite hands it out (an automatic extension, registered just for one
//! `:memory:` connection and cancelled again) and gives it to rusqlite. The table is the
//! loaded library's own list of functions, not configuration.
//!
//! Why: the PAM module is loaded (with `RTLD_NOW`) into every login process, and most logins
//! on a host that runs wtmpdbd never touch a file; loading SQLite costs such a login as much
//! as the module itself. Now only the calls that open a database pay for it.
//!
//! A program that links SQLite itself (the command, built with its `static-sqlite` feature)
//! names its copy with [`use_linked`] before its first connection; the routines table is
//! then that copy's, taken the same way, and no shared object is loaded.
//!
//! Every connection the core opens goes through [`open_with_flags`] and its siblings, which
//! load SQLite first and fail like a failed open (`SQLITE_CANTOPEN`, with the loader's
//! message) when it cannot be loaded. Code that uses rusqlite directly (tests, mostly) calls
//! [`load`] first, or, in a test binary, [`load_sqlite_at_start!`](crate::load_sqlite_at_start).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rusqlite::{Connection, OpenFlags, ffi};

/// SQLite's connection handle (the C type), for the prototypes of [`Linked`].
pub use rusqlite::ffi::sqlite3;

/// The shared object loaded: the name of SQLite's version 3 library on every glibc system.
const LIBRARY: &CStr = c"libsqlite3.so.0";

/// SQLite's entry points as a program that links SQLite itself has them (see
/// [`use_linked`]): then [`load`] takes the routines table from that copy, and loads none.
#[derive(Clone, Copy)]
pub struct Linked {
    pub auto_extension: AutoExtension,
    pub cancel_auto_extension: AutoExtension,
    pub open_v2: OpenV2,
    pub close: Close,
    /// `sqlite3_config`, for [`for_short_runs`] (None: not needed).
    pub config: Option<Config>,
}

/// Whether [`load`] sets SQLite up for a short run (see [`for_short_runs`]).
static SHORT_RUNS: AtomicBool = AtomicBool::new(false);

/// Sets SQLite up, as [`load`] loads it, for a program that runs briefly and has its
/// process to itself (the command): no memory statistics (every allocation took a global
/// mutex to count itself: 5% of the instructions of a `wtmpdb last -n 10`) and no page
/// cache allocated ahead of use (twenty pages' headers written, a page fault each, where a
/// short listing reads ten pages). These are settings of the whole process
/// (`sqlite3_config`), which a library loaded into others' processes (the PAM module)
/// must not make: only a program's own start asks for them, before its first connection.
/// Without effect once SQLite is loaded, or where another part of the process started it.
pub fn for_short_runs() {
    SHORT_RUNS.store(true, Ordering::Release);
}

/// The linked copy of SQLite, when the program named one before the first [`load`].
static LINKED: OnceLock<Linked> = OnceLock::new();

/// Makes [`load`] use the copy of SQLite the program links (its `sqlite3_*` functions)
/// instead of loading `libsqlite3.so.0`: for a program that starts often and always opens
/// a database (the command), where loading the shared object and binding its symbols is a
/// large part of a short run. Called before anything opens a connection; false when too
/// late (a copy is in use already: SQLite stays the one loaded first).
pub fn use_linked(linked: Linked) -> bool {
    !is_loaded() && LINKED.set(linked).is_ok()
}

/// The memory SQLite counts as in use (`sqlite3_memory_used`): 0 without its memory
/// statistics (see [`for_short_runs`]), or before SQLite is loaded. For tests.
#[doc(hidden)]
pub fn memory_in_use() -> i64 {
    if !is_loaded() {
        return 0;
    }
    // SAFETY: SQLite is loaded (its routines are rusqlite's); the call only reads a counter.
    unsafe { ffi::sqlite3_memory_used() }
}

/// Set once the routines table is rusqlite's; never unset (the library stays loaded).
static LOADED: OnceLock<()> = OnceLock::new();
/// Serializes the loading (a failed one is tried again by the next call).
static LOADING: Mutex<()> = Mutex::new(());
/// Where the automatic extension leaves the routines table SQLite passes it.
static API: AtomicPtr<ffi::sqlite3_api_routines> = AtomicPtr::new(std::ptr::null_mut());

/// Makes SQLite callable: loads it on the first call, does nothing after a successful one.
/// The error (a `SQLITE_CANTOPEN` failure) says why SQLite could not be loaded.
pub fn load() -> rusqlite::Result<()> {
    if LOADED.get().is_some() {
        return Ok(());
    }
    let _serial = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    if LOADED.get().is_some() {
        return Ok(());
    }
    bootstrap().map_err(|why| {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_CANTOPEN),
            Some(format!(
                "cannot load SQLite ({}): {why}",
                LIBRARY.to_string_lossy()
            )),
        )
    })?;
    let _ = LOADED.set(());
    Ok(())
}

/// Whether SQLite is loaded (by a successful [`load`]): until then no `sqlite3_*` function
/// may be called, not even for the text of an error code.
pub fn is_loaded() -> bool {
    LOADED.get().is_some()
}

/// [`Connection::open_with_flags`], after [`load`].
pub fn open_with_flags<P: AsRef<Path>>(path: P, flags: OpenFlags) -> rusqlite::Result<Connection> {
    load()?;
    Connection::open_with_flags(path, flags)
}

/// [`Connection::open_with_flags_and_vfs`], after [`load`].
pub fn open_with_flags_and_vfs<P: AsRef<Path>>(
    path: P,
    flags: OpenFlags,
    vfs: &CStr,
) -> rusqlite::Result<Connection> {
    load()?;
    Connection::open_with_flags_and_vfs(path, flags, vfs)
}

/// [`Connection::open_in_memory`], after [`load`].
pub fn open_in_memory() -> rusqlite::Result<Connection> {
    load()?;
    Connection::open_in_memory()
}

/// Loads SQLite at the start of a test binary (or any program that uses rusqlite directly
/// before it calls the core), so that its direct `Connection::open` calls find SQLite loaded
/// whichever test runs first. Expands to one constructor in the calling crate; the process
/// panics there, before main, when SQLite cannot be loaded.
#[macro_export]
macro_rules! load_sqlite_at_start {
    () => {
        #[allow(unsafe_code)]
        #[used]
        // SAFETY: an entry of `.init_array` is a function the dynamic loader calls, without
        // arguments, once, when the program starts; this one only loads SQLite.
        #[unsafe(link_section = ".init_array")]
        static __WTMPDB_LOAD_SQLITE: extern "C" fn() = {
            extern "C" fn load() {
                $crate::sqlite::load().expect("SQLite loads");
            }
            load
        };
    };
}

/// The automatic extension: keeps the routines table SQLite passes (the same table for every
/// connection of the library) and registers nothing. Another thread's connection opened while
/// it is registered runs it too, harmlessly.
extern "C" fn take_routines(
    _db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    api: *const ffi::sqlite3_api_routines,
) -> c_int {
    API.store(api.cast_mut(), Ordering::Release);
    ffi::SQLITE_OK
}

/// The last dlerror message, or `fallback`.
fn dl_error(fallback: &str) -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message valid until the next dl call
    // of this thread; it is copied at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        fallback.to_owned()
    } else {
        // SAFETY: non-NULL, NUL-terminated (see above).
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

/// One symbol of the loaded library, or why not.
fn symbol(lib: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: `lib` is a handle dlopen returned and never closed; `name` is NUL-terminated.
    let sym = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if sym.is_null() {
        Err(dl_error(&format!("no symbol {}", name.to_string_lossy())))
    } else {
        Ok(sym)
    }
}

/// `int sqlite3_auto_extension(void(*)(void))`, and `sqlite3_cancel_auto_extension`.
pub type AutoExtension = unsafe extern "C" fn(Option<unsafe extern "C" fn()>) -> c_int;
/// `int sqlite3_open_v2(const char*, sqlite3**, int, const char*)`.
pub type OpenV2 =
    unsafe extern "C" fn(*const c_char, *mut *mut ffi::sqlite3, c_int, *const c_char) -> c_int;
/// `int sqlite3_close(sqlite3*)`.
pub type Close = unsafe extern "C" fn(*mut ffi::sqlite3) -> c_int;
/// `int sqlite3_config(int, ...)`.
pub type Config = unsafe extern "C" fn(c_int, ...) -> c_int;

/// The entry points of `libsqlite3.so.0`, loaded now and never unloaded.
fn load_library() -> Result<Linked, String> {
    // SAFETY: a NUL-terminated name; the handle is kept for the life of the process (never
    // dlclosed: rusqlite keeps pointers into the library).
    let lib = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(dl_error("dlopen failed"));
    }
    let auto = symbol(lib, c"sqlite3_auto_extension")?;
    let cancel = symbol(lib, c"sqlite3_cancel_auto_extension")?;
    let open = symbol(lib, c"sqlite3_open_v2")?;
    let close = symbol(lib, c"sqlite3_close")?;
    let config = if SHORT_RUNS.load(Ordering::Acquire) {
        Some(symbol(lib, c"sqlite3_config")?)
    } else {
        None
    };
    // SAFETY: these are SQLite's exported functions, whose C prototypes the types spell:
    // int sqlite3_auto_extension(void(*)(void)), the same for the cancelling one,
    // int sqlite3_open_v2(const char*, sqlite3**, int, const char*), int sqlite3_close(sqlite3*),
    // int sqlite3_config(int, ...).
    unsafe {
        Ok(Linked {
            auto_extension: std::mem::transmute::<*mut c_void, AutoExtension>(auto),
            cancel_auto_extension: std::mem::transmute::<*mut c_void, AutoExtension>(cancel),
            open_v2: std::mem::transmute::<*mut c_void, OpenV2>(open),
            close: std::mem::transmute::<*mut c_void, Close>(close),
            config: config.map(|c| std::mem::transmute::<*mut c_void, Config>(c)),
        })
    }
}

/// Loads the library (or takes the linked copy) and hands its routines table to rusqlite.
fn bootstrap() -> Result<(), String> {
    let Linked {
        auto_extension: auto,
        cancel_auto_extension: cancel,
        open_v2: open,
        close,
        config,
    } = match LINKED.get() {
        Some(linked) => *linked,
        None => load_library()?,
    };
    if let Some(config) = config.filter(|_| SHORT_RUNS.load(Ordering::Acquire)) {
        // Before SQLite starts (the automatic extension below starts it). A failure
        // (SQLITE_MISUSE: started already, by another part of the process) changes nothing.
        // SAFETY: sqlite3_config with its documented arguments: MEMSTATUS takes an int;
        // PAGECACHE a buffer, a size and a count (none: no page cache made ahead of use).
        unsafe {
            config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
            config(
                ffi::SQLITE_CONFIG_PAGECACHE,
                std::ptr::null_mut::<c_void>(),
                0 as c_int,
                0 as c_int,
            );
        }
    }
    let entry: extern "C" fn(
        *mut ffi::sqlite3,
        *mut *mut c_char,
        *const ffi::sqlite3_api_routines,
    ) -> c_int = take_routines;
    // SAFETY: SQLite's documented convention: an automatic extension is registered as
    // `void(*)(void)` and called with its real prototype, the one `take_routines` has.
    let entry = unsafe {
        std::mem::transmute::<
            extern "C" fn(
                *mut ffi::sqlite3,
                *mut *mut c_char,
                *const ffi::sqlite3_api_routines,
            ) -> c_int,
            unsafe extern "C" fn(),
        >(entry)
    };
    // SAFETY: registers a function that stays valid (it is in this object, which is not
    // unloaded while SQLite can call it: it is cancelled below before this call returns).
    let rc = unsafe { auto(Some(entry)) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_auto_extension failed ({rc})"));
    }
    let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
    let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_MEMORY | ffi::SQLITE_OPEN_NOMUTEX;
    // SAFETY: a NUL-terminated name, a place for the handle, the default VFS.
    let rc = unsafe { open(c":memory:".as_ptr(), &mut db, flags, std::ptr::null()) };
    // SAFETY: cancels the registration made above (whatever the open did).
    unsafe { cancel(Some(entry)) };
    if !db.is_null() {
        // SAFETY: the handle sqlite3_open_v2 gave, closed once; it has no statements.
        unsafe { close(db) };
    }
    let api = API.load(Ordering::Acquire);
    if rc != ffi::SQLITE_OK || api.is_null() {
        return Err(format!(
            "no routines from an in-memory connection (sqlite3_open_v2: {rc})"
        ));
    }
    // SAFETY: `api` is the routines table of the library just loaded, which stays loaded.
    unsafe { ffi::rusqlite_extension_init2(api) }.map_err(|e| e.to_string())
}

#[cfg(test)]
crate::load_sqlite_at_start!();

#[cfg(test)]
mod tests {
    /// After loading, SQLite answers through the routines table.
    #[test]
    fn loaded_sqlite_answers() {
        super::load().unwrap();
        let c = super::open_in_memory().unwrap();
        let v: String = c
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .unwrap();
        assert!(v.starts_with("3."), "{v}");
    }

    /// SQLite keeps memory statistics unless a program asked for short runs (as this test
    /// binary does not: tests/short_runs.rs does, in a process of its own).
    #[test]
    fn memory_is_counted_by_default() {
        let c = super::open_in_memory().unwrap();
        assert!(super::memory_in_use() > 0);
        drop(c);
    }

    /// A linked copy named after SQLite is loaded is refused: the copy in use stays the one.
    #[test]
    fn a_linked_copy_comes_before_the_first_load_or_not_at_all() {
        super::load().unwrap();
        let loaded = super::load_library().unwrap();
        assert!(!super::use_linked(loaded));
        assert!(super::LINKED.get().is_none());
    }

    /// Every connection the programs open goes through this file, which loads SQLite
    /// first: a `rusqlite::Connection::open*` anywhere else (outside tests) panics with
    /// "SQLite API not initialized" when it runs first in a process (as the import's new
    /// database did).
    #[test]
    fn connections_are_opened_only_here() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        walk(&root.join("src"), &mut files);
        for krate in ["cli", "pam", "daemon", "libwtmpdb"] {
            walk(&root.join("crates").join(krate).join("src"), &mut files);
        }
        assert!(files.len() > 20, "{files:?}");
        for f in files
            .iter()
            .filter(|f| !f.ends_with("src/sqlite.rs") && !f.ends_with("tests.rs"))
        {
            let text = std::fs::read_to_string(f).unwrap();
            // The code before the file's tests, if it has any.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for call in [
                "Connection::open",
                "Connection::open_with_flags",
                "Connection::open_in_memory",
            ] {
                assert!(
                    !code.contains(&format!("{call}(")),
                    "{} opens a connection itself ({call}): use wtmpdb::sqlite",
                    f.display()
                );
            }
        }
    }
}
