//! A login the C library spooled (another program held the database's lock for a moment)
//! can be logged out, as a C program sees it: tests/c/calls.c built against the installed
//! header, on a database file of the test's own, while a second process holds
//! `BEGIN EXCLUSIVE` on it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{compile, have, install};

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// The installed library and the C program, in a directory of the test's own.
struct Setup {
    dir: tempfile::TempDir,
    libdir: PathBuf,
    calls: PathBuf,
}

fn setup() -> Option<Setup> {
    if !(have("make") && have("cc") && have("pkg-config")) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let libdir = install(&dest);
    let calls = dir.path().join("calls");
    let built = compile(&dest, &libdir, "calls.c", &calls, &[]);
    assert!(
        built.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    Some(Setup { dir, libdir, calls })
}

impl Setup {
    /// The C program's calls on the database `db`; returns its lines.
    fn run(&self, db: &Path, calls: &[String]) -> Vec<String> {
        let out = Command::new(&self.calls)
            .arg(db)
            .args(calls)
            .env("LD_LIBRARY_PATH", &self.libdir)
            .env_remove("LD_PRELOAD")
            .env_remove("LIBWTMPDB_TEST_SOCKET")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "calls {calls:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.lines().map(str::to_owned).collect()
    }
}

/// The return code of the `n`th line (from 0) of the call `name`.
fn rc(lines: &[String], name: &str, n: usize) -> i64 {
    lines
        .iter()
        .filter(|l| l.split(' ').next() == Some(name))
        .nth(n)
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_else(|| panic!("no {name} line #{n} in {lines:#?}"))
        .parse()
        .unwrap()
}

/// Child process mode of this test binary: holds `BEGIN EXCLUSIVE` on the database named in
/// the environment until its stdin closes: a real POSIX lock, as another program (an
/// admin's sqlite3) holds it. Not a test by itself: ignored, and its `child_process_` prefix
/// lets scripts/test.sh skip it when it runs the ignored tests.
#[test]
#[ignore = "child-process helper, run by the tests of this file"]
fn child_process_lock_holder() {
    common::support::lock_holder_child();
}

use common::support::{hold_lock, release_lock as release};

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every row of `db` as (user, tty, login, logout).
fn rows(db: &Path) -> Vec<(String, Option<String>, i64, Option<i64>)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT User, TTY, Login, Logout FROM wtmp ORDER BY ID")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const LOGIN: i64 = 1_700_000_000_000_000;
const MINUTE: i64 = 60_000_000;

/// Regression (issue 16, defect 2): `wtmpdb_login` while another program held the lock
/// spooled the login and returned -EAGAIN: the caller had no ID to log out with, and once
/// a later write merged the login the session stayed "still logged in" for good. It now
/// returns a positive ID (the spool token) that `wtmpdb_logout` takes, while the lock is
/// still held and after it is gone alike, and the rows end up closed at the times given.
#[test]
fn a_login_the_c_library_spooled_is_logged_out_by_the_id_it_returned() {
    let Some(s) = setup() else { return };
    let db = s.dir.path().join("wtmp.db");
    // The database exists, as on a running system.
    let first = s.run(
        &db,
        &args(&[
            &format!("login:3:carol:{LOGIN}:pts/1:NULL:NULL"),
            &format!("logout:@:{}", LOGIN + MINUTE),
        ]),
    );
    assert_eq!(rc(&first, "logout", 0), 0, "{first:#?}");
    let holder = hold_lock(&db);
    // Alice logs in and out while the lock is held; Bob logs in.
    let (alice_in, alice_out) = (LOGIN + 2 * MINUTE, LOGIN + 3 * MINUTE);
    let (bob_in, bob_out) = (LOGIN + 4 * MINUTE, LOGIN + 5 * MINUTE);
    let under_lock = s.run(
        &db,
        &args(&[
            &format!("login:3:alice:{alice_in}:/dev/pts/5:192.0.2.5:sshd"),
            &format!("logout:@:{alice_out}"),
            &format!("login:3:bob:{bob_in}:/dev/pts/6:192.0.2.6:sshd"),
        ]),
    );
    let (alice, alice_logout, bob) = (
        rc(&under_lock, "login", 0),
        rc(&under_lock, "logout", 0),
        rc(&under_lock, "login", 1),
    );
    release(holder);
    // Bob logs out after the lock is gone, then one more session writes (and merges).
    let after = s.run(
        &db,
        &args(&[
            &format!("logout:{bob}:{bob_out}"),
            &format!("login:3:dave:{}:pts/9:NULL:NULL", LOGIN + 6 * MINUTE),
            &format!("logout:@:{}", LOGIN + 7 * MINUTE),
        ]),
    );
    let r = rows(&db);
    let state = format!("under the lock: {under_lock:?}; after it: {after:?}; rows: {r:?}");
    assert!(
        alice > 0 && alice_logout == 0 && bob > 0,
        "under the lock: alice's login returned {alice}, her logout {alice_logout}, \
         bob's login {bob}; {state}"
    );
    assert_eq!(
        rc(&after, "logout", 0),
        0,
        "bob's logout by the ID his login returned; {state}"
    );
    let of = |user: &str| r.iter().find(|row| row.0 == user);
    assert_eq!(
        of("alice"),
        Some(&(
            "alice".into(),
            Some("pts/5".into()),
            alice_in,
            Some(alice_out)
        )),
        "{state}"
    );
    assert_eq!(
        of("bob"),
        Some(&("bob".into(), Some("pts/6".into()), bob_in, Some(bob_out))),
        "{state}"
    );
    assert!(r.iter().all(|row| row.3.is_some()), "{state}");
    assert_eq!(r.len(), 4, "every session once; {state}");
}

/// Regression (issue 16, defect 2), as Debian's sshd records a session: `logwtmpdb(tty,
/// name)` while another program held the lock spooled the login; after the lock was gone,
/// `logwtmpdb(tty, NULL)` found no open session on the tty (-ENOENT), and once a later write
/// merged the login it stayed open for good. The logout by tty now finds it.
#[test]
fn a_login_logwtmpdb_spooled_is_logged_out_by_its_tty() {
    let Some(s) = setup() else { return };
    let db = s.dir.path().join("wtmp.db");
    let first = s.run(
        &db,
        &args(&[
            "logwtmpdb:pts/1:carol:NULL:NULL",
            "logwtmpdb:pts/1:NULL:NULL:NULL",
        ]),
    );
    assert_eq!(rc(&first, "logwtmpdb", 1), 0, "{first:#?}");
    let holder = hold_lock(&db);
    let login = s.run(&db, &args(&["logwtmpdb:/dev/pts/7:erin:192.0.2.7:sshd"]));
    release(holder);
    let logout = s.run(&db, &args(&["logwtmpdb:/dev/pts/7:NULL:NULL:NULL"]));
    // One more session: its write merges whatever is still in the spool.
    let more = s.run(
        &db,
        &args(&[
            "logwtmpdb:pts/9:frank:NULL:NULL",
            "logwtmpdb:pts/9:NULL:NULL:NULL",
        ]),
    );
    let r = rows(&db);
    let state = format!(
        "login under the lock: {login:?}; logout after it: {logout:?}; \
         one more session: {more:?}; rows: {r:?}"
    );
    assert_eq!(rc(&logout, "logwtmpdb", 0), 0, "{state}");
    let erin: Vec<_> = r.iter().filter(|row| row.0 == "erin").collect();
    assert!(
        erin.len() == 1 && erin[0].1.as_deref() == Some("pts/7") && erin[0].3.is_some(),
        "erin's session is not closed: {state}"
    );
}
