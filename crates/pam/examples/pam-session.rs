//! Opens (and unless `--stay` is given, closes) one PAM session through the real libpam,
//! with a service file in a temporary directory that loads the given pam_wtmpdb.so, as the
//! invoking user: no root and no change to /etc/pam.d.
//!
//! `pam-session MODULE DATABASE TTY RHOST [--stay]`, used by scripts/demo.sh.

use std::ffi::{CStr, CString, c_char, c_int};

use pam_wtmpdb::ffi::app::{
    PamConv, no_conversation, pam_close_session, pam_end, pam_open_session, pam_set_item,
    pam_start_confdir, pam_strerror,
};
use pam_wtmpdb::ffi::{PAM_RHOST, PAM_SUCCESS, PAM_TTY, PamHandle};

fn current_user() -> Result<CString, String> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    // SAFETY: getpwuid returns NULL or a pointer to static storage, read before any other
    // passwd call in this single-threaded program.
    let pw = unsafe { libc::getpwuid(uid) };
    if pw.is_null() {
        return Err(format!("uid {uid} has no passwd entry"));
    }
    // SAFETY: pw_name of a passwd entry is a valid NUL-terminated string.
    Ok(unsafe { CStr::from_ptr((*pw).pw_name) }.to_owned())
}

fn check(h: *mut PamHandle, rc: c_int, what: &str) -> Result<(), String> {
    if rc == PAM_SUCCESS {
        return Ok(());
    }
    // SAFETY: h is a live handle; pam_strerror returns a static string.
    let msg = unsafe { CStr::from_ptr(pam_strerror(h, rc) as *const c_char) };
    Err(format!("{what}: {}", msg.to_string_lossy()))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: pam-session MODULE DATABASE TTY RHOST [--stay]".into());
    }
    let stay = args.get(5).is_some_and(|a| a == "--stay");
    let confdir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        confdir.path().join("wtmpdb-demo"),
        format!("session required {} database={}\n", args[1], args[2]),
    )
    .map_err(|e| e.to_string())?;
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (service, user) = (c("wtmpdb-demo")?, current_user()?);
    let dir = c(confdir
        .path()
        .to_str()
        .ok_or("temporary path is not UTF-8")?)?;
    let (tty, rhost) = (c(&args[3])?, c(&args[4])?);
    let conv = PamConv {
        conv: Some(no_conversation),
        appdata_ptr: std::ptr::null_mut(),
    };
    let mut h: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and out pointer; libpam copies the conversation.
    let rc =
        unsafe { pam_start_confdir(service.as_ptr(), user.as_ptr(), &conv, dir.as_ptr(), &mut h) };
    if rc != PAM_SUCCESS || h.is_null() {
        return Err(format!("pam_start_confdir failed ({rc})"));
    }
    let result = (|| {
        // SAFETY: h is live; libpam copies string items.
        let rc = unsafe { pam_set_item(h, PAM_TTY, tty.as_ptr().cast()) };
        check(h, rc, "PAM_TTY")?;
        // SAFETY: as above.
        let rc = unsafe { pam_set_item(h, PAM_RHOST, rhost.as_ptr().cast()) };
        check(h, rc, "PAM_RHOST")?;
        // SAFETY: h is live.
        check(h, unsafe { pam_open_session(h, 0) }, "pam_open_session")?;
        if !stay {
            // SAFETY: h is live and its session open.
            check(h, unsafe { pam_close_session(h, 0) }, "pam_close_session")?;
        }
        Ok(())
    })();
    // SAFETY: h is live and not used afterwards.
    unsafe { pam_end(h, PAM_SUCCESS) };
    result
}
