//! The `wtmpdb` command as a user runs it: real SQLite files in temporary directories,
//! the real binary, TZ pinned per case.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wtmpdb::storage::{Database, Kind, NewEntry};

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const SEC: i64 = 1_000_000;

fn sample_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream-0.75/sample.db")
}

fn run_tz(tz: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TZ", tz)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    run_tz("UTC", args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// One clear line on stderr, nothing on stdout, exit 1.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

fn session(
    user: &str,
    tty: &str,
    host: &str,
    login: i64,
    logout: Option<i64>,
) -> NewEntry<'static> {
    NewEntry {
        kind: Kind::UserProcess,
        user: Box::leak(user.to_string().into_boxed_str()),
        login,
        logout,
        tty: Some(Box::leak(tty.to_string().into_boxed_str())),
        host: Some(Box::leak(host.to_string().into_boxed_str())),
        service: Some("sshd"),
    }
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wtmp.db");
    (dir, path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dates_after_2038_and_2106_print_correctly() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    let y2038 = 2_147_483_648 * SEC; // 2038-01-19 03:14:08 UTC
    let y2106 = 4_294_967_296 * SEC; // 2106-02-07 06:28:16 UTC
    db.login(&session(
        "carol",
        "pts/1",
        "h",
        y2038,
        Some(y2038 + 3600 * SEC),
    ))
    .unwrap();
    db.login(&session(
        "dave",
        "pts/2",
        "h",
        y2106,
        Some(y2106 + 26 * 3600 * SEC),
    ))
    .unwrap();
    let o = run(&["last", "-F", "-f", s(&path)]);
    let out = stdout(&o);
    assert!(
        out.contains("dave     pts/2        h                Sun Feb  7 06:28:16 2106 - Mon Feb  8 08:28:16 2106 (1+02:00)"),
        "{out}"
    );
    assert!(
        out.contains("carol    pts/1        h                Tue Jan 19 03:14:08 2038 - Tue Jan 19 04:14:08 2038  (01:00)"),
        "{out}"
    );
    assert!(out.ends_with("begins Tue Jan 19 03:14:08 2038\n"), "{out}");
    let o = run(&["last", "--time-format", "iso", "-f", s(&path), "dave"]);
    assert!(stdout(&o).contains("2106-02-07T06:28:16+0000"));
    let o = run(&["last", "-s", "2106-02-07", "-f", s(&path)]);
    assert!(stdout(&o).contains("dave") && !stdout(&o).contains("carol"));
}

#[test]
fn any_time_zone_is_honoured() {
    let sample = sample_db();
    let o = run_tz("America/New_York", &["last", "-n", "1", "-f", s(&sample)]);
    assert_eq!(
        stdout(&o),
        format!(
            "root     tty2                          Wed Mar  5 05:00 - 07:34  (02:34)\n\n{} begins Wed Mar  5 05:00:00 2025\n",
            s(&sample)
        )
    );
    let o = run_tz(
        "Asia/Kathmandu",
        &["last", "--time-format", "iso", "-n", "1", "-f", s(&sample)],
    );
    assert!(
        stdout(&o).contains("2025-03-05T15:45:00+0545"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn invoked_as_last_behaves_as_wtmpdb_last() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("last");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let o = Command::new(&link)
        .args(["-2", "-f", s(&sample_db())])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
}

/// A database in its first moments, as its first writer leaves it between setting WAL mode
/// (the file's header written) and committing its table, reads as an empty file does: no
/// rows, no error. A reader used to fail there with "not a wtmpdb database".
#[test]
fn a_database_without_its_table_yet_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::File::create(&empty).unwrap();
    let new = dir.path().join("new.db");
    support::database_without_its_table(&new);
    for args in [&["last"][..], &["who"], &["lastlog"], &["last", "-j"]] {
        let read = |p: &Path| {
            let mut a = args.to_vec();
            a.extend(["-f", s(p)]);
            let o = run(&a);
            assert!(
                o.status.success(),
                "{args:?} {}: {}",
                p.display(),
                stderr(&o)
            );
            stdout(&o).replace(s(p), "FILE")
        };
        assert_eq!(read(&new), read(&empty), "{args:?}");
    }
}

#[test]
fn bad_input_gets_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
    assert_clean_failure(&run(&["last", "-f", s(&garbage)]), "garbage.db");
    assert_clean_failure(&run(&["boottime", "-f", s(&garbage)]), "garbage.db");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, I am not a database\n").unwrap();
    assert_clean_failure(&run(&["last", "-f", s(&text)]), "notes.txt");

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    assert_clean_failure(&run(&["last", "-f", s(&foreign)]), "no wtmp table");

    let sample = sample_db();
    let sample = s(&sample);
    assert_clean_failure(
        &run(&["last", "-f", sample, "-t", "25:99"]),
        "Invalid time value '25:99'",
    );
    assert_clean_failure(
        &run(&["last", "-f", sample, "-p", "soon"]),
        "Invalid time value 'soon'",
    );
    assert_clean_failure(&run(&["last", "-f", sample, "-d", "-i"]), "-d and -i");
    assert_clean_failure(
        &run(&["last", "-f", sample, "-n", "ten"]),
        "Invalid limit 'ten'",
    );
    let r = dir.path().join("r.db");
    assert_clean_failure(&run(&["rotate", "-f", s(&r), "--days", "many"]), "many");
    // Regression: a huge DAYS overflowed the threshold and moved every row out.
    assert_clean_failure(
        &run(&["rotate", "-f", s(&r), "-d", "4000000000"]),
        "4000000000",
    );
    assert_clean_failure(&run(&["last", "--bogus"]), "--bogus");

    // A database path that cannot be created.
    assert_clean_failure(
        &run(&["boot", "-q", "-f", "/proc/wtmpdb-nope/x.db"]),
        "Cannot create/open database (/proc/wtmpdb-nope/x.db)",
    );
    // Nothing half-written: the failed commands left no files behind.
    assert!(!dir.path().join("r.db").exists());
}

#[test]
fn hostile_strings_never_reach_the_terminal_raw() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    db.login(&session(
        "ev\x1b[2Jil",
        "pts/\x07",
        "h\"o\\st\nx",
        10 * SEC,
        Some(20 * SEC),
    ))
    .unwrap();
    db.login(&session("u\u{9b}31m", "pts/1", "ok", 30 * SEC, None))
        .unwrap();
    let o = run(&["last", "-w", "-f", s(&path)]);
    let out = stdout(&o);
    assert!(
        !out.bytes().any(|b| b < 0x20 && b != b'\n'),
        "raw control character in {out:?}"
    );
    assert!(!out.contains('\u{9b}'));
    assert!(
        out.contains("ev\\x1b[2Jil") && out.contains("h\"o\\st\\x0ax"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 4);
    // JSON escapes the same values and stays valid.
    let o = run(&["last", "-j", "-f", s(&path)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"][1]["user"], "ev\x1b[2Jil");
    assert_eq!(v["entries"][1]["hostname"], "h\"o\\st\nx");
}

#[test]
fn present_shows_a_boot_that_was_running_then() {
    // Deliberate difference: upstream never shows a boot without Logout for -p.
    let o = run(&["last", "-p", "2025-03-04 12:00", "-f", s(&sample_db())]);
    let out = stdout(&o);
    assert!(
        out.contains("reboot   system boot  6.1.0-18-amd64   Mon Mar  3 18:05 - crash"),
        "{out}"
    );
    assert!(
        out.contains("alice    pts/0        host.very.long.d Tue Mar  4 09:00 - crash"),
        "{out}"
    );
    assert!(!out.contains("Wed Mar  5"), "{out}");
}

#[test]
fn a_logout_before_the_login_never_underflows() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    db.login(&session("skew", "pts/0", "h", 1000 * SEC, Some(400 * SEC)))
        .unwrap();
    let out = stdout(&run(&["last", "-f", s(&path)]));
    assert!(out.contains(" (00:00)"), "{out}");
}

#[test]
fn boot_boottime_and_shutdown() {
    let (_d, path) = temp_db();
    let p = s(&path);
    assert_eq!(run(&["boot", "-q", "-f", p]).status.code(), Some(0));
    // Once per boot: a second run does not add a row.
    assert_eq!(run(&["boot", "-q", "-f", p]).status.code(), Some(0));
    let db = Database::open_read_only(&path).unwrap();
    let boots: Vec<_> = db
        .entries(&Default::default())
        .map(Result::unwrap)
        .collect();
    assert_eq!(boots.len(), 1);
    assert_eq!(boots[0].kind, Kind::BootTime);
    assert_eq!(boots[0].tty.as_deref(), Some("~"));
    let o = run(&["boottime", "-f", p]);
    assert!(stdout(&o).starts_with("system boot "), "{}", stdout(&o));
    assert_eq!(run(&["shutdown", "-f", p]).status.code(), Some(0));
    let rows: Vec<_> = db
        .entries(&Default::default())
        .map(Result::unwrap)
        .collect();
    assert!(rows[0].logout.is_some());
    // Nothing left to close: an error, and the recorded shutdown stays.
    assert_clean_failure(&run(&["shutdown", "-f", p]), "not found");
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().join("e.db");
    Database::open_read_write(&e).unwrap();
    assert_clean_failure(&run(&["boottime", "-f", s(&e)]), "Boot time not found");
}

#[test]
fn shutdown_never_closes_an_old_crashed_boot() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    let boot = |login, logout| NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login,
        logout,
        tty: Some("~"),
        ..NewEntry::default()
    };
    let crashed = db.login(&boot(100 * SEC, None)).unwrap();
    db.login(&boot(200 * SEC, Some(300 * SEC))).unwrap();
    assert_eq!(run(&["shutdown", "-f", s(&path)]).status.code(), Some(1));
    let rows: Vec<_> = db
        .entries(&Default::default())
        .map(Result::unwrap)
        .collect();
    let old = rows.iter().find(|e| e.id == crashed).unwrap();
    assert_eq!(old.logout, None);
}

fn count(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM wtmp", [], |r| r.get(0))
        .unwrap()
}

fn integrity(path: &Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn rotate_moves_old_rows_next_to_the_database_and_never_deletes_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a.dir");
    let path = sub.join("wtmpdata");
    let mut db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    let day = 86_400 * SEC;
    let rows: Vec<NewEntry<'_>> = (0..3000)
        .map(|i| session("u", "pts/0", "h", now - (i % 100) * day, Some(now)))
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    // The newest row last, as in a real table (rotate always keeps the largest ID).
    db.login(&session("u", "pts/0", "h", now, Some(now)))
        .unwrap();
    drop(db);

    let o = run(&["rotate", "--days", "50", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // Rows of days 50..=99 (at least 50 days old) move.
    assert!(out.starts_with("1500 entries moved to "), "{out}");
    let archive = PathBuf::from(out.trim().rsplit(' ').next().unwrap());
    assert_eq!(archive.parent(), Some(sub.as_path()));
    assert!(
        archive
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("wtmpdata_")
    );
    assert_eq!(count(&path) + count(&archive), 3001);
    assert_eq!(integrity(&path), "ok");
    assert_eq!(integrity(&archive), "ok");

    // Nothing left to move: the archive from the first run stays intact.
    let o = run(&["rotate", "-d", "50", "-f", s(&path)]);
    assert_eq!(stdout(&o), "No old entries found\n");
    assert_eq!(count(&archive), 1500);
}

/// Regression (issue 8, finding 2): on a machine up longer than DAYS, rotate moved the
/// running boot (then `boottime` and `shutdown` failed) and open sessions (their logouts
/// were lost).
#[test]
fn rotate_keeps_the_running_boot_and_open_sessions() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    let day = 86_400 * SEC;
    db.login(&NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login: now - 90 * day,
        tty: Some("~"),
        host: Some("6.1.0"),
        ..NewEntry::default()
    })
    .unwrap();
    let open = db
        .login(&session("alice", "pts/1", "h", now - 80 * day, None))
        .unwrap();
    db.login(&session(
        "bob",
        "pts/2",
        "h",
        now - 70 * day,
        Some(now - 69 * day),
    ))
    .unwrap();
    db.login(&session("carol", "pts/3", "h", now - day, Some(now)))
        .unwrap();
    drop(db);
    let o = run(&["rotate", "-d", "0", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("1 entries moved to "),
        "{}",
        stdout(&o)
    );
    let o = run(&["boottime", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let db = Database::open_read_write(&path).unwrap();
    db.logout(open, now).unwrap();
    drop(db);
    let o = run(&["shutdown", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listing = stdout(&run(&["last", "-f", s(&path)]));
    assert!(!listing.contains("still"), "{listing}");
    assert!(
        listing.contains("alice") && listing.contains("reboot"),
        "{listing}"
    );
}

#[test]
fn an_upstream_database_is_upgraded_in_place_and_stays_upstream_compatible() {
    let (_d, path) = temp_db();
    std::fs::copy(sample_db(), &path).unwrap();
    let before = stdout(&run(&["last", "-f", s(&path)]));
    // A read does not change the file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0);
    // The first write adds the indexes.
    assert_eq!(run(&["boot", "-q", "-f", s(&path)]).status.code(), Some(0));
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, wtmpdb::storage::SCHEMA_VERSION);
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'wtmp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        sql,
        "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT"
    );
    // Our writers keep it in WAL mode (see wtmpdb::storage::WalSettings), which upstream's
    // SQLite reads and writes as it is.
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Upstream's own writes (its exact statements) still work on our file.
    conn.execute(
        "INSERT INTO wtmp (Type,User,Login,TTY,RemoteHost,Service) VALUES(3,'up',1741200000000000,'pts/8','x','sshd')",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE wtmp SET Logout = 1741200060000000 WHERE ID = 12",
        [],
    )
    .unwrap();
    let after = stdout(&run(&["last", "-f", s(&path)]));
    assert!(after.contains("up       pts/8"), "{after}");
    // The footer still names the oldest login: upstream's first boot, not our new rows.
    let footer = format!("\n\n{} begins Sat Mar  1 08:00:00 2025\n", path.display());
    assert!(before.ends_with(&footer), "{before}");
    assert!(after.ends_with(&footer), "{after}");
    assert_eq!(integrity(&path), "ok");
}

#[test]
fn a_login_commits_while_a_long_last_is_printing() {
    let (_d, path) = temp_db();
    let mut db = Database::open_read_write(&path).unwrap();
    let rows: Vec<NewEntry<'_>> = (0..200_000)
        .map(|i| {
            session(
                "user",
                "pts/3",
                "192.0.2.1",
                i * SEC,
                Some(i * SEC + 60 * SEC),
            )
        })
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    drop(db);

    // `last` writes into a pipe nobody reads yet: it blocks mid-listing, as it would behind
    // a slow terminal or `| less`.
    let mut child = Command::new(BIN)
        .args(["last", "-f", s(&path)])
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "last finished too early for the test"
    );

    // Logins with a short busy timeout all commit while it is stuck.
    let writer = Database::open(
        &path,
        &wtmpdb::storage::OpenOptions::read_write()
            .busy_timeout(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    for i in 0..20 {
        let id = writer
            .login(&session("new", "pts/9", "h", 300_000 * SEC + i, None))
            .expect("login while last runs");
        writer
            .logout(id, 300_001 * SEC)
            .expect("logout while last runs");
    }
    assert!(child.try_wait().unwrap().is_none());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 200_000);
}

#[test]
#[ignore = "needs root: creates a root-owned database and runs the command as nobody"]
fn an_unprivileged_user_reads_a_root_owned_database() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("wtmp.db");
    assert_eq!(run(&["boot", "-q", "-f", s(&path)]).status.code(), Some(0));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The binary must be reachable by nobody: copy it next to the database.
    let bin = dir.path().join("wtmpdb");
    std::fs::copy(BIN, &bin).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    let o = as_nobody(&["last", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("system boot"));
    let o = as_nobody(&["boottime", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // And cannot write.
    let o = as_nobody(&["shutdown", "-f", s(&path)]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn last_on_a_legacy_wtmp_file_points_at_the_right_tool() {
    let dir = tempfile::tempdir().unwrap();
    let wtmp = dir.path().join("wtmp");
    // One BOOT_TIME record (glibc type 2) as the kernel's init would write it.
    let mut rec = vec![0u8; 384];
    rec[0] = 2;
    rec[8..9].copy_from_slice(b"~");
    rec[44..50].copy_from_slice(b"reboot");
    std::fs::write(&wtmp, &rec).unwrap();
    let o = run(&["last", "-f", s(&wtmp)]);
    assert_clean_failure(&o, "legacy wtmp file");
    assert_eq!(stderr(&o).lines().count(), 1);
}

/// Regression: check and insert of `boot` were separate, so concurrent runs (a unit restarted
/// while the first still ran) could record one boot twice.
#[test]
fn concurrent_boot_runs_record_one_boot() {
    let (_d, path) = temp_db();
    Database::open_read_write(&path).unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(BIN)
                .args(["boot", "-q", "-f", s(&path)])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(count(&path), 1);
}

/// A missing file, a missing directory and a file the caller may not read each get
/// upstream's message and then a line that says which it is and what to do; rotate of a
/// missing name fails and creates nothing.
#[test]
fn each_reason_a_database_cannot_be_read_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let o = run(&["last", "-f", missing.to_str().unwrap()]);
    assert_clean_failure(&o, "Cannot open database");
    assert!(
        stderr(&o).ends_with("missing.db: no such file\n"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "boottime",
        "-f",
        dir.path().join("no/dir.db").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).ends_with("/no: no such directory\n"),
        "{}",
        stderr(&o)
    );

    let o = run(&["rotate", "-f", missing.to_str().unwrap()]);
    assert_clean_failure(&o, "no such file; nothing to rotate");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "rotate created nothing"
    );

    if support::is_root() {
        // As nobody, a root-only file: permission, and the way through the daemon.
        let db = dir.path().join("private.db");
        Database::open_read_write(&db).unwrap();
        support::chmod(dir.path(), 0o755);
        support::chmod(&db, 0o600);
        let bin = dir.path().join("wtmpdb");
        std::fs::copy(BIN, &bin).unwrap();
        support::chmod(&bin, 0o755);
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["last", "-f", db.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("permission denied: the database is root's")
                && stderr(&o).contains("-f varlink"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn version_says_what_it_is_compatible_with() {
    for flag in ["-v", "--version"] {
        let out = stdout(&run(&[flag]));
        assert!(out.starts_with("wtmpdb 0."), "{out}");
        assert!(out.contains("wtmpdb 0.75"), "{out}");
    }
}

/// The unwinder is linked into the program (see src/main.rs): starting it loads no
/// libgcc_s, whose constructor probes the CPU (CPUID traps to the hypervisor in a VM).
#[test]
fn the_program_loads_no_libgcc_s() {
    let o = Command::new(BIN)
        .arg("-v")
        .env("LD_DEBUG", "files")
        .output()
        .unwrap();
    assert!(o.status.success());
    let loaded = String::from_utf8_lossy(&o.stderr);
    assert!(
        loaded.contains("libc.so"),
        "LD_DEBUG says nothing: {loaded}"
    );
    assert!(!loaded.contains("libgcc_s"), "{loaded}");
}

/// The program reads a database through SQLite either way: loaded at its first database
/// (libsqlite3.so.0, by default), or linked into it (the `static-sqlite` feature), when it
/// loads no shared SQLite at all.
#[test]
fn the_program_loads_sqlite_only_when_it_does_not_link_it() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    db.login(&session("alice", "pts/1", "h", 1_700_000_000 * SEC, None))
        .unwrap();
    drop(db);
    let o = Command::new(BIN)
        .args(["last", "-f", s(&path)])
        .env("LD_DEBUG", "files")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("alice "), "{}", stdout(&o));
    let loaded = String::from_utf8_lossy(&o.stderr);
    assert!(
        loaded.contains("libc.so"),
        "LD_DEBUG says nothing: {loaded}"
    );
    assert_eq!(
        loaded.contains("libsqlite3"),
        !cfg!(feature = "static-sqlite"),
        "{loaded}"
    );
}

/// The program starts without Rust's runtime start-up (see src/main.rs) and does its
/// part itself: a closed standard output is /dev/null from the start, so that no file the
/// program opens takes its number and its output. Seen from inside: `-f /proc/self/fd/1`
/// names a character device (closed, it would name nothing).
#[test]
fn a_closed_stdout_is_dev_null() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(["last", "-f", "/proc/self/fd/1"])
        .env("LC_ALL", "C")
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only close(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("it is a character device"),
        "{}",
        stderr(&o)
    );
}

/// ... and SIGPIPE is ignored: a reader that went away ends the listing quietly, status 0.
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: a writable array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) just made both descriptors; each is owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let o = Command::new(BIN)
        .args(["last", "-f", sample_db().to_str().unwrap()])
        .env("TZ", "UTC")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}: {}", o.status, stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}
