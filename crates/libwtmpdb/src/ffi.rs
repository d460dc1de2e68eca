//! The C side of the library, and all of its `unsafe`: the nine exported functions, what
//! they do with the caller's pointers, and the panic guard around each of them.
//!
//! The exported names are defined by `global_asm!` as aliases of the functions below (see
//! build.rs for why): a Rust `#[no_mangle]` would put them in rustc's own version script and
//! leave them without upstream's version nodes.
//!
//! Pointer rules, for every function: a NULL string is `None`; strings are read up to their
//! NUL and need not be UTF-8; `error` may be NULL, and is written only when the call fails
//! (`logwtmpdb` sets `*error` to NULL first, as upstream does); an out pointer of
//! `wtmpdb_rotate` may be NULL. Nothing is written to stdout or stderr, not even by a panic,
//! and no panic unwinds into the caller.

use std::cell::Cell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::{Failure, Login, Next};

// The unwinder (the exported functions catch panics, which unwind) linked in from
// libgcc_eh.a, as `gcc -shared -static-libgcc` does, instead of loading libgcc_s.so.1 into
// the program (sshd's session process, at every connection): its constructor probes the CPU
// with CPUID, which traps to the hypervisor on a virtual machine. Its symbols stay local
// (the version script exports upstream's functions only); no panic crosses the boundary.
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
unsafe extern "C" {}

/// The callback type of `wtmpdb_read_all` (sqlite3_exec's).
pub type Callback =
    Option<unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int>;

thread_local! {
    /// Set while this thread runs library code: only those panics are silenced.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, a panic hook that keeps the library's panics off stderr. The shared
/// object has its own copy of std, so this is the hook of that copy only; other panics
/// still go to the previous hook.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs the body of an exported function: its failure (or a panic) becomes `code(failure)`
/// and, when `error` is not NULL, a message in `*error`.
///
/// # Safety
/// `error` is NULL or points to writable storage for a `char *`.
unsafe fn guard<T>(
    error: *mut *mut c_char,
    code: fn(&Failure) -> T,
    body: impl FnOnce() -> crate::Result<T>,
) -> T {
    quiet_panics();
    let was_inside = INSIDE.with(|c| c.replace(true));
    // A thread cancelled inside a call would unwind through Rust frames, which the
    // guard cannot let pass: the process would abort (see wtmpdb::CancelDeferred).
    let cancel = wtmpdb::CancelDeferred::new();
    let result = catch_unwind(AssertUnwindSafe(body));
    drop(cancel);
    INSIDE.with(|c| c.set(was_inside));
    let failure = match result {
        Ok(Ok(v)) => return v,
        Ok(Err(f)) => f,
        Err(_) => Failure::new(-1, "libwtmpdb: internal error (panic), please report"),
    };
    // SAFETY: the caller's contract on `error`.
    unsafe { set_error(error, &failure.message) };
    code(&failure)
}

/// A copy of `s` in memory from `malloc`, for the caller to `free`; NULL when out of
/// memory. An interior NUL ends the copy.
fn malloc_string(s: &str) -> *mut c_char {
    let bytes = s.as_bytes();
    let bytes = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
    // SAFETY: malloc may be called with any size; the result is checked for NULL.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `p` has room for len + 1 bytes and does not overlap `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
    }
    p.cast()
}

/// Stores a `malloc`ed copy of `msg` in `*error`, if `error` is not NULL.
///
/// # Safety
/// `error` is NULL or points to writable storage for a `char *`.
unsafe fn set_error(error: *mut *mut c_char, msg: &str) {
    if !error.is_null() {
        // SAFETY: not NULL, and writable by the caller's contract.
        unsafe { *error = malloc_string(msg) };
    }
}

/// The bytes of a C string, None for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the returned slice.
unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: not NULL and NUL-terminated by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

fn code_i64(f: &Failure) -> i64 {
    f.code
}

fn code_int(f: &Failure) -> c_int {
    c_int::try_from(f.code).unwrap_or(-1)
}

fn code_zero(_: &Failure) -> u64 {
    0
}

/// # Safety
/// For this and every exported function below: each pointer is NULL or valid as wtmpdb.h
/// documents (strings NUL-terminated, out pointers writable), for the duration of the call.
unsafe extern "C" fn wtmpdb_login(
    db_path: *const c_char,
    kind: c_int,
    user: *const c_char,
    usec_login: u64,
    tty: *const c_char,
    rhost: *const c_char,
    service: *const c_char,
    error: *mut *mut c_char,
) -> i64 {
    // SAFETY: the strings are NULL or NUL-terminated, `error` NULL or writable (the
    // function's contract); they are only read during the call.
    unsafe {
        guard(error, code_i64, || {
            let a = Login {
                kind,
                user: bytes(user),
                usec: usec_login,
                tty: bytes(tty),
                host: bytes(rhost),
                service: bytes(service),
            };
            crate::login(bytes(db_path), &a)
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_failed_login(
    db_path: *const c_char,
    user: *const c_char,
    usec: u64,
    tty: *const c_char,
    rhost: *const c_char,
    service: *const c_char,
    error: *mut *mut c_char,
) -> i64 {
    // SAFETY: as in wtmpdb_login.
    unsafe {
        guard(error, code_i64, || {
            let a = Login {
                kind: 0,
                user: bytes(user),
                usec,
                tty: bytes(tty),
                host: bytes(rhost),
                service: bytes(service),
            };
            crate::failed_login(bytes(db_path), &a)
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_logout(
    db_path: *const c_char,
    id: i64,
    usec_logout: u64,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: as in wtmpdb_login.
    unsafe {
        guard(error, code_int, || {
            crate::logout(bytes(db_path), id, usec_logout).map(|()| 0)
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_get_id(
    db_path: *const c_char,
    tty: *const c_char,
    error: *mut *mut c_char,
) -> i64 {
    // SAFETY: as in wtmpdb_login.
    unsafe {
        guard(error, code_i64, || {
            crate::get_id(bytes(db_path), bytes(tty))
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn logwtmpdb(
    db_path: *const c_char,
    tty: *const c_char,
    name: *const c_char,
    host: *const c_char,
    service: *const c_char,
    error: *mut *mut c_char,
) -> i64 {
    if !error.is_null() {
        // SAFETY: not NULL, and writable by the function's contract.
        unsafe { *error = std::ptr::null_mut() };
    }
    // SAFETY: as in wtmpdb_login.
    unsafe {
        guard(error, code_i64, || {
            crate::logwtmpdb(
                bytes(db_path),
                bytes(tty),
                bytes(name),
                bytes(host),
                bytes(service),
            )
        })
    }
}

/// Calls `cb` with one row, as sqlite3_exec would.
///
/// # Safety
/// `cb` is a function of the callback type; `data` is whatever the caller gave for it.
unsafe fn call_back(
    cb: unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int,
    data: *mut c_void,
    row: [Option<String>; 8],
    names: &mut [*mut c_char; 8],
) -> Next {
    // A NUL inside a value ends it, as it would for any C reader.
    let owned: Vec<Option<CString>> = row
        .into_iter()
        .map(|v| {
            v.map(|s| {
                let mut b = s.into_bytes();
                b.truncate(b.iter().position(|&c| c == 0).unwrap_or(b.len()));
                CString::new(b).unwrap_or_default()
            })
        })
        .collect();
    let mut argv: [*mut c_char; 8] = [std::ptr::null_mut(); 8];
    for (slot, v) in argv.iter_mut().zip(&owned) {
        if let Some(c) = v {
            // The callback gets `char **` but, as with sqlite3_exec, must not write.
            *slot = c.as_ptr().cast_mut();
        }
    }
    // SAFETY: `argv` and `names` hold 8 valid pointers (or NULL for SQL NULL) that live
    // until the call returns; `cb` and `data` are the caller's.
    let rc = unsafe { cb(data, 8, argv.as_mut_ptr(), names.as_mut_ptr()) };
    if rc == 0 { Next::More } else { Next::Stop }
}

/// The shared body of the two read functions.
///
/// # Safety
/// As for `wtmpdb_read_all_v2`.
unsafe fn read_all(
    db_path: *const c_char,
    cb: Callback,
    data: *mut c_void,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: the pointers are the caller's, valid by the function's contract.
    unsafe {
        guard(error, code_int, || {
            let Some(cb) = cb else {
                return Err(Failure::new(-1, "wtmpdb_read_all: the callback is NULL"));
            };
            let names: Vec<CString> = crate::COLUMNS
                .iter()
                .map(|n| CString::new(*n).unwrap_or_default())
                .collect();
            let mut name_ptrs: [*mut c_char; 8] = [std::ptr::null_mut(); 8];
            for (slot, n) in name_ptrs.iter_mut().zip(&names) {
                *slot = n.as_ptr().cast_mut();
            }
            // `cb` and `data` go to the callback as the caller passed them.
            crate::read_all(bytes(db_path), |e| {
                call_back(cb, data, crate::row_strings(e), &mut name_ptrs)
            })
            .map(|()| 0)
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_read_all(
    db_path: *const c_char,
    cb: Callback,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded unchanged; the callback's first argument is NULL, as upstream's.
    unsafe { read_all(db_path, cb, std::ptr::null_mut(), error) }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_read_all_v2(
    db_path: *const c_char,
    cb: Callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded unchanged.
    unsafe { read_all(db_path, cb, userdata, error) }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_rotate(
    db_path: *const c_char,
    days: c_int,
    error: *mut *mut c_char,
    wtmpdb_name: *mut *mut c_char,
    entries: *mut u64,
) -> c_int {
    // SAFETY: as in wtmpdb_login; the out pointers are NULL or writable.
    unsafe {
        guard(error, code_int, || {
            let done = crate::rotate(bytes(db_path), days)?;
            if !wtmpdb_name.is_null() {
                let name = done
                    .archive
                    .as_deref()
                    .map(|a| malloc_string(&String::from_utf8_lossy(a)))
                    .unwrap_or(std::ptr::null_mut());
                *wtmpdb_name = name;
            }
            if !entries.is_null() {
                *entries = done.entries;
            }
            Ok(0)
        })
    }
}

/// # Safety
/// As for `wtmpdb_login`.
unsafe extern "C" fn wtmpdb_get_boottime(db_path: *const c_char, error: *mut *mut c_char) -> u64 {
    // SAFETY: as in wtmpdb_login.
    unsafe { guard(error, code_zero, || crate::get_boottime(bytes(db_path))) }
}

extern "C" fn wtmpdb_timespec2usec(ts: libc::timespec) -> u64 {
    #[allow(clippy::unnecessary_cast)] // time_t and c_long are i64 here, not everywhere
    crate::timespec2usec(ts.tv_sec as i64, ts.tv_nsec as i64)
}

/// Defines the exported symbol `$name` as an alias of the function of the same name above.
macro_rules! export {
    ($($name:ident),* $(,)?) => {$(
        std::arch::global_asm!(
            concat!(".globl ", stringify!($name)),
            concat!(".type ", stringify!($name), ", STT_FUNC"),
            concat!(".set ", stringify!($name), ", {f}"),
            f = sym $name,
        );
    )*};
}

export!(
    logwtmpdb,
    wtmpdb_login,
    wtmpdb_logout,
    wtmpdb_read_all,
    wtmpdb_timespec2usec,
    wtmpdb_get_id,
    wtmpdb_rotate,
    wtmpdb_get_boottime,
    wtmpdb_read_all_v2,
    wtmpdb_failed_login,
);
