//! `wtmpdb who`, `users` and `lastlog` through the binary, and what every read command does
//! with hostile files: FIFOs, devices, /proc files, directories, foreign tables, a copied
//! WAL database, and a read that fails part-way under `--json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wtmpdb::storage::{Database, Kind, NewEntry};

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const SEC: i64 = 1_000_000;
const DAY: i64 = 86_400 * SEC;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The binary with `args`, in UTC and the C locale, killed (and the test failed) if it has
/// not ended within 10 s: a hang is one of the failures looked for.
fn run(args: &[&str]) -> Output {
    run_env(args, &[("TZ", "UTC")])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Output is read while waiting (a full pipe would otherwise stop the child).
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().unwrap());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(o) => o,
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("wtmpdb {args:?} did not end within 10 s");
        }
    }
}

fn out(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn session<'a>(
    user: &'a str,
    tty: &'a str,
    host: &'a str,
    login: i64,
    logout: Option<i64>,
) -> NewEntry<'a> {
    NewEntry {
        kind: Kind::UserProcess,
        user,
        login,
        logout,
        tty: Some(tty),
        host: Some(host),
        service: Some("sshd"),
    }
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("wtmp.db");
    (d, p)
}

/// A tiny deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn lastlog_agrees_with_a_brute_force_query() {
    let (d, path) = temp_db();
    let mut db = Database::open_read_write(&path).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let users: Vec<String> = (0..60).map(|i| format!("user{i:02}")).collect();
    let mut rows = Vec::new();
    for i in 0..6000i64 {
        let u = &users[rng.below(users.len() as u64) as usize];
        // Spread over 1970..2200 (after 2038 and 2106 too); unique logins, in any order.
        let login = (rng.below(7_000_000_000) as i64) * SEC + i;
        let kind = if rng.below(20) == 0 {
            Kind::BootTime
        } else {
            Kind::UserProcess
        };
        rows.push((u.clone(), login, kind));
    }
    let entries: Vec<NewEntry<'_>> = rows
        .iter()
        .map(|(u, login, kind)| NewEntry {
            kind: *kind,
            user: u,
            login: *login,
            logout: None,
            tty: Some("pts/1"),
            host: Some("h"),
            service: None,
        })
        .collect();
    db.insert_all(entries.clone(), |_| {}).unwrap();
    // The same rows in upstream's schema only (no index: read in one pass).
    let bare = d.path().join("upstream.db");
    let mut up = Database::open(
        &bare,
        &wtmpdb::storage::OpenOptions::read_write().migrate(wtmpdb::storage::Migrate::Never),
    )
    .unwrap();
    up.insert_all(entries, |_| {}).unwrap();
    drop(up);
    let c = rusqlite::Connection::open(&path).unwrap();
    let brute: BTreeMap<String, i64> = c
        .prepare("SELECT User, max(Login) FROM wtmp NOT INDEXED WHERE Type = 3 GROUP BY User")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let v: serde_json::Value =
        serde_json::from_str(&out(&run(&["lastlog", "--json", "-f", s(&path)]))).unwrap();
    let ours: BTreeMap<String, i64> = v["lastlog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_string(),
                e["latest_usec"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, brute);
    let from_upstream = out(&run(&["lastlog", "--json", "-f", s(&bare)]));
    assert_eq!(
        from_upstream,
        out(&run(&["lastlog", "--json", "-f", s(&path)])),
        "the same with and without the User index"
    );
    assert!(
        brute.values().any(|&t| t > 4_294_967_296 * SEC),
        "a login after 2106"
    );
    // The text layout: a header, then one line per user, with lastlog's time.
    let text = out(&run(&["lastlog", "-f", s(&path)]));
    assert!(
        text.starts_with("Username         Port     From             Latest\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), brute.len() + 1);
    // -u: one user, or never logged in.
    let (u, t) = brute.iter().next().unwrap();
    let one = out(&run(&["lastlog", "-u", u, "-f", s(&path)]));
    assert_eq!(one.lines().count(), 2, "{one}");
    let v: serde_json::Value =
        serde_json::from_str(&out(&run(&["lastlog", "-j", "-u", u, "-f", s(&path)]))).unwrap();
    assert_eq!(v["lastlog"][0]["latest_usec"].as_i64(), Some(*t));
    let never = out(&run(&["lastlog", "-u", "nobody-here", "-f", s(&path)]));
    assert_eq!(
        never.lines().nth(1).unwrap(),
        "nobody-here                                **Never logged in**"
    );
}

#[test]
fn lastlog_days_all_accounts_and_lastlog2() {
    let (d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    let now = wtmpdb::time::now();
    db.login(&session("recent", "pts/1", "192.0.2.1", now - DAY, None))
        .unwrap();
    db.login(&session(
        "old",
        "pts/2",
        "192.0.2.2",
        now - 100 * DAY,
        Some(now - 99 * DAY),
    ))
    .unwrap();
    db.login(&session("DOMAIN\\alice", "pts/3", "h", now - 2 * DAY, None))
        .unwrap();
    let names = |o: &str| -> Vec<String> {
        o.lines()
            .skip(1)
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let all = out(&run(&["lastlog", "-f", s(&path)]));
    assert_eq!(names(&all), ["DOMAIN\\alice", "old", "recent"], "{all}");
    assert!(
        all.contains("DOMAIN\\alice     pts/3    h                "),
        "{all}"
    );
    let t = out(&run(&["lastlog", "-t", "7", "-f", s(&path)]));
    assert_eq!(names(&t), ["DOMAIN\\alice", "recent"]);
    let b = out(&run(&["lastlog", "-b", "7", "-f", s(&path)]));
    assert_eq!(names(&b), ["old"]);
    // -a: every passwd account; root never logged in here.
    let a = out(&run(&["lastlog", "-a", "-f", s(&path)]));
    assert!(
        a.lines()
            .any(|l| l == "root                                       **Never logged in**"),
        "{a}"
    );
    // util-linux's lastlog2.db, with its documented schema (Debian 12 has no lastlog2 to
    // write one): times are seconds.
    let ll2 = d.path().join("lastlog2.db");
    let c = rusqlite::Connection::open(&ll2).unwrap();
    c.execute_batch(
        "CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER NOT NULL, TTY TEXT, RemoteHost TEXT, Service TEXT);
         INSERT INTO Lastlog2 VALUES ('carol', 4102444800, 'pts/5', '198.51.100.5', 'sshd');
         INSERT INTO Lastlog2 VALUES ('dave', 1700000000, 'tty1', '', 'login');",
    )
    .unwrap();
    drop(c);
    let l = out(&run(&["lastlog", "--lastlog2", s(&ll2)]));
    assert_eq!(
        l,
        "Username         Port     From             Latest\n\
         carol            pts/5    198.51.100.5     Fri Jan  1 00:00:00 +0000 2100\n\
         dave             tty1                      Tue Nov 14 22:13:20 +0000 2023\n"
    );
    let v: serde_json::Value = serde_json::from_str(&out(&run(&[
        "lastlog",
        "-j",
        "-u",
        "carol",
        "--lastlog2",
        s(&ll2),
    ])))
    .unwrap();
    assert_eq!(
        v["lastlog"][0]["latest_usec"].as_i64(),
        Some(4_102_444_800 * SEC)
    );
    // A database that is not lastlog2's: one line, exit 1.
    let o = run(&["lastlog", "--lastlog2", s(&path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a lastlog2 database"));
}

#[test]
fn who_shows_the_open_rows_of_this_boot_only() {
    let (d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    let boot = wtmpdb::time::boot_time();
    // Of an earlier boot, never closed: not logged in now.
    db.login(&session("crashed", "pts/1", "192.0.2.1", boot - DAY, None))
        .unwrap();
    // This boot, closed.
    db.login(&session(
        "gone",
        "pts/2",
        "192.0.2.2",
        boot + SEC,
        Some(boot + 2 * SEC),
    ))
    .unwrap();
    // This boot, open, written by upstream (no process known): shown, unverified.
    db.login(&session(
        "DOMAIN\\alice",
        "pts/3",
        "192.0.2.3",
        boot + 3 * SEC,
        None,
    ))
    .unwrap();
    db.login(&session("ev\u{202e}il", "pts/4", "", boot + 4 * SEC, None))
        .unwrap();
    // This boot, by our session rule: the process is this test, alive.
    let me = wtmpdb::session::open_session(
        &db,
        &wtmpdb::legacy::NoMirror,
        &wtmpdb::session::NewSession {
            user: "live",
            tty: Some("pts/5"),
            host: Some("192.0.2.5"),
            service: Some("svc"),
            pid: None,
        },
        boot + 5 * SEC,
    )
    .unwrap();
    // And one whose process has ended.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id() as i32;
    child.wait().unwrap();
    let _ = wtmpdb::session::open_session(
        &db,
        &wtmpdb::legacy::NoMirror,
        &wtmpdb::session::NewSession {
            user: "dead",
            tty: Some("pts/6"),
            pid: Some(dead),
            ..Default::default()
        },
        boot + 6 * SEC,
    )
    .unwrap();
    let f = s(&path);
    let text = out(&run(&["who", "--no-logind", "-f", f]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("DOMAIN\\alice pts/3        "),
        "{text}"
    );
    assert!(
        lines[0].ends_with(" (192.0.2.3) [wtmpdb, unverified]"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("ev\\u{202e}il pts/4        "),
        "{text}"
    );
    assert!(lines[1].ends_with(" [wtmpdb, unverified]"), "{text}");
    assert!(lines[2].starts_with("live     pts/5        "), "{text}");
    assert!(lines[2].ends_with(" (192.0.2.5) [wtmpdb]"), "{text}");
    // C locale: coreutils' "%b %e %H:%M"; others: "%Y-%m-%d %H:%M".
    assert_eq!(
        lines[2].len(),
        "live     pts/5        Jan  1 00:00 (192.0.2.5) [wtmpdb]".len()
    );
    let iso = out(&run_env(
        &["who", "--no-logind", "-f", f],
        &[("LC_ALL", "en_US.UTF-8"), ("TZ", "UTC")],
    ));
    assert_eq!(
        iso.lines().nth(2).unwrap().len(),
        lines[2].len() + 4,
        "{iso}"
    );
    let h = out(&run(&["who", "-H", "--no-logind", "-f", f]));
    assert_eq!(
        h.lines().next().unwrap(),
        "NAME     LINE         TIME         COMMENT SOURCE"
    );
    let u = out(&run(&["who", "-u", "--no-logind", "-f", f]));
    let pid = std::process::id().to_string();
    assert!(
        u.lines()
            .nth(2)
            .unwrap()
            .contains(&format!(" {pid} (192.0.2.5)")),
        "{u}"
    );
    let q = out(&run(&["who", "-q", "--no-logind", "-f", f]));
    assert_eq!(q, "DOMAIN\\alice ev\\u{202e}il live\n# users=3\n");
    let users = out(&run(&["users", "--no-logind", "-f", f]));
    assert_eq!(users, "DOMAIN\\alice ev\\u{202e}il live\n");
    let v: serde_json::Value =
        serde_json::from_str(&out(&run(&["who", "--json", "--no-logind", "-f", f]))).unwrap();
    let list = v["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["user"], "ev\u{202e}il");
    assert_eq!(list[2]["pid"].as_i64(), Some(std::process::id() as i64));
    assert_eq!(list[2]["verified"], true);
    assert_eq!(list[0]["verified"], false);
    assert_eq!(v["logind"], "unavailable");
    assert!(
        !String::from_utf8(run(&["who", "--json", "--no-logind", "-f", f]).stdout)
            .unwrap()
            .contains('\u{202e}')
    );

    // logind's sessions, as its files say: one is the live row's (same leader), one has no
    // row. Each line says where it came from.
    let sessions = d.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    std::fs::write(
        sessions.join("7"),
        format!(
            "UID=0\nUSER=live\nSTATE=active\nCLASS=user\nTTY=pts/5\nLEADER={pid}\nREALTIME={}\n",
            boot + 5 * SEC
        ),
    )
    .unwrap();
    std::fs::write(
        sessions.join("8"),
        format!(
            "UID=1000\nUSER=carol\nSTATE=online\nCLASS=user\nTTY=tty2\nLEADER=1\nREALTIME={}\n",
            boot + 7 * SEC
        ),
    )
    .unwrap();
    let merged = out(&run(&["who", "--logind", s(&sessions), "-f", f]));
    let lines: Vec<&str> = merged.lines().collect();
    assert_eq!(lines.len(), 4, "{merged}");
    assert!(
        lines[2].ends_with(" (192.0.2.5) [wtmpdb+logind]"),
        "{merged}"
    );
    assert!(
        lines[3].starts_with("carol    tty2  ") && lines[3].ends_with(" [logind]"),
        "{merged}"
    );
    drop(me);
}

/// One FIFO, and what every read command must refuse at once.
fn hostile_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    let mut v = vec![
        (PathBuf::from("/dev/zero"), "character device"),
        (PathBuf::from("/dev/urandom"), "character device"),
        (PathBuf::from("/proc/self/status"), "/proc"),
        (dir.to_path_buf(), "directory"),
    ];
    if made.is_ok_and(|s| s.success()) {
        v.push((fifo, "FIFO"));
    } else {
        support::missing("mkfifo is not available");
    }
    v
}

#[test]
fn every_read_refuses_fifos_devices_proc_files_and_directories_at_once() {
    let d = tempfile::tempdir().unwrap();
    for (path, what) in hostile_files(d.path()) {
        let p = s(&path);
        for args in [
            vec!["last", "-f", p],
            vec!["last", "--json", "-f", p],
            vec!["who", "-f", p],
            vec!["who", "--json", "-f", p],
            vec!["users", "-f", p],
            vec!["lastlog", "-f", p],
            vec!["lastlog", "--lastlog2", p],
            vec!["boottime", "-f", p],
            vec!["import", "-f", s(&d.path().join("new.db")), p],
        ] {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(what), "{args:?}: {err}");
            assert!(
                o.stdout.is_empty(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
}

#[test]
fn foreign_tables_with_shared_ids_or_text_logins_are_reported() {
    let d = tempfile::tempdir().unwrap();
    for (name, rows, what) in [
        (
            "dup.db",
            "INSERT INTO wtmp VALUES (1, 3, 'a', 10, NULL, 'pts/1', '', ''), (1, 3, 'b', 20, NULL, 'pts/2', '', '');",
            "rows have an ID another row has",
        ),
        (
            "text.db",
            "INSERT INTO wtmp VALUES (1, 3, 'a', 10, NULL, 'pts/1', '', ''), (2, 3, 'b', 'yesterday', NULL, 'pts/2', '', '');",
            "rows hold text in Login",
        ),
    ] {
        let path = d.path().join(name);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE wtmp(ID INTEGER, Type INTEGER, User TEXT, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT); {rows}"
        ))
        .unwrap();
        drop(c);
        for cmd in ["last", "who", "lastlog"] {
            let o = run(&[cmd, "-f", s(&path)]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{cmd} {name}: {err}");
            assert!(
                err.contains("not a wtmpdb table") && err.contains(what),
                "{err}"
            );
        }
    }
}

#[test]
fn json_stays_valid_when_a_read_fails_part_way() {
    // A real failure part-way: a corrupt page among the table's oldest rows, which `last`
    // reaches last and `lastlog` (by name) too.
    let (_d, path) = temp_db();
    let mut db = Database::open_read_write(&path).unwrap();
    let host = "h".repeat(200);
    // One user per row, named in time order: lastlog reaches the oldest rows last too.
    let names: Vec<String> = (0..4000).map(|i| format!("u{i:04}")).collect();
    let rows: Vec<NewEntry<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let i = i as i64;
            session(u, "pts/1", &host, (i + 1) * SEC, Some((i + 2) * SEC))
        })
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    drop(db);
    let c = rusqlite::Connection::open(&path).unwrap();
    let page: i64 = c
        .query_row(
            "SELECT pageno FROM dbstat WHERE name = 'wtmp' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    drop(c);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = ((page - 1) * size) as usize;
    bytes[at..at + size as usize].fill(0xa5);
    std::fs::write(&path, &bytes).unwrap();
    for args in [
        vec!["last", "--json", "-f", s(&path)],
        vec!["lastlog", "--json", "-f", s(&path)],
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)));
        assert!(v.is_object());
    }
    // The listing got part of the way before the failure.
    let o = run(&["last", "--json", "-f", s(&path)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v["entries"].as_array().unwrap().is_empty());
}

#[test]
fn the_local_time_of_epoch_minus_one_is_accepted_in_every_zone() {
    let (_d, path) = temp_db();
    drop(Database::open_read_write(&path).unwrap());
    // POSIX zone strings: no tz database needed. Local time of -1 in each.
    for (tz, local) in [
        ("UTC0", "1969-12-31 23:59:59"),
        ("EST5", "1969-12-31 18:59:59"),
        ("CET-1", "1970-01-01 00:59:59"),
        ("IST-5:30", "1970-01-01 05:29:59"),
        ("X-14", "1970-01-01 13:59:59"),
        ("Y+12", "1969-12-31 11:59:59"),
    ] {
        for opt in ["-t", "-s", "-p"] {
            let o = run_env(&["last", opt, local, "-f", s(&path)], &[("TZ", tz)]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "TZ={tz} {opt} {local}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    // An invalid time is still refused.
    let o = run_env(
        &["last", "-t", "1970-01-01 25:00:00", "-f", s(&path)],
        &[("TZ", "CET-1")],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
#[ignore = "needs root: a root reader is the one SQLite lets create -wal and -shm anywhere"]
fn a_copied_wal_database_read_as_root_leaves_no_files() {
    support::require_root();
    let (d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    db.login(&session("a", "pts/1", "h", 10 * SEC, None))
        .unwrap();
    drop(db);
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode = wal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(c);
    let copy_dir = d.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    let copy = copy_dir.join("wtmp.db");
    std::fs::copy(&path, &copy).unwrap();
    for args in [
        vec!["last", "-f", s(&copy)],
        vec!["who", "--no-logind", "-f", s(&copy)],
        vec!["lastlog", "-f", s(&copy)],
    ] {
        let o = run(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let files: Vec<_> = std::fs::read_dir(&copy_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["wtmp.db"], "{args:?}");
    }
    assert!(out(&run(&["last", "-f", s(&copy)])).starts_with("a "));
}

#[test]
fn a_cut_column_never_splits_an_escape() {
    let (_d, path) = temp_db();
    let db = Database::open_read_write(&path).unwrap();
    // 8 columns for the user: "abcdef" fits, its escape "\x1b" (4 bytes) does not.
    db.login(&session(
        "abcdef\x1bxyz",
        "pts/1",
        "h",
        10 * SEC,
        Some(20 * SEC),
    ))
    .unwrap();
    db.login(&session(
        "ab\u{202e}cdefg",
        "pts/2",
        "h",
        30 * SEC,
        Some(40 * SEC),
    ))
    .unwrap();
    let text = out(&run(&["last", "-f", s(&path)]));
    let users: Vec<&str> = text.lines().take(2).map(|l| &l[..8]).collect();
    assert_eq!(users, ["ab      ", "abcdef  "], "{text}");
    // Uncut with -w: every escape whole.
    let wide = out(&run(&["last", "-w", "-f", s(&path)]));
    assert!(
        wide.contains("ab\\u{202e}cdefg ") && wide.contains("abcdef\\x1bxyz "),
        "{wide}"
    );
}
