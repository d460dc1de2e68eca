//! Nothing is lost: a full disk and a SIGKILL mid-write leave every committed row in place
//! and the database consistent.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wtmpdb::storage::{Database, Kind, NewEntry};

#[path = "../../../tests/support/mod.rs"]
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const SEC: i64 = 1_000_000;

fn session(login: i64) -> NewEntry<'static> {
    NewEntry {
        kind: Kind::UserProcess,
        user: "someone-with-a-long-name",
        login,
        tty: Some("pts/17"),
        host: Some("a-rather-long-host-name.example.org"),
        service: Some("sshd"),
        ..NewEntry::default()
    }
}

fn scalar(path: &Path, sql: &str) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
}

#[test]
#[ignore = "needs root: mounts a tiny tmpfs"]
fn a_full_disk_keeps_every_committed_row() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = support::Tmpfs::mount(dir.path(), "size=192k") else {
        return;
    };
    let path = dir.path().join("wtmp.db");
    let db = Database::open_read_write(&path).unwrap();
    let mut committed = Vec::new();
    let err = loop {
        let t = committed.len() as i64 * SEC;
        match db.login(&session(t)) {
            Ok(id) => match db.logout(id, t + 5 * SEC) {
                Ok(()) => committed.push(id),
                Err(e) => break e,
            },
            Err(e) => break e,
        }
        assert!(committed.len() < 1_000_000, "the disk never filled");
    };
    let msg = err.to_string();
    assert!(msg.contains("full"), "{msg}");
    drop(db);
    // Reads still work on the full disk; every committed row is there, closed.
    assert_eq!(scalar(&path, "PRAGMA integrity_check"), "ok");
    let reader = Database::open_read_only(&path).unwrap();
    let rows: Vec<_> = reader
        .entries(&Default::default())
        .map(Result::unwrap)
        .collect();
    let mut ids: Vec<i64> = rows.iter().map(|e| e.id).collect();
    ids.sort();
    for id in &committed {
        assert!(ids.binary_search(id).is_ok(), "row {id} lost");
    }
    assert!(
        rows.iter()
            .filter(|e| committed.contains(&e.id))
            .all(|e| e.logout.is_some())
    );
    // The last failed write may have left room for a smaller row: fill what is left, so that
    // the command's write cannot fit either.
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(dir.path().join("filler")).unwrap();
        while filler.write_all(&[0; 512]).is_ok() {}
    }
    // The command reports the condition in one line and exits 1.
    let o = Command::new(BIN)
        .args(["boot", "-q", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "{:?}", o.stdout);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("disk is full"), "{err}");
    // And the failed write took nothing with it.
    assert_eq!(scalar(&path, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        scalar(&path, "SELECT count(*) FROM wtmp"),
        rows.len().to_string()
    );
}

#[test]
fn sigkill_during_rotate_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wtmp.db");
    let mut db = Database::open_read_write(&path).unwrap();
    let total = 300_000i64;
    db.insert_all((0..total).map(|i| session(i * SEC)), |_| {})
        .unwrap();
    drop(db);
    for delay_ms in [100u64, 700, 1500] {
        let mut child = Command::new(BIN)
            .args(["rotate", "-d", "0", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The next open rolls back whatever transaction was cut off (both files).
        let mut rows = scalar(&path, "SELECT count(*) FROM wtmp")
            .parse::<i64>()
            .unwrap();
        assert_eq!(scalar(&path, "PRAGMA integrity_check"), "ok");
        for archive in std::fs::read_dir(dir.path()).unwrap() {
            let p = archive.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("wtmp_") && name.ends_with(".db") {
                assert_eq!(scalar(&p, "PRAGMA integrity_check"), "ok");
                rows += scalar(&p, "SELECT count(*) FROM wtmp")
                    .parse::<i64>()
                    .unwrap();
            }
        }
        eprintln!(
            "kill at {delay_ms} ms: {} rows left in the database",
            scalar(&path, "SELECT count(*) FROM wtmp")
        );
        assert_eq!(rows, total, "after a kill at {delay_ms} ms");
    }
}
