//! `wtmpdb import` on real wtmp files written here, into real SQLite databases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use wtmpdb::import::{ImportError, ImportFailure, import_file, import_files, import_new};
use wtmpdb::{Database, Kind, NewEntry};

mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

const SEC: i64 = 1_000_000;
const RUN_LVL: i16 = 1;
const BOOT_TIME: i16 = 2;
const INIT_PROCESS: i16 = 5;
const LOGIN_PROCESS: i16 = 6;
const USER_PROCESS: i16 = 7;
const DEAD_PROCESS: i16 = 8;

/// One glibc x86_64 `struct utmp`, built field by field.
#[derive(Clone)]
struct Utmp([u8; 384]);

impl Utmp {
    fn new(ut_type: i16, line: &str, user: &str, sec: u32) -> Self {
        let mut u = Utmp([0; 384]);
        u.0[0..2].copy_from_slice(&ut_type.to_le_bytes());
        u.put(8, 32, line.as_bytes());
        let id = &line.as_bytes()[line.len().saturating_sub(4)..];
        u.put(40, 4, id);
        u.put(44, 32, user.as_bytes());
        u.0[340..344].copy_from_slice(&sec.to_le_bytes());
        u.pid(1000)
    }
    fn put(&mut self, at: usize, size: usize, v: &[u8]) {
        assert!(v.len() <= size);
        self.0[at..at + size].fill(0);
        self.0[at..at + v.len()].copy_from_slice(v);
    }
    fn pid(mut self, pid: i32) -> Self {
        self.0[4..8].copy_from_slice(&pid.to_le_bytes());
        self
    }
    fn id(mut self, id: &[u8]) -> Self {
        self.put(40, 4, id);
        self
    }
    fn user_bytes(mut self, user: &[u8]) -> Self {
        self.put(44, 32, user);
        self
    }
    fn host(mut self, host: &str) -> Self {
        self.put(76, 256, host.as_bytes());
        self
    }
    fn usec(mut self, usec: i32) -> Self {
        self.0[344..348].copy_from_slice(&usec.to_le_bytes());
        self
    }
}

fn login(line: &str, user: &str, sec: u32) -> Utmp {
    Utmp::new(USER_PROCESS, line, user, sec).host("10.0.0.1")
}
fn dead(line: &str, sec: u32) -> Utmp {
    Utmp::new(DEAD_PROCESS, line, "", sec)
}
fn boot(sec: u32) -> Utmp {
    Utmp::new(BOOT_TIME, "~", "reboot", sec)
        .id(b"~~")
        .host("6.1.0-13-amd64")
        .pid(0)
}
fn runlevel(level: u8, sec: u32) -> Utmp {
    Utmp::new(RUN_LVL, "~", "runlevel", sec)
        .id(b"~~")
        .pid(i32::from(level))
}
fn shutdown(sec: u32) -> Utmp {
    Utmp::new(RUN_LVL, "~", "shutdown", sec).id(b"~~").pid(0)
}

fn write_wtmp(path: &Path, recs: &[Utmp]) {
    let bytes: Vec<u8> = recs.iter().flat_map(|r| r.0).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A row as stored: (Type, User, Login, Logout, TTY, RemoteHost, Service).
type Row = (
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn rows(db: &Path) -> Vec<Row> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT Type, User, Login, Logout, TTY, RemoteHost, Service FROM wtmp ORDER BY ID")
        .unwrap();
    s.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// (user, tty, login s, logout s) of the rows, boots with tty "~".
fn brief(db: &Path) -> Vec<(String, String, i64, Option<i64>)> {
    rows(db)
        .into_iter()
        .map(|r| (r.1, r.4.unwrap(), r.2 / SEC, r.3.map(|t| t / SEC)))
        .collect()
}

fn b(user: &str, tty: &str, login: i64, logout: Option<i64>) -> (String, String, i64, Option<i64>) {
    (user.into(), tty.into(), login, logout)
}

struct Fixture {
    dir: tempfile::TempDir,
    db: Database,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("wtmp.db")).unwrap();
        Fixture { dir, db }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn db_path(&self) -> PathBuf {
        self.path("wtmp.db")
    }
    fn file(&self, name: &str, recs: &[Utmp]) -> PathBuf {
        let p = self.path(name);
        write_wtmp(&p, recs);
        p
    }
}

#[test]
fn sessions_are_paired_as_last_pairs_them() {
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp",
        &[
            boot(1000),
            runlevel(b'5', 1002),
            Utmp::new(LOGIN_PROCESS, "tty1", "LOGIN", 1005),
            login("pts/0", "alice", 1010),
            login("tty1", "bob", 1020).host(""),
            dead("pts/0", 1030),
            login("pts/0", "carol", 1040),
            // A second login on the same line ends the first.
            login("pts/0", "dave", 1050),
            // Nothing open on pts/9: ignored.
            dead("pts/9", 1055),
            // INIT_PROCESS without user on an idle line: nothing to end.
            Utmp::new(INIT_PROCESS, "tty2", "", 1056),
            shutdown(1060),
            boot(2000),
            login("pts/1", "eve", 2010),
            // Crash: no shutdown. The DEAD after the next boot must not end eve.
            boot(3000),
            dead("pts/1", 3005),
            login("pts/1", "frank", 3010),
        ],
    );
    let s = import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!((s.records, s.sessions, s.boots), (16, 6, 3));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(
        brief(&f.db_path()),
        [
            b("reboot", "~", 1000, Some(1060)),
            b("alice", "pts/0", 1010, Some(1030)),
            b("bob", "tty1", 1020, Some(1060)),
            b("carol", "pts/0", 1040, Some(1050)),
            b("dave", "pts/0", 1050, Some(1060)),
            b("reboot", "~", 2000, None),
            b("eve", "pts/1", 2010, None),
            b("reboot", "~", 3000, None),
            b("frank", "pts/1", 3010, None),
        ]
    );
    let all = rows(&f.db_path());
    // wtmpdb's numbering: 1 BOOT_TIME, 3 USER_PROCESS; no service for imported rows.
    assert_eq!(
        all[0],
        (
            1,
            "reboot".into(),
            1000 * SEC,
            Some(1060 * SEC),
            Some("~".into()),
            Some("6.1.0-13-amd64".into()),
            None
        )
    );
    assert_eq!(all[1].0, 3);
    assert_eq!(all[1].5.as_deref(), Some("10.0.0.1"));
    assert_eq!(all[2].5.as_deref(), Some(""));
    assert!(all.iter().all(|r| r.6.is_none()));
}

#[test]
fn runlevel_0_ends_sessions_and_the_boot() {
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp",
        &[
            boot(100),
            login("pts/0", "alice", 110),
            runlevel(b'0', 150),
            // No shutdown record: the next boot still finds a clean stop at 150.
            boot(200),
            login("pts/0", "bob", 210),
            runlevel(b'6', 250),
            shutdown(255),
        ],
    );
    import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!(
        brief(&f.db_path()),
        [
            b("reboot", "~", 100, Some(150)),
            b("alice", "pts/0", 110, Some(150)),
            b("reboot", "~", 200, Some(255)),
            b("bob", "pts/0", 210, Some(250)),
        ]
    );
}

#[test]
fn old_writers_records_are_retyped_like_last() {
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp",
        &[
            // sysvinit-era boot written as RUN_LVL with id "~~" and user "reboot".
            Utmp::new(RUN_LVL, "~", "reboot", 100).id(b"~~"),
            // A login written with a wrong type but a user and a line.
            Utmp::new(INIT_PROCESS, "ttyS0", "root", 110),
            // A USER_PROCESS without user is a logout.
            Utmp::new(USER_PROCESS, "ttyS0", "", 120),
            // Clock change records are not logins.
            Utmp::new(USER_PROCESS, "|", "date", 130),
        ],
    );
    let s = import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!((s.sessions, s.boots), (1, 1));
    assert_eq!(
        brief(&f.db_path()),
        [
            b("reboot", "~", 100, None),
            b("root", "ttyS0", 110, Some(120))
        ]
    );
}

#[test]
fn full_width_user_does_not_run_into_the_host() {
    let mut f = Fixture::new();
    let user = [b'B'; 32];
    let wtmp = f.file(
        "wtmp",
        &[login("pts/0", "x", 100)
            .user_bytes(&user)
            .host("hostpart.example")],
    );
    import_file(&mut f.db, &wtmp, false).unwrap();
    let r = &rows(&f.db_path())[0];
    assert_eq!(r.1, "B".repeat(32));
    assert_eq!(r.5.as_deref(), Some("hostpart.example"));
}

#[test]
fn invalid_utf8_is_kept_as_escapes() {
    let mut f = Fixture::new();
    let wtmp = f.file("wtmp", &[login("pts/0", "x", 100).user_bytes(b"m\xfcller")]);
    import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!(rows(&f.db_path())[0].1, "m\\xfcller");
}

#[test]
fn times_after_2038_keep_their_date() {
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp",
        &[
            boot(0x9000_0000).usec(5),
            login("pts/0", "alice", 0x9000_0010).usec(999_999),
            dead("pts/0", 0xFFFF_FFFF),
        ],
    );
    import_file(&mut f.db, &wtmp, false).unwrap();
    let r = rows(&f.db_path());
    // 0x9000_0000 s is 2046-07-20; read as a signed int32 it would be 1901.
    assert_eq!(r[0].2, 0x9000_0000 * SEC + 5);
    assert!(r[0].2 > i64::from(i32::MAX) * SEC);
    assert_eq!(
        wtmpdb::time::local(r[0].2).map(|t| t.year > 2038),
        Some(true)
    );
    assert_eq!(r[1].2, 0x9000_0010 * SEC + 999_999);
    assert_eq!(r[1].3, Some(0xFFFF_FFFF * SEC));
}

#[test]
fn out_of_range_microseconds_are_dropped_with_a_warning() {
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp",
        &[
            login("pts/0", "a", 100).usec(-1),
            dead("pts/0", 200).usec(1_000_000),
        ],
    );
    let s = import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!(brief(&f.db_path()), [b("a", "pts/0", 100, Some(200))]);
    assert_eq!(rows(&f.db_path())[0].2, 100 * SEC);
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0].contains("2 records have tv_usec"),
        "{:?}",
        s.warnings
    );
}

#[test]
fn truncated_file_imports_whole_records_and_warns() {
    let mut f = Fixture::new();
    let path = f.path("wtmp.trunc");
    let mut bytes: Vec<u8> = [login("pts/0", "a", 100), dead("pts/0", 200)]
        .iter()
        .flat_map(|r| r.0)
        .collect();
    bytes.extend_from_slice(&login("pts/1", "b", 300).0[..100]);
    std::fs::write(&path, &bytes).unwrap();
    let s = import_file(&mut f.db, &path, false).unwrap();
    assert_eq!(s.records, 2);
    assert_eq!(
        s.warnings,
        [format!(
            "Warning: utmp-format file is not a multiple of sizeof(struct utmp) in length: \
             100 spare bytes, {}",
            path.display()
        )]
    );
    assert_eq!(brief(&f.db_path()), [b("a", "pts/0", 100, Some(200))]);
}

#[test]
fn empty_file_imports_nothing() {
    let mut f = Fixture::new();
    let path = f.file("empty", &[]);
    let s = import_file(&mut f.db, &path, false).unwrap();
    assert_eq!((s.records, s.sessions, s.boots), (0, 0, 0));
    assert!(s.warnings.is_empty());
}

#[test]
fn a_pipe_is_read_to_its_end() {
    // What `wtmpdb import <(zcat wtmp.1.gz)` hands over: the anonymous pipe of a process.
    let mut f = Fixture::new();
    let mut bytes: Vec<u8> = [boot(10), login("pts/0", "a", 20), dead("pts/0", 30)]
        .iter()
        .flat_map(|r| r.0)
        .collect();
    bytes.extend_from_slice(&[0; 10]);
    let src = f.path("src");
    std::fs::write(&src, &bytes).unwrap();
    let mut cat = Command::new("cat")
        .arg(&src)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::os::fd::AsRawFd;
    let fd = cat.stdout.as_ref().unwrap().as_raw_fd();
    let pipe = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let s = import_file(&mut f.db, &pipe, false).unwrap();
    cat.wait().unwrap();
    assert_eq!((s.records, s.sessions, s.boots), (3, 1, 1));
    assert!(
        s.warnings[0].contains(": 10 spare bytes, "),
        "{:?}",
        s.warnings
    );
    assert_eq!(
        brief(&f.db_path()),
        [b("reboot", "~", 10, None), b("a", "pts/0", 20, Some(30))]
    );
}

/// Runs `import_file` on `path` on a thread and fails if it has not returned within 10 s
/// (a hang is the failure these cases guard against).
fn import_within(db_path: &Path, path: &Path) -> Result<(), ImportError> {
    let (db_path, path) = (db_path.to_path_buf(), path.to_path_buf());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut db = Database::open_read_write(&db_path).unwrap();
        let _ = tx.send(import_file(&mut db, &path, false).map(drop));
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("import did not return within 10 s")
}

#[test]
fn hostile_files_are_refused_at_once() {
    let f = Fixture::new();
    let fifo = f.path("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        support::missing("mkfifo is not available");
    }
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::from("/dev/zero"), "character device"),
        (PathBuf::from("/dev/urandom"), "character device"),
        (PathBuf::from("/proc/self/status"), "/proc"),
        (f.dir.path().to_path_buf(), "directory"),
    ];
    if fifo.exists() {
        cases.push((fifo, "FIFO"));
    }
    for (path, what) in cases {
        let e = import_within(&f.db_path(), &path).unwrap_err();
        assert!(matches!(e.reason, ImportFailure::NotAFile(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("Error importing {}: ", path.display())),
            "{msg}"
        );
        assert!(
            msg.contains(what) && msg.ends_with("nothing imported"),
            "{msg}"
        );
    }
    assert!(rows(&f.db_path()).is_empty());
}

#[test]
fn a_stream_of_zero_records_stops_with_an_error() {
    let mut f = Fixture::new();
    // A file of zero bytes (a hole), and the same through a pipe that never ends.
    let zeros = f.path("zeros");
    std::fs::write(&zeros, vec![0u8; 384 * 50]).unwrap();
    expect_not_wtmp(&mut f, &zeros, "all 50 records read are zero bytes");
    let mut cat = Command::new("cat")
        .arg("/dev/zero")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::os::fd::AsRawFd;
    let fd = cat.stdout.as_ref().unwrap().as_raw_fd();
    let pipe = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let e = import_within(&f.db_path(), &pipe).unwrap_err();
    let _ = cat.kill();
    let _ = cat.wait();
    assert!(
        e.to_string()
            .contains("all 1024 records read are zero bytes"),
        "{e}"
    );
    // Garbage through a pipe stops at the early check too, instead of reading to its end.
    let mut rnd = Command::new("cat")
        .arg("/dev/urandom")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fd = rnd.stdout.as_ref().unwrap().as_raw_fd();
    let pipe = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let e = import_within(&f.db_path(), &pipe).unwrap_err();
    let _ = rnd.kill();
    let _ = rnd.wait();
    // Which check stops it depends on the bytes drawn: random data whose first record reads
    // as text is refused as "not a wtmp file" (seen in CI), otherwise by its record type.
    let msg = e.to_string();
    assert!(
        msg.contains("invalid ut_type") || msg.contains("not a wtmp file"),
        "{e}"
    );
    assert!(rows(&f.db_path()).is_empty());
}

fn expect_not_wtmp(f: &mut Fixture, path: &Path, what: &str) {
    let e = import_file(&mut f.db, path, false).unwrap_err();
    assert!(matches!(e.reason, ImportFailure::NotWtmp(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "Error importing {}: not a wtmp file",
            path.display()
        )),
        "{msg}"
    );
    assert!(msg.contains(what), "{msg}");
    assert!(rows(&f.db_path()).is_empty());
}

#[test]
fn foreign_files_are_refused_whole() {
    let mut f = Fixture::new();

    // Pseudo-random bytes: most ut_type values are out of range.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let garbage: Vec<u8> = (0..384 * 3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect();
    let mut with_nul = garbage.clone();
    with_nul[2] = 0;
    let g = f.path("garbage");
    std::fs::write(&g, &with_nul).unwrap();
    expect_not_wtmp(&mut f, &g, "invalid ut_type");

    // Valid-looking first records do not let a mostly invalid file through.
    let mut mixed: Vec<u8> = (0..10u32).flat_map(|i| login("pts/0", "a", i).0).collect();
    mixed.extend_from_slice(&with_nul[..384 * 20]);
    let m = f.path("mixed");
    std::fs::write(&m, &mixed).unwrap();
    expect_not_wtmp(&mut f, &m, "20 of 30 records");

    let t = f.path("text");
    std::fs::write(&t, "root pts/0 10.0.0.1 Mon Jan 1\n".repeat(40)).unwrap();
    expect_not_wtmp(&mut f, &t, "text");

    // Shorter than one record, still recognizably not wtmp.
    let short = f.path("short");
    std::fs::write(&short, "user pts/0\n").unwrap();
    expect_not_wtmp(&mut f, &short, "text");

    let other = f.path("other.db");
    drop(Database::open_read_write(&other).unwrap());
    expect_not_wtmp(&mut f, &other, "SQLite");

    let missing = f.path("missing");
    let e = import_file(&mut f.db, &missing, false).unwrap_err();
    assert!(matches!(e.reason, ImportFailure::Open(_)));
    assert!(
        e.to_string().starts_with(&format!(
            "Error importing {}: cannot open",
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn a_failing_file_leaves_nothing_and_stops_the_import() {
    let mut f = Fixture::new();
    let first = f.file("wtmp.2", &[boot(10), login("pts/0", "a", 20)]);
    let failing = f.file(
        "wtmp.1",
        &[
            boot(100),
            login("pts/0", "b", 110),
            login("pts/1", "boom", 120),
            login("pts/2", "c", 130),
        ],
    );
    let never = f.file("wtmp", &[boot(200)]);
    // An SQL failure in the middle of the second file's transaction.
    rusqlite::Connection::open(f.db_path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON wtmp WHEN NEW.User = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
        )
        .unwrap();
    let e = import_files(&mut f.db, &[&first, &failing, &never], false).unwrap_err();
    assert_eq!(e.path, failing);
    assert!(matches!(e.reason, ImportFailure::Database { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("Error importing {}: ", failing.display())),
        "{msg}"
    );
    assert!(msg.contains("refused by test trigger"), "{msg}");
    assert!(
        msg.ends_with("nothing from this file was imported"),
        "{msg}"
    );
    // The first file stays, nothing of the second, the third was not read.
    assert_eq!(
        brief(&f.db_path()),
        [b("reboot", "~", 10, None), b("a", "pts/0", 20, None)]
    );
}

#[test]
fn a_read_only_database_fails_cleanly() {
    let Fixture { dir, db } = Fixture::new();
    drop(db);
    let db_path = dir.path().join("wtmp.db");
    let wtmp = dir.path().join("wtmp");
    write_wtmp(&wtmp, &[boot(10), login("pts/0", "a", 20)]);
    let mut ro = Database::open_read_only(&db_path).unwrap();
    let e = import_file(&mut ro, &wtmp, false).unwrap_err();
    assert!(matches!(e.reason, ImportFailure::Database { .. }), "{e}");
    assert!(rows(&db_path).is_empty());
}

// ---- agreement with util-linux `last` on generated files ----------------------------------

/// How `last` ends a session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    At(i64),
    Crash,
    Down,
    Open,
}

fn tool_available(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Seconds since the epoch of `2026-10-30T01:12:25+00:00`.
fn iso_utc(s: &str) -> i64 {
    let s = s.strip_suffix("+00:00").expect("TZ=UTC output");
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

type Sessions = BTreeMap<(i64, String, String), Vec<End>>;

fn last_sessions(file: &Path) -> (Sessions, Vec<i64>) {
    let out = Command::new("last")
        .args(["-w", "-R", "--time-format", "iso", "-f"])
        .arg(file)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut sessions = Sessions::new();
    let mut boots = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 4 || line.contains(" begins ") {
            continue;
        }
        if w[0] == "reboot" && w[1] == "system" && w[2] == "boot" {
            boots.push(iso_utc(w[3]));
            continue;
        }
        let end = match &w[2..] {
            [_, "-", "crash", ..] => End::Crash,
            [_, "-", "down", ..] => End::Down,
            [_, "still", "logged", "in"] | [_, "gone", "-", "no", "logout"] => End::Open,
            [_, "-", t, ..] => End::At(iso_utc(t)),
            _ => panic!("unexpected line from last: {line}"),
        };
        sessions
            .entry((iso_utc(w[2]), w[1].to_string(), w[0].to_string()))
            .or_default()
            .push(end);
    }
    boots.sort();
    (sessions, boots)
}

fn our_sessions(db: &Path) -> (Sessions, Vec<i64>) {
    let all = rows(db);
    let mut boots: Vec<i64> = all.iter().filter(|r| r.0 == 1).map(|r| r.2).collect();
    boots.sort();
    let mut sessions = Sessions::new();
    for r in all.iter().filter(|r| r.0 == 3) {
        let end = match r.3 {
            Some(t) => End::At(t.div_euclid(SEC)),
            None if boots.iter().any(|&b| b > r.2) => End::Crash,
            None => End::Open,
        };
        sessions
            .entry((r.2.div_euclid(SEC), r.4.clone().unwrap(), r.1.clone()))
            .or_default()
            .push(end);
    }
    (sessions, boots.iter().map(|b| b.div_euclid(SEC)).collect())
}

#[test]
fn generated_file_matches_util_linux_last() {
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/gen_wtmp.py");
    if !generator.exists() || !tool_available("python3", "--version") {
        support::missing(&format!("python3 or {} is missing", generator.display()));
        return;
    }
    if !tool_available("last", "--version") {
        support::missing("util-linux last is not installed");
        return;
    }
    // WTMPDB_COMPARE_RECORDS=1000000 (with --release) checks the benchmark file.
    let records: u64 = std::env::var("WTMPDB_COMPARE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut f = Fixture::new();
    let wtmp = f.path("wtmp.gen");
    let mut gen_cmd = Command::new("python3");
    gen_cmd
        .arg(&generator)
        .arg("--out")
        .arg(&wtmp)
        .args(["--records", &records.to_string()]);
    if records < 100_000 {
        // 20 boots: one crashed, 18 shut down, one running, about 50 sessions each.
        gen_cmd.args(["--boots", "20", "--users", "20"]);
    }
    let out = gen_cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!(s.records, records);
    let (theirs, their_boots) = last_sessions(&wtmp);
    let (ours, our_boots) = our_sessions(&f.db_path());
    assert_eq!(our_boots, their_boots);

    let count = |m: &Sessions| m.values().map(Vec::len).sum::<usize>();
    assert_eq!(count(&ours), count(&theirs));
    assert_eq!(s.sessions as usize, count(&ours));
    let kinds = |m: &Sessions, k: fn(&End) -> bool| m.values().flatten().filter(|e| k(e)).count();
    let crashes = kinds(&theirs, |e| *e == End::Crash);
    assert_eq!(kinds(&ours, |e| *e == End::Crash), crashes);
    let open = kinds(&theirs, |e| *e == End::Open);
    assert_eq!(kinds(&ours, |e| *e == End::Open), open);
    if records == 2000 {
        // Every way a session can end is in the file.
        assert!(crashes > 0, "the file should have a crashed segment");
        assert!(open > 0, "the file should have a session still open");
        assert!(
            kinds(&theirs, |e| *e == End::Down) > 0,
            "the file should have a session that the shutdown ended"
        );
    }
    for (key, their_ends) in &theirs {
        let mut mine = ours
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key:?} missing"));
        let mut their_ends = their_ends.clone();
        // `last` prints "down" instead of the shutdown time.
        for (m, t) in mine.iter_mut().zip(their_ends.iter_mut()) {
            if *t == End::Down && matches!(m, End::At(_)) {
                *m = End::Down;
            }
        }
        mine.sort();
        their_ends.sort();
        assert_eq!(mine, their_ends, "session {key:?}");
    }
}

#[test]
fn edge_cases_match_util_linux_last() {
    if !tool_available("last", "--version") {
        support::missing("util-linux last is not installed");
        return;
    }
    let t = |s: u32| 1_700_000_000 + s;
    let mut f = Fixture::new();
    let wtmp = f.file(
        "wtmp.edge",
        &[
            boot(t(0)),
            runlevel(b'5', t(2)),
            login("pts/0", "alice", t(100)),
            login("pts/0", "bob", t(200)),
            login("tty1", "carol", t(250)).host(""),
            Utmp::new(INIT_PROCESS, "tty1", "", t(260)),
            login("pts/1", "dave", t(300)),
            login("pts/2", "erin", t(310)),
            dead("pts/2", t(320)),
            // dave and bob are still on: "down" at the shutdown.
            shutdown(t(400)),
            boot(t(1000)),
            login("pts/0", "frank", t(1100)),
            login("pts/3", "grace", t(1150)),
            runlevel(b'0', t(1200)),
            boot(t(2000)),
            login("pts/0", "heidi", t(2100)),
            // Crash: heidi stays open; the DEAD after the boot does not end her session.
            boot(t(3000)),
            dead("pts/0", t(3001)),
            Utmp::new(INIT_PROCESS, "ttyS0", "root", t(3100)),
            Utmp::new(USER_PROCESS, "ttyS0", "", t(3200)),
            login("pts/4", "ivan", t(3300)),
        ],
    );
    import_file(&mut f.db, &wtmp, false).unwrap();
    let (theirs, their_boots) = last_sessions(&wtmp);
    let (ours, our_boots) = our_sessions(&f.db_path());
    assert_eq!(our_boots, their_boots);
    let ours: Sessions = ours
        .into_iter()
        .map(|(k, v)| {
            let v = match (theirs.get(&k).map(Vec::as_slice), v.as_slice()) {
                // `last` prints "down" instead of the shutdown time.
                (Some([End::Down]), [End::At(_)]) => vec![End::Down],
                _ => v,
            };
            (k, v)
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(
        theirs
            .values()
            .flatten()
            .filter(|e| **e == End::Down)
            .count(),
        4
    );
}

/// Regression (issue 8, finding 3 and "safe to interrupt and re-run"): importing the same
/// file twice duplicated every row.
#[test]
fn importing_a_file_again_adds_only_what_is_missing() {
    let mut f = Fixture::new();
    let recs = [
        boot(100),
        login("pts/0", "a", 110),
        // Two identical records: two sessions, kept both, and not doubled on re-import.
        login("pts/9", "twin", 115),
        dead("pts/9", 116),
        login("pts/9", "twin", 115),
        dead("pts/9", 117),
        login("pts/1", "b", 120),
        dead("pts/0", 130),
    ];
    // A run cut off after the first part of the file.
    let part = f.file("wtmp.part", &recs[..3]);
    let whole = f.file("wtmp", &recs);
    import_file(&mut f.db, &part, false).unwrap();
    let s = import_file(&mut f.db, &whole, false).unwrap();
    // reboot, a and the first twin were there; a gets its logout now.
    assert_eq!(s.already_present, 3, "{s:?}");
    let once = brief(&f.db_path());
    let s = import_file(&mut f.db, &whole, false).unwrap();
    assert_eq!(s.already_present, 5, "{s:?}");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("5 of 5 rows were already")),
        "{:?}",
        s.warnings
    );
    let twice = brief(&f.db_path());
    assert_eq!(once, twice);
    assert_eq!(
        twice,
        [
            b("reboot", "~", 100, None),
            b("a", "pts/0", 110, Some(130)),
            b("twin", "pts/9", 115, Some(116)),
            b("twin", "pts/9", 115, Some(117)),
            b("b", "pts/1", 120, None),
        ]
    );
}

/// A file too large for one short transaction fails part-way: what was committed stays and
/// the message says so; after the cause is gone, importing it again adds only the rest.
#[test]
fn a_failure_after_committed_batches_says_what_was_imported() {
    let mut f = Fixture::new();
    let n = 60_000u32;
    let mut recs = vec![boot(10)];
    for i in 0..n {
        let user = if i == n - 1 { "boom" } else { "u" };
        recs.push(login(&format!("pts/{}", i % 50), user, 100 + i));
    }
    let wtmp = f.file("wtmp", &recs);
    rusqlite::Connection::open(f.db_path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON wtmp WHEN NEW.User = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
        )
        .unwrap();
    let e = import_file(&mut f.db, &wtmp, false).unwrap_err();
    let committed = match &e.reason {
        ImportFailure::Database { committed, .. } => *committed,
        other => panic!("{other:?}"),
    };
    let msg = e.to_string();
    let stored = rows(&f.db_path()).len() as u64;
    assert_eq!(stored, committed, "{msg}");
    // 60,000 inserts take far longer than one 20 ms transaction.
    assert!(committed > 0, "one transaction for the whole file: {msg}");
    assert!(
        msg.contains(&format!("{committed} rows of this file were imported")),
        "{msg}"
    );
    rusqlite::Connection::open(f.db_path())
        .unwrap()
        .execute_batch("DROP TRIGGER boom")
        .unwrap();
    let s = import_file(&mut f.db, &wtmp, false).unwrap();
    assert_eq!(s.already_present, committed);
    assert_eq!(rows(&f.db_path()).len() as u64, u64::from(n) + 1);
}

/// A file with every way a session ends, for the comparisons of the two import paths.
fn varied_records() -> Vec<Utmp> {
    let mut recs = vec![boot(100)];
    for i in 0..300u32 {
        let line = format!("pts/{}", i % 7);
        recs.push(login(&line, &format!("u{}", i % 5), 110 + 3 * i));
        if i % 4 != 0 {
            recs.push(dead(&line, 111 + 3 * i));
        }
        if i == 150 {
            recs.push(shutdown(600));
            recs.push(boot(601));
        }
    }
    // Twins: the same event twice.
    recs.push(login("pts/9", "twin", 2000));
    recs.push(dead("pts/9", 2001));
    recs.push(login("pts/9", "twin", 2000));
    recs.push(boot(3000));
    recs
}

fn schema_of(db: &Path) -> (i64, Vec<String>) {
    let c = rusqlite::Connection::open(db).unwrap();
    let version = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mut s = c
        .prepare("SELECT name FROM sqlite_master ORDER BY name")
        .unwrap();
    let names = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (version, names)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-import"))
        .collect()
}

/// A database that does not exist is built whole beside it and moved into place: the same
/// rows, IDs and schema as an import into a live database, nothing left beside it, and an
/// import of the same file afterwards adds nothing.
#[test]
fn a_new_database_is_built_whole_with_what_a_live_import_writes() {
    let mut f = Fixture::new();
    let wtmp = f.file("wtmp", &varied_records());
    import_file(&mut f.db, &wtmp, false).unwrap();
    let new = f.path("sub/new.db");
    let s = import_new(&new, &wtmp, false).unwrap().expect("built");
    assert_eq!(s.already_present, 0);
    assert_eq!(rows(&new), rows(&f.db_path()));
    let ids = |db: &Path| -> Vec<i64> {
        let c = rusqlite::Connection::open(db).unwrap();
        let mut s = c.prepare("SELECT ID FROM wtmp ORDER BY ID").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(ids(&new), ids(&f.db_path()));
    assert_eq!(schema_of(&new), schema_of(&f.db_path()));
    assert_eq!(leftovers(&f.path("sub")), Vec::<String>::new());
    // It exists now: the next import goes into it as into any live database.
    assert!(import_new(&new, &wtmp, false).unwrap().is_none());
    let mut db = Database::open_read_write(&new).unwrap();
    let again = import_file(&mut db, &wtmp, false).unwrap();
    assert_eq!(again.already_present as usize, rows(&new).len());
}

/// A database created while the new one was being built (a login, another import) is
/// never replaced: the build is thrown away and nothing of it stays.
#[test]
fn a_database_created_during_the_build_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wtmp.db");
    let mut created = false;
    let rows_in = (0..1000).map(|i| NewEntry {
        kind: Kind::UserProcess,
        user: "imported",
        login: i64::from(i) * SEC,
        tty: Some("pts/1"),
        ..NewEntry::default()
    });
    let rows_in = rows_in.inspect(|_| {
        if !std::mem::replace(&mut created, true) {
            let db = Database::open_read_write(&path).unwrap();
            db.login(&NewEntry {
                kind: Kind::UserProcess,
                user: "meanwhile",
                login: 5 * SEC,
                tty: Some("pts/2"),
                ..NewEntry::default()
            })
            .unwrap();
        }
    });
    let built = wtmpdb::storage::build_new(&path, rows_in, |_| {}).unwrap();
    assert_eq!(built, wtmpdb::storage::Built::Exists);
    let users: Vec<String> = rows(&path).into_iter().map(|r| r.1).collect();
    assert_eq!(users, ["meanwhile"]);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

/// The temporary file of a build whose process is gone (killed part-way) is removed by the
/// next import into the same database; one of a running process is left alone.
#[test]
fn an_abandoned_build_is_removed_by_the_next_import() {
    let f = Fixture::new();
    let wtmp = f.file("wtmp", &varied_records());
    let new = f.path("new.db");
    // Above any pid_max Linux allows (4194304): no such process.
    let gone = f.path("new.db-import.4294967");
    std::fs::write(&gone, b"half a database").unwrap();
    let init = f.path("new.db-import.1");
    std::fs::write(&init, b"pid 1 is alive").unwrap();
    import_new(&new, &wtmp, false).unwrap().expect("built");
    assert!(!gone.exists());
    assert!(init.exists());
    assert_eq!(rows(&new).len(), rows_count_expected(&wtmp));
}

/// A build cut off (an import interrupted with ^C, which runs no destructor) leaves its
/// temporary file; when a login has created the database before the import is run again,
/// that import goes into the live database, and it too removes the leftover: a half-built
/// copy of the legacy file, or, after a crash between link(2) and unlink(2), a second name
/// of the live database that `wtmpdb secure` would refuse.
#[test]
fn an_abandoned_build_is_removed_when_the_database_exists_meanwhile() {
    let f = Fixture::new();
    let wtmp = f.file("wtmp", &varied_records());
    let new = f.path("new.db");
    let gone = f.path("new.db-import.4294967");
    std::fs::write(&gone, b"half a database").unwrap();
    drop(Database::open_read_write(&new).unwrap());
    assert!(import_new(&new, &wtmp, false).unwrap().is_none());
    assert!(!gone.exists(), "the abandoned build is still there");
}

fn rows_count_expected(wtmp: &Path) -> usize {
    let mut f = Fixture::new();
    import_file(&mut f.db, wtmp, false).unwrap();
    rows(&f.db_path()).len()
}

/// A file that cannot be imported creates no database and leaves nothing beside it.
#[test]
fn a_refused_file_creates_no_new_database() {
    let f = Fixture::new();
    let bad = f.path("not-wtmp");
    std::fs::write(&bad, vec![0xffu8; 384 * 2000]).unwrap();
    let new = f.path("new.db");
    assert!(import_new(&new, &bad, false).is_err());
    assert!(!new.exists());
    assert_eq!(leftovers(f.dir.path()), Vec::<String>::new());
}

/// A link planted under the name of this process's build is never written through: the
/// build uses only a file it created itself.
#[test]
fn a_link_planted_as_the_temporary_file_is_not_followed() {
    let f = Fixture::new();
    let wtmp = f.file("wtmp", &varied_records());
    let victim = f.path("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let new = f.path("new.db");
    let planted = f.path(&format!("new.db-import.{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    import_new(&new, &wtmp, false).unwrap().expect("built");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!rows(&new).is_empty());
    assert!(std::fs::symlink_metadata(&planted).is_err());
}
