//! The `auth` side: `authfail` records a failed authentication, the way admins place
//! pam_faillock's `authfail`: after the real authentication module, reached only when it
//! failed (`auth [default=die] pam_wtmpdb.so authfail`; see pam.d/README.md).
//!
//! The module never changes the outcome. It returns PAM_AUTH_ERR, whatever happened to the
//! record (written, refused, timed out, even a panic): under `[default=die]` that ends the
//! stack with the failure it already had (a `required` module's own code when one failed
//! before; otherwise PAM_AUTH_ERR, what `pam_deny.so` after it would have given).
//! PAM_IGNORE, which pam_faillock returns, would turn into PAM_PERM_DENIED under `die` with
//! Linux-PAM >= 1.4 and into an unset status with older ones. The record waits for another
//! writer at most [`wtmpdb::writer::FAILURE_WAIT`] and is then dropped and logged: a brute
//! force never delays anyone past the module's bound.

use std::ffi::c_int;

use libc::{LOG_DEBUG, LOG_ERR};
use wtmpdb::escape::for_terminal;
use wtmpdb::session::{SessionItems, this_process};
use wtmpdb::storage::{FailedFiles, NewFailure};

use crate::ffi::{
    PAM_AUTH_ERR, PAM_IGNORE, PAM_RHOST, PAM_SERVICE, PAM_SUCCESS, PAM_TTY, PAM_USER, Pam,
};
use crate::options::Options;

/// What pam_sm_authenticate returns with `authfail`: see the module documentation.
pub const AUTHFAIL_RC: c_int = PAM_AUTH_ERR;

pub fn authenticate(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> c_int {
    let (opts, skip) = crate::session::prepare(pam, flags, args);
    if !opts.authfail {
        return PAM_IGNORE;
    }
    if !skip {
        record(pam, &opts);
    }
    AUTHFAIL_RC
}

/// pam_faillock's answer: credentials are not this module's, and under the chain libpam
/// froze at pam_authenticate this line is skipped whenever authentication succeeded.
pub fn setcred(_: &Pam, _: c_int, _: &[Vec<u8>]) -> c_int {
    PAM_SUCCESS
}

fn record(pam: &Pam, opts: &Options) {
    // The name as typed: no passwd lookup (a typo, a password, a probe of user names).
    let user = pam.item(PAM_USER).unwrap_or_default();
    let tty = pam.item(PAM_TTY);
    let host = pam.item(PAM_RHOST);
    let service = pam.item(PAM_SERVICE);
    let it = SessionItems::from_bytes(&user, tty.as_deref(), host.as_deref(), service.as_deref());
    let f = NewFailure {
        time: wtmpdb::time::now(),
        user: &it.user,
        tty: Some(it.tty.as_str()).filter(|t| !t.is_empty()),
        host: it.host.as_deref().filter(|h| !h.is_empty()),
        service: it.service.as_deref(),
        pid: Some(i64::from(this_process())),
    };
    match crate::session::writer(opts).record_failure(&f, &FailedFiles::default()) {
        Ok(id) if opts.debug => pam.syslog(LOG_DEBUG, &format!("failed attempt recorded, id={id}")),
        Ok(_) => {}
        Err(e) => pam.syslog(
            LOG_ERR,
            &format!(
                "Failed attempt not recorded: {}",
                for_terminal(&e.to_string())
            ),
        ),
    }
}
