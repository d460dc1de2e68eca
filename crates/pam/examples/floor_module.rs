//! The floor of a login recorded through a daemon, for `bench/login.sh` (not a module to
//! install): a PAM session module that does only what every module handing its record to a
//! daemon must do, with nothing of ours in it. At open and at close it connects to the Unix
//! socket named by its `socket=PATH` argument, sends one message the size of our module's
//! Login, and waits for the reply up to its NUL. With `floor_server` (wtmpdbd's examples:
//! one synced 4 KiB overwrite per message) it measures what this machine charges for the
//! load of a Rust module, two connections, two synced writes and four thread wake-ups;
//! whatever our module through wtmpdbd costs above it is ours.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

const PAM_SUCCESS: c_int = 0;
const PAM_SESSION_ERR: c_int = 14;

/// A message of the size of our module's Login call (about 160 bytes).
const MESSAGE: &[u8] = b"{\"method\":\"org.openSUSE.wtmpdb.Login\",\"parameters\":{\"Type\":7,\
\"User\":\"root\",\"LoginTime\":1765000000000000,\"TTY\":\"pts/1\",\"RemoteHost\":\"192.0.2.7\",\
\"Service\":\"b-floor\"}}\0";

/// The `socket=` argument among the module's.
fn socket_of(argc: c_int, argv: *const *const c_char) -> Option<PathBuf> {
    if argv.is_null() {
        return None;
    }
    (0..usize::try_from(argc).ok()?).find_map(|i| {
        // SAFETY: PAM passes argc valid pointers in argv, each to a NUL-terminated string
        // that lives for the call.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        let path = arg.to_bytes().strip_prefix(b"socket=")?;
        Some(PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path),
        ))
    })
}

/// One call: connect, send, read up to the reply's NUL.
fn call(socket: &PathBuf) -> std::io::Result<()> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(MESSAGE)?;
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n].contains(&0) {
            return Ok(());
        }
    }
}

fn session(argc: c_int, argv: *const *const c_char) -> c_int {
    let ok = std::panic::catch_unwind(|| socket_of(argc, argv).is_some_and(|s| call(&s).is_ok()));
    if matches!(ok, Ok(true)) {
        PAM_SUCCESS
    } else {
        PAM_SESSION_ERR
    }
}

/// # Safety
/// Called by libpam with the module's arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_open_session(
    _pamh: *mut c_void,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    session(argc, argv)
}

/// # Safety
/// Called by libpam with the module's arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_close_session(
    _pamh: *mut c_void,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    session(argc, argv)
}
