//! The database's files: modes that do not depend on the umask, side files that follow the
//! database's mode and owner, a reader after a writer was SIGKILLed mid-transaction, links
//! and files planted by another user, and the pruning of old archives. The binary and the
//! session writer run as separate processes (the umask is per process); "another user" is
//! really `nobody`, through setpriv.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use wtmpdb::session::{FileWriter as Writer, SessionItems};
use wtmpdb::storage::{Database, Kind, NewEntry};

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const SEC: i64 = 1_000_000;
const DAY: i64 = 86_400 * SEC;
const NOBODY: u32 = 65534;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The binary in the test process's own time zone (archive names are local dates).
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `program args` under umask 077.
fn under_umask_077(program: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", "umask 077; exec \"$0\" \"$@\""])
        .arg(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    stdout(o)
}

/// One clear line on stderr, nothing on stdout, exit 1.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn count(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM wtmp", [], |r| r.get(0))
        .unwrap()
}

/// A temporary directory others can enter (`nobody` reads what is in it).
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o755);
    d
}

/// A copy of the binary that `nobody` can run, in `dir`.
fn nobody_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("wtmpdb-bin");
    if !bin.exists() {
        std::fs::copy(BIN, &bin).unwrap();
        chmod(&bin, 0o755);
    }
    bin
}

/// `program args` as nobody.
fn as_nobody(program: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn session(user: &str, login: i64, logout: Option<i64>) -> NewEntry<'_> {
    NewEntry {
        kind: Kind::UserProcess,
        user,
        login,
        logout,
        tty: Some("pts/4"),
        host: Some("192.0.2.4"),
        service: Some("sshd"),
    }
}

fn boot_row(login: i64) -> NewEntry<'static> {
    NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login,
        tty: Some("~"),
        host: Some("6.1.0"),
        ..NewEntry::default()
    }
}

/// One login and logout as the PAM module writes them (session writer, persisted journal).
fn pam_login(db: &Path, user: &str) {
    let items = SessionItems::from_bytes(user.as_bytes(), Some(b"pts/7"), None, Some(b"login"));
    let w = Writer::new(db);
    let logged = w.open(&items, 1, wtmpdb::time::now()).unwrap();
    let closed = w.close(
        wtmpdb::session::CloseTarget::Id(logged.session.id, None),
        &items,
        1,
        wtmpdb::time::now(),
    );
    closed.row.unwrap();
}

/// A login whose commits stay in the log beside the database: a reader holds a read
/// transaction from before it, so the writer's checkpoint cannot copy them into the file,
/// and the reader closes without a checkpoint of its own (as our writers close). A writer
/// killed between its commit and its checkpoint leaves the same.
fn login_left_in_the_log(db: &Path, user: &str) {
    pam_login(db, "earlier");
    let reader = support::pinning_reader(db);
    pam_login(db, user);
    drop(reader);
}

/// This test binary as a child process running the helper `name` with `env` set.
fn helper(name: &str, env: (&str, &Path)) -> Command {
    let mut c = support::child_test(name);
    c.env(env.0, env.1);
    c
}

// Modes do not depend on the umask.

/// Child process mode of this test binary: one session through the session writer (as the
/// PAM module writes it) into the database named in the environment. Run under umask 077 by
/// the tests below; not a test by itself.
#[test]
#[ignore = "child-process helper, run by the umask tests"]
fn child_process_session_writer() {
    let path = std::env::var_os("WTMPDB_TEST_WRITER").expect("child-process helper, not a test");
    pam_login(Path::new(&path), "carol");
}

/// One session written by the session writer into `path` in a process under umask 077.
fn session_writer_under_umask_077(path: &Path) {
    let o = Command::new("sh")
        .args(["-c", "umask 077; exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args(support::child_test_args("child_process_session_writer"))
        .env("WTMPDB_TEST_WRITER", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn directories_and_databases_created_under_umask_077_are_0755_and_0644() {
    let dir = tempfile::tempdir().unwrap();
    let booted = dir.path().join("sub/w.db");
    let logged = dir.path().join("pam/deeper/w.db");
    ok(&under_umask_077(
        Path::new(BIN),
        &["boot", "-q", "-f", s(&booted)],
    ));
    session_writer_under_umask_077(&logged);
    assert_eq!(mode(&dir.path().join("sub")), 0o755);
    assert_eq!(mode(&booted), 0o644);
    assert_eq!(mode(&dir.path().join("pam")), 0o755);
    assert_eq!(mode(&dir.path().join("pam/deeper")), 0o755);
    assert_eq!(mode(&logged), 0o644);
    // The side files the session writer keeps were made by SQLite with the database's mode.
    assert_eq!(mode(&dir.path().join("pam/deeper/w.db-wal")), 0o644);
    assert_eq!(mode(&dir.path().join("pam/deeper/w.db-shm")), 0o644);
    assert_eq!(count(&booted), 1);
    assert_eq!(count(&logged), 1);
}

#[test]
fn an_existing_database_keeps_the_mode_its_admin_chose() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    ok(&run(&["boot", "-q", "-f", s(&path)]));
    chmod(&path, 0o640);
    ok(&under_umask_077(
        Path::new(BIN),
        &["shutdown", "-f", s(&path)],
    ));
    pam_login(&path, "dave");
    assert_eq!(mode(&path), 0o640);
    assert_eq!(mode(&dir.path().join("w.db-wal")), 0o640);
    assert_eq!(mode(&dir.path().join("w.db-shm")), 0o640);
}

#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn nobody_reads_databases_created_under_umask_077() {
    support::require_root();
    let dir = open_dir();
    let booted = dir.path().join("sub/w.db");
    let logged = dir.path().join("pam/deeper/w.db");
    ok(&under_umask_077(
        Path::new(BIN),
        &["boot", "-q", "-f", s(&booted)],
    ));
    session_writer_under_umask_077(&logged);
    let bin = nobody_bin(dir.path());
    let out = ok(&as_nobody(&bin, &["last", "-f", s(&booted)]));
    assert!(out.contains("system boot"), "{out}");
    let out = ok(&as_nobody(&bin, &["last", "-f", s(&logged)]));
    assert!(out.contains("carol"), "{out}");
}

// Side files follow the database.

#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn chmod_644_of_the_database_lets_nobody_read_again_after_one_write() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    let (log, index) = (dir.path().join("w.db-wal"), dir.path().join("w.db-shm"));
    pam_login(&path, "erin");
    // As a database made under umask 077 had it: all 0600; then the admin opens it up.
    chmod(&path, 0o600);
    chmod(&log, 0o600);
    chmod(&index, 0o600);
    chmod(&path, 0o644);
    let bin = nobody_bin(dir.path());
    let o = as_nobody(&bin, &["last", "-f", s(&path)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the kept 0600 side files did not stop nobody"
    );
    pam_login(&path, "frank");
    assert_eq!(mode(&log), 0o644);
    assert_eq!(mode(&index), 0o644);
    let out = ok(&as_nobody(&bin, &["last", "-f", s(&path)]));
    assert!(out.contains("erin") && out.contains("frank"), "{out}");
}

#[test]
#[ignore = "needs root: changes owners and reads the log as nobody"]
fn chmod_600_of_the_database_closes_its_kept_log_after_one_write() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    let journal = dir.path().join("w.db-wal");
    pam_login(&path, "grace");
    assert_eq!(mode(&journal), 0o644);
    // Readable now, and it holds page images of recent rows.
    let cat = Path::new("/bin/cat");
    assert!(as_nobody(cat, &[s(&journal)]).status.success());
    // Owned by someone else, too: SQLite, as root, gives it the database's owner back.
    std::os::unix::fs::chown(&journal, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&path, 0o600);
    pam_login(&path, "heidi");
    assert_eq!(mode(&journal), 0o600);
    let m = std::fs::metadata(&journal).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let o = as_nobody(cat, &[s(&journal)]);
    assert!(
        !o.status.success(),
        "nobody read the log of a 0600 database"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_side_file_that_is_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    ok(&run(&["boot", "-q", "-f", s(&path)]));
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("w.db-journal")).unwrap();
    assert_clean_failure(&run(&["shutdown", "-f", s(&path)]), "is not a regular file");
    assert!(!elsewhere.exists());
    assert_eq!(count(&path), 1);
}

// A writer killed mid-transaction.

/// Child process mode of this test binary: writes many rows in one transaction into the
/// database named in the environment, with a page cache so small that SQLite writes pages
/// into the database file (after the journal) before the commit, prints "written" and waits
/// to be killed. Not a test by itself.
#[test]
#[ignore = "child-process helper, run by the killed-writer tests"]
fn child_process_killed_writer() {
    let path = std::env::var_os("WTMPDB_TEST_KILLED_WRITER").expect("child-process helper");
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA cache_size = 8; BEGIN IMMEDIATE;")
        .unwrap();
    let host = "h".repeat(200);
    for i in 0..5000 {
        c.execute(
            "INSERT INTO wtmp (Type, User, Login, TTY, RemoteHost, Service) \
             VALUES (3, 'uncommitted', ?1, 'pts/9', ?2, 'sshd')",
            rusqlite::params![i * SEC, host],
        )
        .unwrap();
    }
    println!("written");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// A database with three committed sessions, and a writer SIGKILLed in the middle of its
/// transaction: in WAL mode (as our writers keep it) its uncommitted frames are in the log;
/// with a rollback journal (`rollback`: as upstream's writers leave a file) its pages are in
/// the database file and its journal is hot.
fn killed_writer(path: &Path, rollback: bool) {
    let db = Database::open_read_write(path).unwrap();
    let now = wtmpdb::time::now();
    for user in ["ivan", "judy", "kim"] {
        db.login(&session(user, now - DAY, Some(now))).unwrap();
    }
    drop(db);
    if rollback {
        let c = rusqlite::Connection::open(path).unwrap();
        let m: String = c
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .unwrap();
        assert_eq!(m, "delete");
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let log = side(path, "-wal");
    let (size_before, log_before) = (size(path), size(&log));
    let mut child: Child = helper(
        "child_process_killed_writer",
        ("WTMPDB_TEST_KILLED_WRITER", path),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.trim_end().ends_with("written") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("the writer died before writing");
        }
    }
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    if !rollback {
        // The scene as a crash leaves it: uncommitted frames at the end of the log.
        assert!(
            size(&log) > log_before + 100_000,
            "nothing spilled into the log"
        );
        return;
    }
    // Uncommitted pages in the database file, and a journal whose header says so.
    assert!(size(path) > size_before);
    let mut head = [0u8; 8];
    std::fs::File::open(side(path, "-journal"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_ne!(head, [0; 8], "the journal is not hot");
}

fn shows_the_committed_rows(out: &str) {
    for user in ["ivan", "judy", "kim"] {
        assert!(out.contains(user), "{out}");
    }
    assert!(!out.contains("uncommitted"), "{out}");
}

#[test]
fn last_after_a_killed_writer_shows_the_committed_rows() {
    for rollback in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        killed_writer(&path, rollback);
        shows_the_committed_rows(&ok(&run(&["last", "-f", s(&path)])));
        assert_eq!(count(&path), 3);
        let c = rusqlite::Connection::open(&path).unwrap();
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(c);
        // And every later read.
        assert!(ok(&run(&["last", "-f", s(&path)])).contains("kim"));
    }
}

/// In WAL mode a killed writer leaves nothing to recover: a reader without write access
/// reads the committed rows at once.
#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn after_a_killed_writer_nobody_reads_the_committed_rows_at_once() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    killed_writer(&path, false);
    let bin = nobody_bin(dir.path());
    shows_the_committed_rows(&ok(&as_nobody(&bin, &["last", "-f", s(&path)])));
}

/// A file still in a rollback journal (upstream's writers leave it so until one of ours
/// writes): its hot journal needs a writer.
#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn after_a_killed_upstream_style_writer_nobody_is_told_that_root_must_recover_it() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    killed_writer(&path, true);
    let bin = nobody_bin(dir.path());
    assert_clean_failure(
        &as_nobody(&bin, &["last", "-f", s(&path)]),
        "a write to it was interrupted and left its journal to roll back; root must recover it",
    );
    // Root's `last` recovers it; then nobody reads again.
    shows_the_committed_rows(&ok(&run(&["last", "-f", s(&path)])));
    shows_the_committed_rows(&ok(&as_nobody(&bin, &["last", "-f", s(&path)])));
}

// Links and files of other users.

/// A directory anyone may create files in, as /tmp is (sticky, 1777).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o1777);
    d
}

fn nobody_symlink(target: &Path, link: &Path) {
    let o = as_nobody(Path::new("/bin/ln"), &["-s", s(target), s(link)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::symlink_metadata(link).unwrap().uid(), NOBODY);
}

#[test]
#[ignore = "needs root: nobody plants the link"]
fn writers_refuse_a_database_link_planted_by_another_user() {
    support::require_root();
    let shared = shared_dir();
    let victim_dir = tempfile::tempdir().unwrap();
    // A database of root's elsewhere, and one that does not exist yet.
    let victim = victim_dir.path().join("victim.db");
    ok(&run(&["boot", "-q", "-f", s(&victim)]));
    let missing = victim_dir.path().join("missing.db");
    for (name, target) in [("w.db", &victim), ("new.db", &missing)] {
        let link = shared.path().join(name);
        nobody_symlink(target, &link);
        assert_clean_failure(
            &run(&["shutdown", "-f", s(&link)]),
            "is a symbolic link owned by uid 65534, neither root nor the caller",
        );
        // The session writer (the PAM module's `database=`) refuses it the same way.
        let items = SessionItems::from_bytes(b"mallory", Some(b"pts/1"), None, None);
        let err = Writer::new(&link)
            .open(&items, 1, wtmpdb::time::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link owned by uid 65534"), "{err}");
    }
    assert!(!missing.exists());
    let out = ok(&run(&["last", "-f", s(&victim)]));
    assert!(out.contains("still running"), "{out}");
    assert_eq!(count(&victim), 1);
}

#[test]
fn a_database_link_of_the_caller_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    ok(&run(&["boot", "-q", "-f", s(&link)]));
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(count(&real), 1);
    assert_eq!(mode(&real), 0o644);
}

/// A database in `dir` with three rows 90 days old and a newer one; returns the database
/// and the name of the archive `rotate -d 10` writes.
fn old_rows(dir: &Path) -> (PathBuf, PathBuf) {
    let path = dir.join("w.db");
    let db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    for user in ["old1", "old2", "old3"] {
        db.login(&session(user, now - 90 * DAY, Some(now - 89 * DAY)))
            .unwrap();
    }
    db.login(&session("new", now, Some(now))).unwrap();
    drop(db);
    let archive = wtmpdb::ops::archive_path(&path, now - 10 * DAY);
    (path, archive)
}

#[test]
#[ignore = "needs root: nobody plants the archive"]
fn rotate_refuses_an_archive_name_planted_by_another_user() {
    support::require_root();
    let shared = shared_dir();
    let (path, archive) = old_rows(shared.path());
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim.db");
    nobody_symlink(&victim, &archive);
    assert_clean_failure(
        &run(&["rotate", "-d", "10", "-f", s(&path)]),
        "it is a symbolic link; nothing was moved",
    );
    assert!(!victim.exists());
    assert_eq!(count(&path), 4);
    // A regular file of nobody's under the archive's name.
    std::fs::remove_file(&archive).unwrap();
    let o = as_nobody(Path::new("/bin/touch"), &[s(&archive)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean_failure(
        &run(&["rotate", "-d", "10", "-f", s(&path)]),
        "it is owned by uid 65534, neither the database's owner (uid 0) nor the caller",
    );
    assert_eq!(std::fs::metadata(&archive).unwrap().len(), 0);
    assert_eq!(count(&path), 4);
}

#[test]
fn rotate_never_writes_through_a_link_even_the_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, archive) = old_rows(dir.path());
    let elsewhere = dir.path().join("elsewhere.db");
    std::os::unix::fs::symlink(&elsewhere, &archive).unwrap();
    assert_clean_failure(
        &run(&["rotate", "-d", "10", "-f", s(&path)]),
        "it is a symbolic link; nothing was moved",
    );
    assert!(!elsewhere.exists());
    assert_eq!(count(&path), 4);
}

#[test]
fn a_new_archive_gets_the_database_mode_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let (path, archive) = old_rows(dir.path());
    chmod(&path, 0o640);
    let out = ok(&under_umask_077(
        Path::new(BIN),
        &["rotate", "-d", "10", "-f", s(&path)],
    ));
    assert!(out.starts_with("3 entries moved to "), "{out}");
    assert_eq!(mode(&archive), 0o640);
    assert_eq!(count(&archive), 3);
}

#[test]
#[ignore = "needs root: gives the database to nobody"]
fn a_new_archive_gets_the_database_owner_when_root_rotates() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (path, archive) = old_rows(dir.path());
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&path, 0o600);
    ok(&under_umask_077(
        Path::new(BIN),
        &["rotate", "-d", "10", "-f", s(&path)],
    ));
    let m = std::fs::metadata(&archive).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (NOBODY, NOBODY, 0o600)
    );
}

// Pruning old archives (--keep).

#[test]
fn rotate_keep_deletes_only_this_databases_older_archives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (path, archive) = old_rows(d);
    let touch = |name: &str| {
        std::fs::write(d.join(name), b"x").unwrap();
        d.join(name)
    };
    let older: Vec<PathBuf> = ["w_20200101.db", "w_20200101.db-journal", "w_20210615.db"]
        .iter()
        .map(|n| touch(n))
        .collect();
    let kept = touch("w_20220101.db");
    // Near misses: other names, other databases, a link, a directory, a hard link.
    let decoys: Vec<PathBuf> = [
        "w_2023010.db",
        "w_20230101.db.bak",
        "w_20230101.dbx",
        "wx_20190101.db",
        "other_20190101.db",
        "w_20191301.db",
        "w_20190100.db",
        "w-20190101.db",
    ]
    .iter()
    .map(|n| touch(n))
    .collect();
    let link = d.join("w_20180101.db");
    std::os::unix::fs::symlink(&decoys[0], &link).unwrap();
    let subdir = d.join("w_20170101.db");
    std::fs::create_dir(&subdir).unwrap();
    let hard = d.join("w_20160101.db");
    std::fs::hard_link(&decoys[1], &hard).unwrap();

    let out = ok(&run(&["rotate", "-d", "10", "--keep", "2", "-f", s(&path)]));
    let mut lines = out.lines();
    assert!(
        lines.next().unwrap().starts_with("3 entries moved to "),
        "{out}"
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        vec![
            format!("Deleted old archive {}", older[0].display()),
            format!("Deleted old archive {}", older[2].display()),
        ]
    );
    for f in &older {
        assert!(!f.exists(), "{} kept", f.display());
    }
    assert_eq!(count(&archive), 3);
    assert!(kept.exists());
    for f in decoys.iter().chain([&link, &subdir, &hard]) {
        assert!(
            std::fs::symlink_metadata(f).is_ok(),
            "{} deleted",
            f.display()
        );
    }
    assert!(path.exists());
}

#[test]
fn rotate_keep_1_keeps_the_archive_just_written() {
    let dir = tempfile::tempdir().unwrap();
    let (path, archive) = old_rows(dir.path());
    // Dated later than the new archive (an earlier run with fewer DAYS).
    let later = dir.path().join("w_20991231.db");
    std::fs::write(&later, b"x").unwrap();
    let out = ok(&run(&["rotate", "-d", "10", "--keep", "1", "-f", s(&path)]));
    assert!(
        out.ends_with(&format!("\nDeleted old archive {}\n", later.display())),
        "{out}"
    );
    assert_eq!(count(&archive), 3);
}

#[test]
fn rotate_keep_0_deletes_old_rows_and_every_archive_and_keeps_what_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    db.login(&boot_row(now - 90 * DAY)).unwrap();
    let open = db.login(&session("alice", now - 80 * DAY, None)).unwrap();
    db.login(&session("bob", now - 70 * DAY, Some(now - 69 * DAY)))
        .unwrap();
    db.login(&session("carol", now - 60 * DAY, Some(now - 59 * DAY)))
        .unwrap();
    db.login(&session("dave", now - 50 * DAY, Some(now - 50 * DAY)))
        .unwrap();
    drop(db);
    let earlier = dir.path().join("w_20200101.db");
    std::fs::write(&earlier, b"x").unwrap();

    let out = ok(&run(&["rotate", "-d", "0", "--keep", "0", "-f", s(&path)]));
    assert_eq!(
        out,
        format!(
            "2 entries deleted\nDeleted old archive {}\n",
            earlier.display()
        )
    );
    // The running boot, its open session and the row with the largest ID stay; no archive.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("w.db"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(count(&path), 3);
    // Nothing left to delete, and no archive to prune.
    assert_eq!(
        ok(&run(&["rotate", "-d", "0", "--keep", "0", "-f", s(&path)])),
        "No old entries found\n"
    );
    ok(&run(&["boottime", "-f", s(&path)]));
    Database::open_read_write(&path)
        .unwrap()
        .logout(open, now)
        .unwrap();
    let listing = ok(&run(&["last", "-f", s(&path)]));
    assert!(
        listing.contains("alice") && listing.contains("dave") && !listing.contains("bob"),
        "{listing}"
    );
}

#[test]
#[ignore = "needs root: gives a file to nobody"]
fn rotate_keep_never_deletes_another_users_file() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = old_rows(dir.path());
    let theirs = dir.path().join("w_20200101.db");
    std::fs::write(&theirs, b"x").unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = ok(&run(&["rotate", "-d", "10", "--keep", "0", "-f", s(&path)]));
    assert_eq!(out, "3 entries deleted\n");
    assert!(theirs.exists());
}

// Upstream's tools and other SQLite programs.

/// Runs Debian's sqlite3 shell on `path` (as the caller): like upstream's tools, it does not
/// keep the side files of a WAL database and deletes both when it closes the last connection.
fn foreign_write(path: &Path, sql: &str) -> bool {
    let Some(sqlite3) = support::tool("sqlite3") else {
        return false;
    };
    let o = Command::new(sqlite3).arg(path).arg(sql).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    true
}

/// Lists the names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// After another program removed the side files, a reader (root too) reads the database
/// file alone and creates nothing beside it.
#[test]
fn a_wal_database_whose_side_files_are_gone_is_read_without_creating_any() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    pam_login(&path, "oscar");
    if !foreign_write(
        &path,
        "INSERT INTO wtmp (Type,User,Login,TTY,RemoteHost,Service) \
         VALUES (3,'upstream',1741200000000000,'pts/8','192.0.2.8','sshd')",
    ) {
        return;
    }
    assert_eq!(
        names(dir.path()),
        ["w.db"],
        "the foreign tool kept side files"
    );
    let out = ok(&run(&["last", "-f", s(&path)]));
    assert!(out.contains("oscar") && out.contains("upstream"), "{out}");
    assert_eq!(names(dir.path()), ["w.db"], "the reader created files");
    // The next write of ours brings the side files back.
    pam_login(&path, "peggy");
    assert_eq!(names(dir.path()), ["w.db", "w.db-shm", "w.db-wal"]);
}

/// The same as `nobody`, who cannot create files in the directory: upstream's tools wrote
/// last, and `wtmpdb last` still works, with every row.
#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn nobody_reads_right_after_an_upstream_style_tool_wrote() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    pam_login(&path, "oscar");
    let bin = nobody_bin(dir.path());
    assert!(ok(&as_nobody(&bin, &["last", "-f", s(&path)])).contains("oscar"));
    if !foreign_write(
        &path,
        "INSERT INTO wtmp (Type,User,Login,TTY,RemoteHost,Service) \
         VALUES (3,'upstream',1741200000000000,'pts/8','192.0.2.8','sshd')",
    ) {
        return;
    }
    assert!(!dir.path().join("w.db-wal").exists());
    let out = ok(&as_nobody(&bin, &["last", "-f", s(&path)]));
    assert!(out.contains("oscar") && out.contains("upstream"), "{out}");
    pam_login(&path, "peggy");
    let out = ok(&as_nobody(&bin, &["last", "-f", s(&path)]));
    assert!(out.contains("peggy"), "{out}");
}

/// logrotate's `create` (Debian's stanza for wtmp.db): the file is renamed away and an empty
/// one made in its place, while the log beside it still holds the renamed database's newest
/// commits (a reader kept them from being copied into the file, or a writer was killed
/// before it could). Our next write must not let SQLite delete that log with the frames in
/// it.
#[test]
fn a_log_left_by_a_renamed_database_is_kept_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    login_left_in_the_log(&path, "quentin");
    let log = dir.path().join("w.db-wal");
    let frames = std::fs::read(&log).unwrap();
    assert!(frames.len() > 32, "nothing in the log");
    std::fs::rename(&path, dir.path().join("w.db.1")).unwrap();
    std::fs::File::create(&path).unwrap();
    pam_login(&path, "rupert");
    let kept: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("w.db-wal.orphaned-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", names(dir.path()));
    assert_eq!(std::fs::read(dir.path().join(&kept[0])).unwrap(), frames);
    // Copied next to the renamed database as its log, it gives back the newest commits.
    std::fs::copy(dir.path().join(&kept[0]), dir.path().join("w.db.1-wal")).unwrap();
    let out = ok(&run(&["last", "-f", s(&dir.path().join("w.db.1"))]));
    assert!(out.contains("quentin"), "{out}");
    let out = ok(&run(&["last", "-f", s(&path)]));
    assert!(out.contains("rupert") && !out.contains("quentin"), "{out}");
}

/// A reader facing a lock no SQLite connection takes (here `nobody`'s `fcntl` read lock on
/// the write-lock byte of `-shm`, with no connection attached) fails at once with one line
/// naming the process, instead of stalling in SQLite for ten seconds.
#[test]
#[ignore = "needs root: the lock holder runs as nobody"]
fn a_foreign_lock_on_the_side_files_fails_a_reader_at_once() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    pam_login(&path, "sybil");
    let Some(mut holder) = support::nobody_holds_a_shm_lock(&dir.path().join("w.db-shm"), 120)
    else {
        return;
    };
    let t = std::time::Instant::now();
    let o = run(&["last", "-f", s(&path)]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert_clean_failure(
        &o,
        &format!("process {} holds a lock on byte 120", holder.id()),
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(ok(&run(&["last", "-f", s(&path)])).contains("sybil"));
}

/// The same on btrfs, in a subvolume: there `stat` gives the `-shm` file another device
/// number than the one `/proc/locks` lists its locks under. Matched by `stat`'s, the lock
/// went unseen: the reader stalled in SQLite for ten seconds and failed with "locking
/// protocol", and `wtmpdb boot` took 14.5 s.
#[test]
#[ignore = "needs root: mounts a btrfs image, and the lock holder runs as nobody"]
fn a_foreign_lock_on_btrfs_fails_a_reader_at_once() {
    support::require_root();
    let dir = open_dir();
    let Some(fs) = support::Btrfs::mount(dir.path()) else {
        return;
    };
    let db_dir = fs.subvolume();
    let path = db_dir.join("w.db");
    pam_login(&path, "sybil");
    let Some(mut holder) = support::nobody_holds_a_shm_lock(&db_dir.join("w.db-shm"), 120) else {
        return;
    };
    for args in [&["last", "-f", s(&path)][..], &["boot", "-f", s(&path)]] {
        let t = std::time::Instant::now();
        let o = run(args);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{args:?}: {:?}",
            t.elapsed()
        );
        assert_clean_failure(
            &o,
            &format!("process {} holds a lock on byte 120", holder.id()),
        );
    }
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(ok(&run(&["last", "-f", s(&path)])).contains("sybil"));
}

/// Regression: the check for foreign locks on `-shm` opened and closed that file, and closing
/// any descriptor of a file drops every `fcntl` lock the process holds on it. `last`'s second
/// reading connection (opened while the first was attached) thus dropped the first one's
/// locks; the next login, seeing no connection attached, rebuilt the index and truncated the
/// `-shm` file under `last`, which died of SIGBUS on its mapping.
#[test]
fn last_survives_logins_while_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    db.insert_all(
        (0..60_000).map(|i| session("reader", now - DAY + i * 1000, Some(now))),
        |_| {},
    )
    .unwrap();
    drop(db);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pam_login(&path, "writer");
            }
        });
        let failures: Vec<String> = (0..4)
            .map(|_| run(&["last", "-f", s(&path)]))
            .filter(|o| !o.status.success())
            .map(|o| format!("{:?} {}", o.status, stderr(&o)))
            .collect();
        // Set before any assertion, so that the writer stops and the scope ends.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        failures
    });
    assert!(failures.is_empty(), "last failed: {failures:?}");
}

/// The same rename + create, but a reader comes first (root's `last` right after logrotate
/// ran, or a `who` from a monitoring job): SQLite, opening the empty file read-only, deleted
/// the log beside it (a log next to an empty database counts as stale), with the renamed
/// database's newest commits in it. The reader now reads the empty file without looking for
/// a log, so the next write keeps it as before.
#[test]
fn a_reader_first_after_a_rename_does_not_delete_the_renamed_databases_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    login_left_in_the_log(&path, "quentin");
    let log = dir.path().join("w.db-wal");
    let frames = std::fs::read(&log).unwrap();
    assert!(frames.len() > 32, "nothing in the log");
    std::fs::rename(&path, dir.path().join("w.db.1")).unwrap();
    std::fs::File::create(&path).unwrap();
    let out = ok(&run(&["last", "-f", s(&path)]));
    assert!(!out.contains("quentin"), "{out}");
    assert_eq!(
        std::fs::read(&log).ok().as_deref(),
        Some(&frames[..]),
        "the reader deleted or changed the log"
    );
    pam_login(&path, "rupert");
    let kept: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("w.db-wal.orphaned-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", names(dir.path()));
    std::fs::copy(dir.path().join(&kept[0]), dir.path().join("w.db.1-wal")).unwrap();
    let out = ok(&run(&["last", "-f", s(&dir.path().join("w.db.1"))]));
    assert!(out.contains("quentin"), "{out}");
}

/// A foreign tool's close deletes the `-shm` index first and the `-wal` log a moment later
/// (both after copying the log into the database), and a new writer creates the log before
/// the index: in between, the log is there without its index. A user's `last` then failed
/// ("unable to open database file": SQLite must create the index, which the user cannot),
/// about one run in twenty-five while our writer and sqlite3 took turns. Both states: an
/// empty log (a writer's open), made still; a full log already copied into the database,
/// removed 100 ms later as the foreign close does (a log with frames but no index may also
/// be a copied database's, with rows the file lacks, so it is not read around).
#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn nobody_reads_while_the_log_is_there_without_its_index() {
    use std::os::unix::fs::PermissionsExt;
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    pam_login(&path, "oscar");
    let log = dir.path().join("w.db-wal");
    let frames = std::fs::read(&log).unwrap();
    if !foreign_write(
        &path,
        "INSERT INTO wtmp (Type,User,Login,TTY,RemoteHost,Service) \
         VALUES (3,'upstream',1741200000000000,'pts/8','192.0.2.8','sshd')",
    ) {
        return;
    }
    assert!(!log.exists() && !dir.path().join("w.db-shm").exists());
    let bin = nobody_bin(dir.path());
    for contents in [&[][..], &frames[..]] {
        std::fs::write(&log, contents).unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        let closing = (!contents.is_empty()).then(|| {
            let log = log.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::fs::remove_file(log).unwrap();
            })
        });
        let out = ok(&as_nobody(&bin, &["last", "-f", s(&path)]));
        assert!(out.contains("oscar") && out.contains("upstream"), "{out}");
        if let Some(t) = closing {
            t.join().unwrap();
        }
    }
}

/// Every session connection is the first to open the `-shm` index, so it empties it (to 3
/// bytes) and rebuilds it, holding the index's DMS byte shared from the start: meanwhile a
/// user, who may not write the index, finds one that looks in use and cannot be read, and
/// SQLite fails the open ("attempt to write a readonly database"), about one run in
/// fifteen of a user's `last` while logins went on. Made still here: another process holds
/// the DMS byte and the index is emptied, for 300 ms; the user's `last` tries again until
/// it passes, instead of failing.
#[test]
#[ignore = "needs root: runs wtmpdb last as nobody"]
fn nobody_reads_while_a_writer_rebuilds_the_index() {
    support::require_root();
    let dir = open_dir();
    let path = dir.path().join("w.db");
    pam_login(&path, "oscar");
    let bin = nobody_bin(dir.path());
    // Gone after 300 ms without rebuilding the index, as a writer killed then.
    let Some(mut holder) = support::writer_in_its_first_moments(&path, false) else {
        return;
    };
    let stdin = holder.stdin.take();
    let leaving = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(stdin);
    });
    let out = as_nobody(&bin, &["last", "-f", s(&path)]);
    leaving.join().unwrap();
    assert!(holder.wait().unwrap().success());
    let out = ok(&out);
    assert!(out.contains("oscar"), "{out}");
}

/// SQLite's name of a side file of the database `path` (`-wal`, `-journal`).
fn side(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// `last` on a WAL database looks for a foreign lock on its index only if SQLite has to
/// wait for one (the first sleep of its loop looks), never before every open: each read of
/// `/proc/locks` waits for an RCU grace period of the kernel, during which no process can
/// take or release an `fcntl` lock (0.2 ms on an idle machine, tens of milliseconds under
/// load), a cost every reader paid and made every writer pay.
#[test]
fn last_on_a_wal_database_does_not_read_proc_locks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    pam_login(&path, "tobias");
    assert!(dir.path().join("w.db-shm").exists());
    let Some(strace) = support::tool("strace") else {
        return;
    };
    let o = Command::new(strace)
        .args(["-f", "-qq", "-e", "trace=openat,open", BIN, "last", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("tobias"));
    let trace = String::from_utf8_lossy(&o.stderr);
    assert!(trace.contains("w.db-shm"), "{trace}");
    assert!(!trace.contains("/proc/locks"), "{trace}");
}
