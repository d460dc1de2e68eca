//! Round trips through the public API (the query plans are checked in `queries.rs`).

use super::*;
use crate::time::Usec;

fn new_db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_read_write(&dir.path().join("sub/wtmp.db")).unwrap();
    (dir, db)
}

fn session<'a>(user: &'a str, tty: &'a str, login: Usec) -> NewEntry<'a> {
    NewEntry {
        kind: Kind::UserProcess,
        user,
        login,
        tty: Some(tty),
        host: Some("10.0.0.1"),
        service: Some("sshd"),
        ..NewEntry::default()
    }
}

#[test]
fn login_logout_round_trip_beyond_2106() {
    let (_d, db) = new_db();
    let after_2106 = 4_400_000_000 * 1_000_000;
    let id = db.login(&session("alice", "pts/0", after_2106)).unwrap();
    db.logout(id, after_2106 + 90 * 1_000_000).unwrap();
    // A second close keeps the first logout.
    db.logout(id, after_2106 + 999 * 1_000_000).unwrap();
    let rows: Vec<Entry> = db.entries(&Filter::default()).map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].login, after_2106);
    assert_eq!(rows[0].logout, Some(after_2106 + 90 * 1_000_000));
    assert!(matches!(db.logout(id + 1, 0), Err(Error::LogoutRows(0))));
}

#[test]
fn chunked_scan_returns_every_row_once_in_order() {
    let (_d, mut db) = new_db();
    // Many equal logins straddle chunk boundaries.
    let rows: Vec<NewEntry<'_>> = (0..5000)
        .map(|i| {
            let mut e = session("u", "pts/1", (i / 7) * 1_000_000);
            e.logout = if i % 3 == 0 { None } else { Some(i) };
            e
        })
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    let got: Vec<Entry> = db.entries(&Filter::default()).map(Result::unwrap).collect();
    assert_eq!(got.len(), 5000);
    let mut ids: Vec<i64> = got.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5000);
    for w in got.windows(2) {
        assert!(w[0].login >= w[1].login);
    }
}

#[test]
fn open_session_lookup_and_boot_queries() {
    let (_d, db) = new_db();
    let boot = NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login: 100,
        tty: Some("~"),
        ..NewEntry::default()
    };
    db.login(&boot).unwrap();
    let a = db.login(&session("alice", "pts/0", 200)).unwrap();
    let b = db.login(&session("alice", "pts/0", 300)).unwrap();
    assert_eq!(
        db.open_sessions("alice", "pts/0", "sshd", 2).unwrap(),
        vec![b, a]
    );
    assert_eq!(db.newest_open_on_tty("pts/0").unwrap(), Some(b));
    assert_eq!(db.boot_time().unwrap(), Some(100));
    assert_eq!(db.boot_logins().unwrap(), vec![100]);
    assert_eq!(db.first_login().unwrap(), Some(100));
}
