//! The glibc mirror against the real readers: util-linux `last` and `utmpdump`, coreutils
//! `who`, each pointed at temporary files (the system's utmp/wtmp are never opened).
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use wtmpdb::legacy::{LegacyError, LegacySession, LegacySink, Mirror, MirrorPaths};
use wtmpdb::session::{self, NewSession};
use wtmpdb::time::USEC_PER_SEC;
use wtmpdb::{Database, Entry};

mod support;

/// 2026-11-21 10:00:00 UTC
const T1: i64 = 1_795_255_200 * USEC_PER_SEC;
const MINUTE: i64 = 60 * USEC_PER_SEC;

struct Files {
    _dir: tempfile::TempDir,
    utmp: PathBuf,
    wtmp: PathBuf,
    db: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let utmp = dir.path().join("utmp");
    let wtmp = dir.path().join("wtmp");
    std::fs::write(&utmp, b"").unwrap();
    std::fs::write(&wtmp, b"").unwrap();
    let db = dir.path().join("wtmp.db");
    Files {
        _dir: dir,
        utmp,
        wtmp,
        db,
    }
}

fn mirror(f: &Files) -> Mirror {
    let paths = MirrorPaths {
        utmp: f.utmp.clone(),
        wtmp: f.wtmp.clone(),
        ..MirrorPaths::default()
    };
    Mirror::from_option("utmpx", &paths).unwrap()
}

/// Runs a reader in UTC and the C locale; None when the tool is not installed (which fails
/// the test under `CI=true`).
fn run(tool: &str, args: &[&str], file: &Path) -> Option<String> {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            support::missing(&format!("{tool} is not installed"));
            return None;
        }
        Err(e) => panic!("{tool}: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

fn line_with<'a>(out: &'a str, word: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(word))
        .unwrap_or_else(|| panic!("no line for {word} in:\n{out}"))
}

#[test]
fn who_last_and_utmpdump_see_sessions() {
    let f = files();
    let m = mirror(&f);
    let db = Database::open_read_write(&f.db).unwrap();

    let alice = session::open_session(
        &db,
        &m,
        &NewSession {
            user: "alice",
            tty: Some("/dev/pts/3"),
            host: Some("192.0.2.10"),
            service: Some("test-sshd"),
            pid: None,
        },
        T1,
    )
    .unwrap();
    assert!(alice.warning.is_none(), "{:?}", alice.warning);
    let bob = session::open_session(
        &db,
        &m,
        &NewSession {
            user: "bob",
            tty: Some("pts/4"),
            host: Some("2001:db8::7"),
            service: Some("test-sshd"),
            pid: None,
        },
        T1 + 5 * MINUTE,
    )
    .unwrap();
    assert!(bob.warning.is_none(), "{:?}", bob.warning);

    if let Some(who) = run("who", &[], &f.utmp) {
        let a = line_with(&who, "alice");
        assert!(a.contains("pts/3"), "{who}");
        assert!(a.contains("Nov 21 10:00"), "{who}");
        assert!(a.contains("(192.0.2.10)"), "{who}");
        let b = line_with(&who, "bob");
        assert!(b.contains("pts/4") && b.contains("10:05"), "{who}");
    }

    let warning = session::close_session(&db, &m, &alice.session, T1 + 90 * MINUTE).unwrap();
    assert!(warning.is_none(), "{warning:?}");

    if let Some(who) = run("who", &[], &f.utmp) {
        assert!(
            !who.contains("alice"),
            "logged-out session still listed:\n{who}"
        );
        assert!(who.contains("bob"), "{who}");
    }

    if let Some(last) = run("last", &["-f"], &f.wtmp) {
        let a = line_with(&last, "alice");
        assert!(a.contains("pts/3"), "{last}");
        assert!(a.contains("192.0.2.10"), "{last}");
        assert!(a.contains("Sat Nov 21 10:00 - 11:30  (01:30)"), "{last}");
        let b = line_with(&last, "bob");
        assert!(b.contains("2001:db8::7"), "{last}");
        // No logout yet. `last` says "still logged in" only when the session's process
        // belongs to that user (loginuid or tty owner); "bob" is not a real account.
        assert!(
            b.contains("Sat Nov 21 10:05   still logged in")
                || b.contains("Sat Nov 21 10:05    gone - no logout"),
            "{last}"
        );
    }
    // -i prints ut_addr_v6, so the binary address must be right too.
    if let Some(last) = run("last", &["-i", "-f"], &f.wtmp) {
        assert!(line_with(&last, "alice").contains("192.0.2.10"), "{last}");
        assert!(line_with(&last, "bob").contains("2001:db8::7"), "{last}");
    }

    if let Some(dump) = run("utmpdump", &[], &f.utmp) {
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2, "{dump}");
        // alice's slot was overwritten in place by her DEAD_PROCESS record.
        assert!(lines[0].starts_with("[8] ["), "{dump}");
        assert!(lines[0].contains("[ts/3] [        ]"), "{dump}");
        assert!(
            lines[0].contains("[2026-11-21T11:30:00,000000+00:00]"),
            "{dump}"
        );
        assert!(lines[1].starts_with("[7] ["), "{dump}");
        assert!(
            lines[1].contains("[ts/4] [bob     ] [pts/4       ] [2001:db8::7"),
            "{dump}"
        );
    }
    if let Some(dump) = run("utmpdump", &[], &f.wtmp) {
        assert_eq!(dump.lines().count(), 3, "{dump}");
        let pid = std::process::id();
        assert!(
            dump.contains(&format!("[7] [{pid:05}] [ts/3] [alice")),
            "{dump}"
        );
    }

    // The database got the same sessions, with /dev/ stripped.
    let rows: Vec<Entry> = db
        .entries(&Default::default())
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    let a = rows.iter().find(|r| r.user == "alice").unwrap();
    assert_eq!(a.tty.as_deref(), Some("pts/3"));
    assert_eq!(a.logout, Some(T1 + 90 * MINUTE));
}

#[test]
fn session_without_tty_pairs_login_and_logout() {
    let f = files();
    let m = mirror(&f);
    let db = Database::open_read_write(&f.db).unwrap();
    let new = |pid| NewSession {
        user: "carol",
        tty: None,
        host: Some("host.example"),
        service: Some("ftpd"),
        pid: Some(pid),
    };
    // Two overlapping terminal-less sessions whose PIDs end in the same digits.
    let a = session::open_session(&db, &m, &new(12_345), T1).unwrap();
    let b = session::open_session(&db, &m, &new(2_345), T1 + MINUTE).unwrap();
    assert!(a.warning.is_none() && b.warning.is_none());
    assert!(
        session::close_session(&db, &m, &a.session, T1 + 10 * MINUTE)
            .unwrap()
            .is_none()
    );
    if let Some(who) = run("who", &[], &f.utmp) {
        assert_eq!(who.lines().count(), 1, "{who}");
        assert!(who.contains("ftpd:2345"), "{who}");
    }
    if let Some(last) = run("last", &["-w", "-f"], &f.wtmp) {
        let lines: Vec<&str> = last.lines().filter(|l| l.starts_with("carol")).collect();
        assert_eq!(lines.len(), 2, "{last}");
        assert!(lines[0].contains("ftpd:2345"), "{last}");
        assert!(lines[1].contains("ftpd:12345"), "{last}");
        assert!(lines[1].contains("10:00 - 10:10  (00:10)"), "{last}");
    }
}

/// The raw `ut_tv.tv_sec` of each record (offset 340 on x86_64 glibc).
#[cfg(target_arch = "x86_64")]
fn raw_seconds(file: &Path) -> Vec<u32> {
    let b = std::fs::read(file).unwrap();
    assert_eq!(b.len() % 384, 0);
    b.chunks(384)
        .map(|r| u32::from_ne_bytes(r[340..344].try_into().unwrap()))
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn times_after_2038_are_unsigned_and_after_2106_clamped() {
    let f = files();
    let m = mirror(&f);
    // 2040-01-01 00:00:00 UTC and 2110-01-01 00:00:00 UTC
    let y2040 = 2_208_988_800 * USEC_PER_SEC;
    let y2110 = 4_417_977_600 * USEC_PER_SEC;
    let s = LegacySession::new("dave", Some("pts/9"), None, None, 1);
    m.login(&s, y2040).unwrap();
    m.logout(&s, y2040 + 60 * MINUTE).unwrap();
    m.login(&s, y2110).unwrap();
    assert_eq!(
        raw_seconds(&f.wtmp),
        vec![2_208_988_800, 2_208_992_400, u32::MAX]
    );
    // Readers built on glibc before 2.40 take the field as signed: 2040 shows as 1904
    // (2^32 seconds earlier). Readers on glibc 2.40 and later show 2040. Either way the
    // tool must not fail on such records.
    if let Some(dump) = run("utmpdump", &[], &f.wtmp) {
        assert_eq!(dump.lines().count(), 3, "{dump}");
        eprintln!("utmpdump of post-2038 records:\n{dump}");
    }
    if let Some(last) = run("last", &["-f"], &f.wtmp) {
        eprintln!("last of post-2038 records:\n{last}");
    }
}

#[test]
fn missing_files_are_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let paths = MirrorPaths {
        utmp: dir.path().join("no-utmp"),
        wtmp: dir.path().join("no-wtmp"),
        ..MirrorPaths::default()
    };
    let m = Mirror::from_option("utmpx", &paths).unwrap();
    let s = LegacySession::new("erin", Some("pts/1"), None, None, 1);
    let err = m.login(&s, T1).unwrap_err();
    let LegacyError::Both(utmp, wtmp) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&**utmp, LegacyError::File { path, op: "pututxline", source }
            if path == &paths.utmp && source.kind() == std::io::ErrorKind::NotFound),
        "{utmp:?}"
    );
    assert!(
        matches!(&**wtmp, LegacyError::File { path, source, .. }
            if path == &paths.wtmp && source.kind() == std::io::ErrorKind::NotFound),
        "{wtmp:?}"
    );
    assert!(err.to_string().contains("no-utmp"), "{err}");
    assert!(!paths.utmp.exists() && !paths.wtmp.exists());

    // A session is still recorded; the mirror failure is only a warning.
    let db = Database::open_read_write(&dir.path().join("wtmp.db")).unwrap();
    let opened = session::open_session(
        &db,
        &m,
        &NewSession {
            user: "erin",
            tty: Some("pts/1"),
            ..NewSession::default()
        },
        T1,
    )
    .unwrap();
    assert!(opened.warning.is_some());
    assert_eq!(
        db.newest_open_on_tty("pts/1").unwrap(),
        Some(opened.session.id.to_int())
    );
}

#[test]
fn stale_entry_on_the_same_line_is_replaced() {
    let f = files();
    let m = mirror(&f);
    // Left behind by a crashed session whose writer derived ids differently.
    let mut stale = LegacySession::new("ghost", Some("pts/7"), None, None, 1);
    stale.id = *b"7\0\0\0";
    m.login(&stale, T1).unwrap();
    let other = LegacySession::new("zed", Some("pts/8"), None, None, 2);
    m.login(&other, T1).unwrap();

    let gina = LegacySession::new("gina", Some("pts/7"), None, None, 3);
    m.login(&gina, T1 + MINUTE).unwrap();
    if let Some(who) = run("who", &[], &f.utmp) {
        assert!(!who.contains("ghost"), "{who}");
        assert!(who.contains("gina") && who.contains("zed"), "{who}");
    }
    m.logout(&gina, T1 + 2 * MINUTE).unwrap();
    if let Some(who) = run("who", &[], &f.utmp) {
        assert_eq!(who.lines().count(), 1, "{who}");
        assert!(who.contains("zed"), "{who}");
    }
    if let Some(dump) = run("utmpdump", &[], &f.utmp) {
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2, "{dump}");
        assert!(lines[0].starts_with("[8] [00003] [7"), "{dump}");
    }
    if let Some(dump) = run("utmpdump", &[], &f.wtmp) {
        // wtmp carries the adopted id too, login and logout alike.
        let gina: Vec<&str> = dump.lines().filter(|l| l.contains("[00003]")).collect();
        assert_eq!(gina.len(), 2, "{dump}");
        assert!(gina.iter().all(|l| l.contains("] [7")), "{dump}");
    }
}

#[test]
fn late_logout_leaves_a_newer_session_on_the_line_alone() {
    let f = files();
    let m = mirror(&f);
    let old = LegacySession::new("hank", Some("pts/5"), None, None, 10);
    m.login(&old, T1).unwrap();
    // The pty is reused before the old session's close is recorded.
    let new = LegacySession::new("ivy", Some("pts/5"), None, None, 11);
    m.login(&new, T1 + MINUTE).unwrap();
    m.logout(&old, T1 + 2 * MINUTE).unwrap();
    if let Some(who) = run("who", &[], &f.utmp) {
        assert_eq!(who.lines().count(), 1, "{who}");
        assert!(who.contains("ivy"), "{who}");
    }
    if let Some(dump) = run("utmpdump", &[], &f.utmp) {
        assert_eq!(dump.lines().count(), 1, "{dump}");
        assert!(dump.starts_with("[7] [00011]"), "{dump}");
    }
    // wtmp still gets the logout: it is a log, not a state.
    if let Some(dump) = run("utmpdump", &[], &f.wtmp) {
        assert_eq!(dump.lines().count(), 3, "{dump}");
        assert!(
            dump.lines().last().unwrap().starts_with("[8] [00010]"),
            "{dump}"
        );
    }
}

#[test]
fn database_failure_at_close_still_ends_the_legacy_session() {
    let f = files();
    let m = mirror(&f);
    let db = Database::open_read_write(&f.db).unwrap();
    let new = NewSession {
        user: "judy",
        tty: Some("pts/2"),
        ..NewSession::default()
    };
    let opened = session::open_session(&db, &m, &new, T1).unwrap();
    assert!(opened.warning.is_none());
    let mut lost = opened.session.clone();
    lost.id = wtmpdb::session::SessionId::Row(lost.id.to_int() + 1000);
    let err = session::close_session(&db, &m, &lost, T1 + MINUTE).unwrap_err();
    assert!(
        matches!(err.source, wtmpdb::storage::Error::LogoutRows(0)),
        "{err}"
    );
    assert!(err.warning.is_none());
    if let Some(who) = run("who", &[], &f.utmp) {
        assert_eq!(who, "", "who still lists the closed session");
    }
}
