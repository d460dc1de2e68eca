//! Issue 21: the module loads SQLite only when a session goes to a file. A login through
//! wtmpdbd (or one that fails before any file is opened) never maps `libsqlite3` into the
//! login process; a session written to a file loads it then, and works as before.
//!
//! Each session runs in a fresh process (this test binary again, running one helper), whose
//! memory map tells whether SQLite was loaded. This file has no `load_sqlite_at_start!` and
//! makes no SQLite call of its own before a helper has answered, on purpose: its processes
//! start without SQLite.

use std::ffi::{CString, c_int};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use pam_wtmpdb::ffi::app::{
    PamConv, no_conversation, pam_close_session, pam_end, pam_open_session, pam_set_item,
    pam_start_confdir,
};
use pam_wtmpdb::ffi::{PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_TTY, PamHandle};

#[path = "../../../tests/support/mod.rs"]
mod support;

/// The module built for this test run (see the harness's `module`).
fn module() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libpam_wtmpdb.so"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("libpam_wtmpdb.so not found next to {}", exe.display()))
}

/// Whether SQLite is mapped into this process.
fn sqlite_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("libsqlite3")
}

/// Child process mode: one session through `session required MODULE $WTMPDB_TEST_LAZY_ARGS`,
/// printing each return code and whether SQLite was loaded at each step.
#[test]
#[ignore = "child-process helper, run by the tests of lazy_sqlite.rs"]
fn child_process_one_session() {
    let args = std::env::var("WTMPDB_TEST_LAZY_ARGS").expect("run by lazy_sqlite.rs only");
    let dir = tempfile::tempdir().unwrap();
    let line = format!("session required {} {args}\n", module().display());
    std::fs::write(dir.path().join("svc"), line).unwrap();
    println!("at_start={}", sqlite_loaded());
    let (service, user) = (CString::new("svc").unwrap(), CString::new("root").unwrap());
    let confdir = CString::new(dir.path().to_str().unwrap()).unwrap();
    let conv = PamConv {
        conv: Some(no_conversation),
        appdata_ptr: std::ptr::null_mut(),
    };
    let mut h: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and out pointer; libpam copies the conversation.
    let rc = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.as_ptr(),
            &conv,
            confdir.as_ptr(),
            &mut h,
        )
    };
    assert_eq!(rc, PAM_SUCCESS);
    let tty = CString::new("pts/21").unwrap();
    // SAFETY: valid handle; libpam copies string items.
    let rc = unsafe { pam_set_item(h, PAM_TTY, tty.as_ptr().cast()) };
    assert_eq!(rc, PAM_SUCCESS);
    // SAFETY: valid handle.
    let open = unsafe { pam_open_session(h, 0) };
    println!("open_rc={open}");
    println!("after_open={}", sqlite_loaded());
    // SAFETY: valid handle.
    let close = unsafe { pam_close_session(h, 0) };
    println!("close_rc={close}");
    println!("after_close={}", sqlite_loaded());
    // SAFETY: the handle from pam_start_confdir, ended once.
    unsafe { pam_end(h, close) };
    // What the module logged for a failed open, as the core words it (one line).
    if let Some(db) = std::env::var_os("WTMPDB_TEST_LAZY_OPEN") {
        match wtmpdb::storage::Database::open_read_only(Path::new(&db)) {
            Ok(_) => println!("open_error=none"),
            Err(e) => println!("open_error: {e}"),
        }
    }
    std::io::stdout().flush().unwrap();
}

/// What the helper saw: the two return codes and whether SQLite was loaded at start, after
/// the open and after the close.
#[derive(Debug)]
struct Seen {
    open: c_int,
    close: c_int,
    loaded: [bool; 3],
}

fn session_in_a_fresh_process(args: &str) -> Seen {
    let (seen, _) = run_helper(Command::new(std::env::current_exe().unwrap()), args);
    seen
}

/// Runs the helper through `cmd` (the test binary, or a wrapper that runs it), with the
/// module's arguments `args`; also returns its whole output.
fn run_helper(mut cmd: Command, args: &str) -> (Seen, String) {
    let stdout = support::stdout_of_success(
        cmd.args(support::child_test_args("child_process_one_session"))
            .env("WTMPDB_TEST_LAZY_ARGS", args)
            .stdin(Stdio::null()),
    );
    let value = |key: &str| -> String {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_owned()
    };
    let flag = |key: &str| value(key) == "true";
    let seen = Seen {
        open: value("open_rc").parse().unwrap(),
        close: value("close_rc").parse().unwrap(),
        loaded: [flag("at_start"), flag("after_open"), flag("after_close")],
    };
    (seen, stdout)
}

/// The database holds the helper's session, closed (read here, in the test's own process).
fn assert_one_closed_session(db: &Path) {
    let mut rows = Vec::new();
    wtmpdb::storage::Database::open_read_only(db)
        .unwrap()
        .each_row_by_id(|e| rows.push(e))
        .unwrap();
    assert!(
        rows.len() == 1 && rows[0].tty.as_deref() == Some("pts/21") && rows[0].logout.is_some(),
        "{rows:?}"
    );
}

/// A session written to a file loads SQLite when it opens the file (and writes its row); a
/// session whose `database=varlink` finds no daemon fails without loading it.
#[test]
fn sqlite_is_loaded_by_a_file_session_only() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let file = session_in_a_fresh_process(&format!("database={}", db.display()));
    assert_eq!(
        (file.open, file.close),
        (PAM_SUCCESS, PAM_SUCCESS),
        "{file:?}"
    );
    assert_eq!(file.loaded, [false, true, true], "{file:?}");
    assert_one_closed_session(&db);

    let none = tmp.path().join("no-daemon");
    let varlink =
        session_in_a_fresh_process(&format!("database=varlink socket={}", none.display()));
    assert_ne!(varlink.open, PAM_SUCCESS, "{varlink:?}");
    assert_eq!(varlink.loaded, [false, false, false], "{varlink:?}");
}

/// A session through wtmpdbd (`database=varlink`) is written by the daemon, and the login
/// process never loads SQLite.
#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn a_session_through_the_daemon_never_loads_sqlite() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let daemon = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[]);
    let seen = session_in_a_fresh_process(&format!(
        "database=varlink socket={}",
        daemon.socket.display()
    ));
    assert_eq!(
        (seen.open, seen.close),
        (PAM_SUCCESS, PAM_SUCCESS),
        "{seen:?}"
    );
    assert_eq!(seen.loaded, [false, false, false], "{seen:?}");
    assert_one_closed_session(&daemon.db);
}

/// Without a loadable SQLite (hidden in a mount namespace), a session to a file fails as a
/// failed open does, PAM_SYSTEM_ERR, and the process lives; the error says why.
#[test]
#[ignore = "needs root: hides libsqlite3 in a mount namespace"]
fn without_sqlite_a_file_session_fails_cleanly() {
    support::require_root();
    let Some(unshare) = support::tool("unshare") else {
        return;
    };
    // The file this process loads SQLite from (SQLite is loaded here, not in the helper).
    wtmpdb::sqlite::load().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("libsqlite3"))
        .unwrap()
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let mut cmd = Command::new(unshare);
    cmd.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind /dev/null "$0" && exec "$@""#,
        &lib,
    ])
    .arg(std::env::current_exe().unwrap())
    .env("WTMPDB_TEST_LAZY_OPEN", &db);
    let (seen, out) = run_helper(cmd, &format!("database={}", db.display()));
    assert_eq!(
        (seen.open, seen.close),
        (PAM_SYSTEM_ERR, PAM_SYSTEM_ERR),
        "{seen:?}\n{out}"
    );
    assert_eq!(seen.loaded, [false, false, false], "{seen:?}\n{out}");
    let line = out
        .lines()
        .find_map(|l| l.split_once("open_error: "))
        .map(|(_, e)| e);
    assert!(
        line.is_some_and(|e| e.contains("cannot load SQLite (libsqlite3.so.0)")),
        "{out}"
    );
}
