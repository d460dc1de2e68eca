//! Records in the spool as `wtmpdb last`, `who` and `lastlog` see them without the daemon:
//! the real binary on real SQLite files, the database locked by another process.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use wtmpdb::session::{CloseTarget, FileWriter, RowClosed, SessionItems, spool};

#[path = "../../../tests/support/mod.rs"]
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");

/// Child process mode of this test binary (see `support::hold_lock`). Not a test by itself.
#[test]
#[ignore = "child-process helper, run by the tests that hold a database's lock"]
fn child_process_lock_holder() {
    support::lock_holder_child()
}

fn run(bin: &Path, wrap: &[&str], args: &[&str]) -> Output {
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn items(user: &str, tty: &str) -> SessionItems {
    SessionItems {
        user: user.into(),
        tty: tty.into(),
        host: Some("192.0.2.1".into()),
        service: Some("sshd".into()),
    }
}

const SEC: i64 = 1_000_000;

/// Writes, through the session writer, alice's login (into the table), then under another
/// process's lock bob's login and alice's logout (into the spool).
fn spool_two_records(db: &Path) {
    let w = FileWriter::new(db);
    // Now, and by this process: `who` shows the sessions of the running boot whose
    // process lives.
    let (now, pid) = (wtmpdb::time::now(), std::process::id() as i32);
    let alice = w
        .open(&items("alice", "pts/1"), pid, now - 3 * SEC)
        .unwrap();
    assert!(alice.spooled.is_none());
    let holder = support::hold_lock(db);
    let bob = w.open(&items("bob", "pts/2"), pid, now - 2 * SEC).unwrap();
    assert!(bob.spooled.is_some(), "bob's login is spooled");
    let closed = w.close(
        CloseTarget::Id(alice.session.id, None),
        &items("alice", "pts/1"),
        pid,
        now - SEC,
    );
    assert!(
        matches!(closed.row, Ok(RowClosed::Spooled(_))),
        "alice's logout is spooled: {:?}",
        closed.row
    );
    assert_eq!(spool::waiting(db).unwrap(), 2);
    // While the lock is held: the reader cannot merge, and says what waits; its report
    // lacks both records.
    let o = run(Path::new(BIN), &[], &["last", "-f", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!out.contains("bob"), "{out}");
    assert!(
        out.contains("still logged in"),
        "alice looks logged in: {out}"
    );
    let spool_dir = spool::spool_dir(db);
    assert_eq!(
        err,
        format!(
            "wtmpdb: 2 records wait in the spool ({}) and are not shown\n",
            spool_dir.display()
        )
    );
    support::release_lock(holder);
}

/// Issue 17: a login or logout spooled under a lock stayed out of `last` and `who` until the
/// next login (a session showed "still logged in" after its logout). A reader that owns the
/// spool (the user who writes the database: here this test's) merges it before it reads:
/// once the lock is gone, `last` shows both at once, and says nothing on stderr.
#[test]
fn a_reader_that_owns_the_spool_merges_it_before_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wtmp.db");
    spool_two_records(&db);
    let o = run(Path::new(BIN), &[], &["last", "-f", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(err, "", "nothing waits any more");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("bob ") && lines[0].contains("still logged in"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("alice ") && !lines[1].contains("still logged in"),
        "alice logged out: {out}"
    );
    assert_eq!(spool::waiting(&db).unwrap(), 0);
    // The merge changed the table only: the next read prints the same, byte for byte.
    let again = run(Path::new(BIN), &[], &["last", "-f", db.to_str().unwrap()]);
    assert_eq!(again.stdout, o.stdout);
    assert!(again.stderr.is_empty());

    // `who` and `lastlog` merge too.
    let db = dir.path().join("who.db");
    spool_two_records(&db);
    let o = run(
        Path::new(BIN),
        &[],
        &["who", "--no-logind", "-f", db.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("bob") && !out.contains("alice"), "{out}");
    let db = dir.path().join("lastlog.db");
    spool_two_records(&db);
    let o = run(
        Path::new(BIN),
        &[],
        &["lastlog", "-u", "bob", "-f", db.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("bob"), "{}", text(&o.stdout));
}

/// A reader that may not merge (not the spool's owner) and may not list the spool (root's
/// 0700 directory, read by `nobody`) learns nothing of it: its report is the table's, and
/// it says nothing. Root's next read merges.
#[test]
#[ignore = "needs root: the spool is root's, and nobody reads the database"]
fn a_reader_that_may_not_list_the_spool_says_nothing_and_roots_read_merges() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    let db = dir.path().join("wtmp.db");
    spool_two_records(&db);
    support::chmod(&db, 0o644);
    // The binary must be reachable by nobody: a copy beside the database.
    let bin = dir.path().join("wtmpdb");
    std::fs::copy(BIN, &bin).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let o = run(&bin, &nobody, &["last", "-f", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("bob"), "{}", text(&o.stdout));
    assert_eq!(spool::waiting(&db).unwrap(), 2, "nobody merged nothing");
    // A reader who may list the spool but not merge it (not its owner) says what waits.
    support::chmod(&spool::spool_dir(&db), 0o755);
    let o = run(&bin, &nobody, &["last", "-f", db.to_str().unwrap()]);
    assert!(
        text(&o.stderr).starts_with("wtmpdb: 2 records wait in the spool ("),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("bob"), "{}", text(&o.stdout));
    support::chmod(&spool::spool_dir(&db), 0o700);
    // Root owns the spool: its read merges.
    let o = run(&bin, &[], &["last", "-f", db.to_str().unwrap()]);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("bob"), "{}", text(&o.stdout));
    let o = run(&bin, &nobody, &["last", "-f", db.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("bob"), "{}", text(&o.stdout));
}
