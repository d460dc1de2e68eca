//! `wtmpdb lastb`: failed logins in util-linux lastb's layout, read from the failures' file
//! of the database `-f` names, by root alone; and `wtmpdb rotate`'s retention of them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wtmpdb::storage::{FailedFiles, FailureStore, NewFailure, failures_path};

#[path = "../../../tests/support/mod.rs"]
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const SEC: i64 = 1_000_000;
const DAY: i64 = 86_400 * SEC;
/// 2026-12-06 10:29:05 UTC.
const T: i64 = 1_796_552_945 * SEC;

fn run_as(prefix: &[&str], args: &[&str]) -> Output {
    let (program, pre) = match prefix.split_first() {
        Some((p, rest)) => (PathBuf::from(p), rest.to_vec()),
        None => (PathBuf::from(BIN), Vec::new()),
    };
    Command::new(program)
        .args(pre)
        .args(args)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    run_as(&[], args)
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn record(db: &Path, at: i64, user: &str, host: &str) {
    let s = FailureStore::open_write(&failures_path(db), &FailedFiles::default()).unwrap();
    s.record(&NewFailure {
        time: at,
        user,
        tty: Some("ssh:notty"),
        host: Some(host),
        service: Some("sshd"),
        pid: Some(4242),
    })
    .unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn lastb_prints_as_util_linux_lastb() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    record(&db, T, "root", "192.0.2.7");
    record(
        &db,
        T + 61 * SEC,
        "a-very-long-user-name",
        "2001:db8::1234:5678:9abc",
    );
    let out = ok(&run(&["lastb", "-f", s(&db)]));
    let footer = format!(
        "{} begins Sun Dec  6 10:29:05 2026",
        failures_path(&db).display()
    );
    assert_eq!(
        out,
        format!(
            "a-very-l ssh:notty    2001:db8::1234:5 Sun Dec  6 10:30 - 10:30  (00:00)\n\
             root     ssh:notty    192.0.2.7        Sun Dec  6 10:29 - 10:29  (00:00)\n\
             \n{footer}\n"
        )
    );
    // -n, a user filter, -w, -F, --time-format.
    let out = ok(&run(&["lastb", "-f", s(&db), "-n", "1"]));
    assert!(
        out.starts_with("a-very-l ") && out.lines().count() == 3,
        "{out}"
    );
    let out = ok(&run(&["lastb", "-f", s(&db), "-1"]));
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = ok(&run(&["lastb", "-f", s(&db), "root"]));
    assert!(
        out.starts_with("root ") && out.lines().count() == 3,
        "{out}"
    );
    let out = ok(&run(&["lastb", "-f", s(&db), "-w"]));
    assert!(
        out.contains("a-very-long-user-name ssh:notty    2001:db8::1234:5678:9abc"),
        "{out}"
    );
    let out = ok(&run(&["lastb", "-f", s(&db), "-F", "root"]));
    assert!(
        out.contains("Sun Dec  6 10:29:05 2026 - Sun Dec  6 10:29:05 2026  (00:00)"),
        "{out}"
    );
    let out = ok(&run(&[
        "lastb",
        "-f",
        s(&db),
        "--time-format",
        "iso",
        "root",
    ]));
    assert!(out.contains("2026-12-06T10:29:05+0000"), "{out}");
    let out = ok(&run(&["lastb", "-f", s(&db), "-s", "2026-12-06 10:30"]));
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = ok(&run(&["lastb", "-f", s(&db), "-t", "2026-12-06 10:29:59"]));
    assert!(out.starts_with("root "), "{out}");
    // -j: last's JSON.
    let out = ok(&run(&["lastb", "-f", s(&db), "-j"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.to_string().contains("a-very-long-user-name"), "{out}");
    // The session database itself holds none of them.
    assert!(!db.exists());
}

#[test]
fn lastb_without_any_failure_recorded_lists_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let out = ok(&run(&["lastb", "-f", s(&db)]));
    assert!(
        out.contains("has no entries") || out.trim().is_empty() || out.contains("begins"),
        "{out}"
    );
    assert!(!failures_path(&db).exists(), "a read creates nothing");
}

#[test]
fn rotate_applies_the_retention_to_failures() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let now = wtmpdb::time::now();
    for d in [200, 100, 50, 10, 1] {
        record(&db, now - d * DAY, "x", "192.0.2.1");
    }
    let out = ok(&run(&["rotate", "-f", s(&db)]));
    assert!(out.contains("2 failed login attempts forgotten"), "{out}");
    let out = ok(&run(&["rotate", "-f", s(&db), "--failed-max", "1"]));
    assert!(out.contains("2 failed login attempts forgotten"), "{out}");
    let out = ok(&run(&["lastb", "-f", s(&db)]));
    assert_eq!(out.lines().count(), 3, "{out}");
    // Through the daemon, whose Rotate applies the defaults: refused, not ignored.
    let o = run(&["rotate", "-f", "varlink", "--failed-max", "5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--failed-max is not part of"));
}

#[test]
#[ignore = "needs root: runs wtmpdb lastb as nobody"]
fn nobody_gets_one_clear_error_and_never_the_data() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("w.db");
    record(&db, T, "hunter2", "192.0.2.7");
    let bin = dir.path().join("wtmpdb-bin");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        s(&bin),
    ];
    for args in [
        vec!["lastb", "-f", s(&db)],
        vec!["lastb", "-f", s(&db), "-j"],
    ] {
        let o = run_as(&nobody, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(o.stdout.is_empty(), "no data");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("failed logins are readable only by root"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }
    // Nor through any file: the failures' file and its side files are root's alone.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("-failed") {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", p.display());
            assert!(std::fs::read(&p).is_ok());
            let o = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                !o.status.success() && o.stdout.is_empty(),
                "{}",
                p.display()
            );
        }
    }
    // And root reads them.
    let out = ok(&run(&["lastb", "-f", s(&db)]));
    assert!(out.starts_with("hunter2 "), "{out}");
}

/// One glibc x86_64 `struct utmp` as login and sshd write into btmp.
fn utmp(ut_type: i16, line: &str, user: &str, host: &str, sec: u32, pid: i32) -> [u8; 384] {
    let mut u = [0u8; 384];
    let put = |u: &mut [u8; 384], at: usize, v: &[u8]| u[at..at + v.len()].copy_from_slice(v);
    put(&mut u, 0, &ut_type.to_le_bytes());
    put(&mut u, 4, &pid.to_le_bytes());
    put(&mut u, 8, line.as_bytes());
    put(&mut u, 44, user.as_bytes());
    put(&mut u, 76, host.as_bytes());
    put(&mut u, 340, &sec.to_le_bytes());
    u
}

/// `wtmpdb import --btmp` of generated btmp files, then `wtmpdb lastb` prints the lines
/// util-linux `lastb -f` prints of the same files (the footer names its own file).
#[test]
fn imported_btmp_lists_as_util_linux_lastb_lists_the_file() {
    let Some(lastb) = support::tool("lastb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let btmp = dir.path().join("btmp");
    let t = (T / SEC) as u32;
    let mut bytes = Vec::new();
    for (i, (ty, line, user, host)) in [
        (6, "ssh:notty", "root", "192.0.2.7"),
        (6, "ssh:notty", "admin", "2001:db8::1"),
        (7, "tty1", "alice", ""),
        (
            6,
            "ssh:notty",
            "a-very-long-user-name",
            "host.example.org.long.name",
        ),
        (6, "pts/3", "", "192.0.2.9"),
    ]
    .into_iter()
    .enumerate()
    {
        bytes.extend(utmp(
            ty,
            line,
            user,
            host,
            t + 3600 * i as u32,
            100 + i as i32,
        ));
    }
    std::fs::write(&btmp, &bytes).unwrap();
    let db = dir.path().join("w.db");
    let out = ok(&run(&["import", "--btmp", "-f", s(&db), s(&btmp)]));
    assert!(out.contains("5 records, 5 failed logins added"), "{out}");
    let again = ok(&run(&["import", "--btmp", "-f", s(&db), s(&btmp)]));
    assert!(
        again.contains("5 records, 0 failed logins added"),
        "{again}"
    );
    let body = |s: &str| s.split("\n\n").next().unwrap().to_string();
    for args in [&[][..], &["-w"], &["-F"], &["-n", "2"], &["root"]] {
        let theirs = Command::new(&lastb)
            .args(["-f", s(&btmp)])
            .args(args)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let theirs = String::from_utf8(theirs.stdout).unwrap();
        let ours = ok(&run(&[&["lastb", "-f", s(&db)][..], args].concat()));
        assert_eq!(body(&ours), body(&theirs), "lastb {args:?}");
        assert!(theirs.contains("btmp begins"), "{theirs}");
    }
}
