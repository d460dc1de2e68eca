//! `pam_wtmpdb.so`: records each PAM session (login and logout time, user, tty, remote host,
//! service) in a wtmpdb database. See `pam_wtmpdb.8` for options, items and return codes.
//!
//! A login must never be hurt by the accounting: every exported function catches panics,
//! nothing is written to the user's terminal or the host's stderr, and a locked database
//! delays the call by about [`wtmpdb::session::LOCK_WAIT`] at most. The optional utmp/wtmp
//! mirror (`utmp=`) adds its own bounded time and never changes a return code. What is
//! stored, and in which order, is the core's session rule (`wtmpdb::session`); this crate
//! adds what is PAM's own: items, PAM data, return codes, pam_syslog.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

pub mod auth;
pub mod ffi;
pub mod items;
pub mod options;
pub mod session;

use ffi::{PAM_IGNORE, PAM_SYSTEM_ERR, Pam, PamHandle};

thread_local! {
    /// Set while this thread runs module code: only those panics are silenced.
    static IN_MODULE: Cell<bool> = const { Cell::new(false) };
    /// The last silenced panic's message, logged through pam_syslog by `guard`.
    static PANIC_MSG: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that keeps module panics off stderr.
///
/// A cdylib carries its own copy of std, so this hook is the one of our copy only: a Rust host
/// program's own hook is untouched whatever we do. Within our copy (and in the test binaries
/// that link this crate as an rlib) the previous hook still handles every panic that does not
/// happen inside a module call, so we replace no more than we need.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_MODULE.with(Cell::get) {
                let msg = match info.location() {
                    Some(l) => format!("panic at {}:{}: {info}", l.file(), l.line()),
                    None => format!("panic: {info}"),
                };
                PANIC_MSG.with(|m| *m.borrow_mut() = Some(msg));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one module call: panics become `on_panic` (PAM_SYSTEM_ERR, or for `authfail` the
/// failure the stack already is) plus a log line.
///
/// # Safety
/// `pamh` must be the handle libpam passed to the running call, `argv` its `argc` arguments.
unsafe fn guard(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
    f: fn(&Pam, c_int, &[Vec<u8>]) -> c_int,
    on_panic: c_int,
) -> c_int {
    if pamh.is_null() {
        return on_panic;
    }
    install_panic_hook();
    // SAFETY: the caller's contract; the Pam value is dropped before this call returns.
    let pam = unsafe { Pam::from_raw(pamh) };
    // SAFETY: argv/argc as passed by libpam (caller's contract).
    let args = unsafe { ffi::args(argc, argv) };
    let was_inside = IN_MODULE.with(|c| c.replace(true));
    // A thread cancelled inside the module would unwind through Rust frames, which the guard
    // cannot let pass: the process would abort (see wtmpdb::CancelDeferred).
    let cancel = wtmpdb::CancelDeferred::new();
    let result = catch_unwind(AssertUnwindSafe(|| f(&pam, flags, &args)));
    drop(cancel);
    IN_MODULE.with(|c| c.set(was_inside));
    match result {
        Ok(rc) => rc,
        Err(_) => {
            let msg = PANIC_MSG
                .with(|m| m.borrow_mut().take())
                .unwrap_or_else(|| "panic".to_string());
            // Logging may itself fail; nothing may escape into libpam.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                pam.syslog(
                    libc::LOG_CRIT,
                    &format!("internal error, please report: {msg}"),
                )
            }));
            on_panic
        }
    }
}

fn ignore(_: &Pam, _: c_int, _: &[Vec<u8>]) -> c_int {
    PAM_IGNORE
}

/// Defines the exported `pam_sm_*` entry points, each one a [`guard`]ed call of `$body`.
macro_rules! entry_points {
    ($($(#[$doc:meta])* $name:ident => $body:path, $on_panic:expr;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by libpam with a valid handle and `argc` argument strings.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            pamh: *mut PamHandle,
            flags: c_int,
            argc: c_int,
            argv: *const *const c_char,
        ) -> c_int {
            // SAFETY: forwarded from libpam unchanged.
            unsafe { guard(pamh, flags, argc, argv, $body, $on_panic) }
        }
    )*};
}

entry_points! {
    /// Writes the login row (and the legacy login, with `utmp=`).
    pam_sm_open_session => session::open_session, PAM_SYSTEM_ERR;
    /// Writes the logout time (and the legacy logout, with `utmp=`).
    pam_sm_close_session => session::close_session, PAM_SYSTEM_ERR;
    /// With `authfail`, records a failed attempt and returns PAM_AUTH_ERR (even after a
    /// panic: the stack stays the failure it is); without it, PAM_IGNORE.
    pam_sm_authenticate => auth::authenticate, auth::AUTHFAIL_RC;
    /// PAM_SUCCESS, as pam_faillock's.
    pam_sm_setcred => auth::setcred, PAM_SYSTEM_ERR;
    /// Not an account module.
    pam_sm_acct_mgmt => ignore, PAM_SYSTEM_ERR;
    /// Upstream lists this entry point but does not define it; a `password` line naming the
    /// module then fails to load. Here it is a no-op.
    pam_sm_chauthtok => ignore, PAM_SYSTEM_ERR;
}
