//! Every call into libpam lives here, behind [`Pam`], a borrowed handle with safe methods.
//!
//! Hand-written declarations against Linux-PAM's `security/pam_modules.h`,
//! `pam_ext.h` and `pam_modutil.h`: the few functions the module needs are stable C API since
//! Linux-PAM 1.0, and keeping them here avoids a binding crate and a build-time header scan.
//! The application-side functions in [`app`] are for the test harness, which drives the module
//! through a real libpam.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

// The unwinder (the guard catches panics, which unwind) linked into the module from
// libgcc_eh.a, as `gcc -shared -static-libgcc` does, instead of loading libgcc_s.so.1 into
// every login process: its constructor probes the CPU with CPUID, which traps to the
// hypervisor on a virtual machine (0.14 ms of the module's 0.42 ms load here). With the whole
// archive defining `_Unwind_*`, the linker's --as-needed leaves libgcc_s out (a test checks).
// Our copy unwinds our frames only: no panic or exception crosses the module's boundary.
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
unsafe extern "C" {}

/// libpam's opaque handle.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_SERVICE_ERR: c_int = 3;
pub const PAM_SYSTEM_ERR: c_int = 4;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_PERM_DENIED: c_int = 6;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_USER_UNKNOWN: c_int = 10;
pub const PAM_SESSION_ERR: c_int = 14;
pub const PAM_NO_MODULE_DATA: c_int = 18;
pub const PAM_CONV_ERR: c_int = 19;
pub const PAM_IGNORE: c_int = 25;

pub const PAM_SERVICE: c_int = 1;
pub const PAM_USER: c_int = 2;
pub const PAM_TTY: c_int = 3;
pub const PAM_RHOST: c_int = 4;
pub const PAM_CONV: c_int = 5;
/// Linux-PAM extension (not in X/Open): the X display name.
pub const PAM_XDISPLAY: c_int = 11;

pub const PAM_SILENT: c_int = 0x8000;

/// A conversation message that informs and asks nothing.
pub const PAM_TEXT_INFO: c_int = 4;

type Cleanup = unsafe extern "C" fn(*mut PamHandle, *mut c_void, c_int);

// The versioned soname rather than the `libpam.so` development symlink: building the module
// then needs only the runtime library, which every system with PAM has.
#[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_get_data(pamh: *const PamHandle, name: *const c_char, data: *mut *const c_void)
    -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandle,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<Cleanup>,
    ) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_modutil_getpwnam(pamh: *mut PamHandle, user: *const c_char) -> *mut libc::passwd;
    fn pam_prompt(
        pamh: *mut PamHandle,
        style: c_int,
        response: *mut *mut c_char,
        fmt: *const c_char,
        ...
    ) -> c_int;
}

/// Prefix of the key of the session a login recorded, kept in the PAM handle for its close:
/// specific, so no other module's data is mistaken for it (upstream uses the generic "ID").
/// The line's target follows it, so two lines of the module with different `database=` in
/// one stack each close their own row.
const SESSION_KEY: &str = "pam_wtmpdb_session";

/// Key of the legacy login's `ut_pid`; the mirror does not depend on the database.
const UTMP_PID_KEY: &CStr = c"pam_wtmpdb_utmp_pid";

fn session_key(target: &[u8]) -> CString {
    let mut key = format!("{SESSION_KEY} ").into_bytes();
    key.extend(target.iter().filter(|&&b| b != 0));
    CString::new(key).unwrap_or_else(|_| CString::from(c"pam_wtmpdb_session"))
}

/// Frees a boxed row ID or PID when libpam drops the data (pam_end, or a replacing pam_set_data).
///
/// # Safety
/// `data` is null or a pointer stored by `set_data_i64`, passed once by libpam.
unsafe extern "C" fn free_id(_pamh: *mut PamHandle, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        // SAFETY: `data` was produced by Box::into_raw(Box<i64>) in `set_data_i64`, and libpam calls
        // the cleanup exactly once per stored pointer.
        drop(unsafe { Box::from_raw(data.cast::<i64>()) });
    }
}

/// Frees a boxed byte string when libpam drops the data.
///
/// # Safety
/// `data` is null or a pointer stored by `set_data_bytes`, passed once by libpam.
unsafe extern "C" fn free_bytes(_pamh: *mut PamHandle, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        // SAFETY: `data` was produced by Box::into_raw(Box<Vec<u8>>) in `set_data_bytes`, and
        // libpam calls the cleanup exactly once per stored pointer.
        drop(unsafe { Box::from_raw(data.cast::<Vec<u8>>()) });
    }
}

/// Makes the calling thread's cancellation pending (for the `test_cancel` option of debug
/// builds: the module's guard must keep it from being acted on inside the module).
pub fn cancel_this_thread() {
    // SAFETY: pthread_self is always valid for the calling thread; a deferred cancellation
    // only becomes pending here.
    unsafe { libc::pthread_cancel(libc::pthread_self()) };
}

/// A PAM handle borrowed for the duration of one module call.
pub struct Pam {
    h: *mut PamHandle,
}

impl Pam {
    /// # Safety
    /// `h` must be the non-null handle libpam passed to the running `pam_sm_*` call; the
    /// returned value must not outlive that call.
    pub unsafe fn from_raw(h: *mut PamHandle) -> Pam {
        Pam { h }
    }

    /// A copy of a string item; None when it is not set.
    pub fn item(&self, item_type: c_int) -> Option<Vec<u8>> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: `self.h` is valid for this call (from_raw's contract); `p` is a valid out
        // pointer. The item types we ask for are all NUL-terminated strings owned by libpam.
        let rc = unsafe { pam_get_item(self.h, item_type, &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: non-null string item, valid until the item is changed, which cannot happen
        // while we copy it within this call.
        Some(
            unsafe { CStr::from_ptr(p.cast::<c_char>()) }
                .to_bytes()
                .to_vec(),
        )
    }

    /// A copy of a variable of the PAM environment (not the process environment).
    pub fn getenv(&self, name: &CStr) -> Option<Vec<u8>> {
        // SAFETY: valid handle and NUL-terminated name; the result is NULL or a string owned
        // by libpam, copied before returning.
        let p = unsafe { pam_getenv(self.h, name.as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-null NUL-terminated string from libpam, read immediately.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    }

    /// Logs through pam_syslog (facility authpriv, prefixed with module and service name).
    pub fn syslog(&self, priority: c_int, msg: &str) {
        let msg = CString::new(msg.replace('\0', "\\x00")).unwrap_or_default();
        // SAFETY: valid handle; the format is a literal "%s" consuming exactly one C string
        // argument, so no caller-controlled text is interpreted as a format.
        unsafe { pam_syslog(self.h, priority, c"%s".as_ptr(), msg.as_ptr()) };
    }

    /// Tells the user `msg` through the application's conversation, as information
    /// (PAM_TEXT_INFO): never written to a terminal by the module itself. Returns libpam's
    /// code (PAM_CONV_ERR when the application has no conversation).
    pub fn info(&self, msg: &str) -> c_int {
        let msg = CString::new(msg.replace('\0', "\\x00")).unwrap_or_default();
        let mut response: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid handle; the format is a literal "%s" consuming exactly one C string
        // argument; `response` is a valid out pointer (libpam sets none for PAM_TEXT_INFO,
        // but frees nothing of ours either way).
        let rc = unsafe {
            pam_prompt(
                self.h,
                PAM_TEXT_INFO,
                &mut response,
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
        if !response.is_null() {
            // SAFETY: a response libpam's conversation allocated with malloc, ours to free.
            unsafe { libc::free(response.cast()) };
        }
        rc
    }

    /// Whether `user` is in the passwd database. Uses libpam's helper, which keeps the result
    /// buffer in the handle (thread-safe, freed at pam_end).
    pub fn user_exists(&self, user: &[u8]) -> bool {
        let Ok(name) = CString::new(user) else {
            return false;
        };
        // SAFETY: valid handle and NUL-terminated name; only the null-ness of the result is used.
        let pw = unsafe { pam_modutil_getpwnam(self.h, name.as_ptr()) };
        !pw.is_null()
    }

    /// What the open_session of this handle kept of the session it recorded into `target`.
    pub fn session(&self, target: &[u8]) -> Option<Vec<u8>> {
        let key = session_key(target);
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: valid handle, NUL-terminated key, valid out pointer.
        let rc = unsafe { pam_get_data(self.h, key.as_ptr(), &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: under this key only `set_session` stores data, always a Box<Vec<u8>> that
        // lives until the cleanup runs, which cannot happen during this call.
        Some(unsafe { &*p.cast::<Vec<u8>>() }.clone())
    }

    /// Keeps what close_session needs of the session a login recorded into `target`.
    pub fn set_session(&self, target: &[u8], kept: Vec<u8>) -> Result<(), c_int> {
        let key = session_key(target);
        let data = Box::into_raw(Box::new(kept)).cast::<c_void>();
        // SAFETY: valid handle and key (libpam copies the key); ownership of `data` passes to
        // libpam, which releases it through `free_bytes`.
        let rc = unsafe { pam_set_data(self.h, key.as_ptr(), data, Some(free_bytes)) };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            // SAFETY: libpam did not take the pointer, so it is still ours to free.
            drop(unsafe { Box::from_raw(data.cast::<Vec<u8>>()) });
            Err(rc)
        }
    }

    /// The `ut_pid` of the legacy login written by the open_session of this handle. It
    /// travels with the handle, so a close in a forked child still names its parent's entry.
    pub fn utmp_pid(&self) -> Option<i32> {
        self.data_i64(UTMP_PID_KEY)
            .and_then(|p| i32::try_from(p).ok())
    }

    pub fn set_utmp_pid(&self, pid: i32) -> Result<(), c_int> {
        self.set_data_i64(UTMP_PID_KEY, i64::from(pid))
    }

    fn data_i64(&self, key: &CStr) -> Option<i64> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: valid handle, NUL-terminated key, valid out pointer.
        let rc = unsafe { pam_get_data(self.h, key.as_ptr(), &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: under our keys only `set_data_i64` stores data, always a Box<i64> that lives
        // until the cleanup runs, which cannot happen during this call.
        Some(unsafe { *p.cast::<i64>() })
    }

    /// Stores `value` under `key`; libpam frees it with `free_id`.
    fn set_data_i64(&self, key: &CStr, value: i64) -> Result<(), c_int> {
        let data = Box::into_raw(Box::new(value)).cast::<c_void>();
        // SAFETY: valid handle and key (libpam copies the key); ownership of `data` passes to
        // libpam, which releases it through `free_id`.
        let rc = unsafe { pam_set_data(self.h, key.as_ptr(), data, Some(free_id)) };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            // SAFETY: libpam did not take the pointer, so it is still ours to free.
            drop(unsafe { Box::from_raw(data.cast::<i64>()) });
            Err(rc)
        }
    }
}

/// Copies the module arguments.
///
/// # Safety
/// `argv` must point to `argc` NUL-terminated strings (or be null with `argc == 0`), as libpam
/// passes them.
pub unsafe fn args(argc: c_int, argv: *const *const c_char) -> Vec<Vec<u8>> {
    if argv.is_null() || argc <= 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `argc` valid entries.
    let slice = unsafe { std::slice::from_raw_parts(argv, argc as usize) };
    slice
        .iter()
        .filter(|p| !p.is_null())
        // SAFETY: each non-null entry is a NUL-terminated string (caller's contract).
        .map(|&p| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
        .collect()
}

/// The application side of libpam, used by the tests to run real PAM stacks.
#[doc(hidden)]
pub mod app {
    use super::*;

    #[repr(C)]
    pub struct PamMessage {
        pub msg_style: c_int,
        pub msg: *const c_char,
    }

    #[repr(C)]
    pub struct PamResponse {
        pub resp: *mut c_char,
        pub resp_retcode: c_int,
    }

    pub type ConvFn = unsafe extern "C" fn(
        c_int,
        *mut *const PamMessage,
        *mut *mut PamResponse,
        *mut c_void,
    ) -> c_int;

    #[repr(C)]
    pub struct PamConv {
        pub conv: Option<ConvFn>,
        pub appdata_ptr: *mut c_void,
    }

    /// A conversation that refuses every exchange: the module must never talk to the user,
    /// so a test application gives it this one.
    ///
    /// # Safety
    /// None needed: no argument is read.
    pub unsafe extern "C" fn no_conversation(
        _n: c_int,
        _msg: *mut *const PamMessage,
        _resp: *mut *mut PamResponse,
        _data: *mut c_void,
    ) -> c_int {
        PAM_CONV_ERR
    }

    #[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
    unsafe extern "C" {
        /// Linux-PAM >= 1.4: like pam_start, with service files read from `confdir`.
        pub fn pam_start_confdir(
            service: *const c_char,
            user: *const c_char,
            conv: *const PamConv,
            confdir: *const c_char,
            pamh: *mut *mut PamHandle,
        ) -> c_int;
        pub fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
        pub fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
        pub fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
        pub fn pam_open_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
        pub fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
        pub fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
        pub fn pam_close_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
        pub fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
    }
}
