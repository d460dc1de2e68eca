//! The spool's durability, seen from the system calls a real process makes (strace): a
//! record must survive a power loss once `put` returns, which needs the spool directory's
//! own entry on disk too when `put` just created it.

mod support;

use std::path::Path;

use wtmpdb::session::SessionItems;
use wtmpdb::session::spool;

/// Child process mode of this test binary: one `spool::put` of a login into the spool of the
/// database named in the environment. Not a test by itself.
#[test]
#[ignore = "child-process helper, run by a_new_spool_directory_is_synced_into_its_parent"]
fn child_process_spool_put() {
    let db = std::env::var_os("WTMPDB_TEST_SPOOL_DB").expect("child-process helper, not a test");
    let items = SessionItems {
        user: "alice".into(),
        tty: "pts/1".into(),
        host: None,
        service: None,
    };
    let record = spool::login_record(&items, 1).unwrap();
    spool::put(Path::new(&db), &record).unwrap();
}

/// Regression: `put` created the spool directory and synced the record and the directory
/// itself, but never the directory holding the new spool directory: after a power loss the
/// first record ever spooled (and the directory) could be gone although the login had
/// returned. Now the parent is synced after the spool directory is made.
#[test]
fn a_new_spool_directory_is_synced_into_its_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let db = dir.join("w.db");
    let Some(trace) = support::strace_child_test(
        "mkdir,mkdirat,fsync,fdatasync",
        "child_process_spool_put",
        &[("WTMPDB_TEST_SPOOL_DB", db.as_os_str())],
    ) else {
        return;
    };
    let lines: Vec<&str> = trace.lines().collect();
    let made = lines
        .iter()
        .position(|l| l.contains("mkdir") && l.contains("w.db-spool"))
        .unwrap_or_else(|| panic!("no mkdir of the spool:\n{trace}"));
    let parent = format!("<{}>", dir.display());
    assert!(
        lines[made..]
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&parent)),
        "the parent of the new spool directory was never synced:\n{trace}"
    );
}
