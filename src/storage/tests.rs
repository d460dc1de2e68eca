//! Round trips through the public API (the query plans are checked in `queries.rs`).

use super::*;
use crate::time::Usec;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

/// Regression (issue 8, finding 2): `rotate -d 0` moved open sessions and the running boot,
/// so their logouts were lost, and a new row took an archived row's ID.
#[test]
fn rotate_keeps_the_running_boot_its_open_sessions_and_the_largest_id() {
    let (dir, mut db) = new_db();
    let boot = |login, logout| NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login,
        logout,
        tty: Some("~"),
        ..NewEntry::default()
    };
    let closed = |mut e: NewEntry<'static>| {
        e.logout = Some(e.login + 5);
        e
    };
    let old_boot = db.login(&boot(100, Some(190))).unwrap();
    let crashed = db.login(&session("a", "pts/1", 110)).unwrap();
    let running = db.login(&boot(200, None)).unwrap();
    let open = db.login(&session("b", "pts/2", 210)).unwrap();
    let done = db.login(&closed(session("c", "pts/3", 220))).unwrap();
    let newest = db.login(&closed(session("d", "pts/4", 230))).unwrap();
    let archive = dir.path().join("archive.db");
    // Every row is older than the threshold.
    assert_eq!(db.rotate(i64::MAX, Some(&archive)).unwrap(), 3);
    let ids = |db: &Database| -> Vec<i64> {
        let mut v: Vec<i64> = db
            .entries(&Filter::default())
            .map(|e| e.unwrap().id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&db), vec![running, open, newest]);
    let moved = Database::open_read_only(&archive).unwrap();
    let mut users: Vec<String> = moved
        .entries(&Filter::default())
        .map(|e| e.unwrap().user)
        .collect();
    users.sort();
    assert_eq!(users, ["a", "c", "reboot"]);
    let _ = (old_boot, crashed, done);
    // The open session's logout still finds its row; a new row gets a fresh ID.
    db.logout(open, 300).unwrap();
    assert!(db.login(&session("e", "pts/5", 310)).unwrap() > newest);
    assert_eq!(db.newest_boot().unwrap(), Some((running, None)));
    // Nothing left to move: no archive write at all.
    let again = dir.path().join("again.db");
    db.logout(newest, 400).ok();
    assert_eq!(db.rotate(205, Some(&again)).unwrap(), 0);
    assert!(!again.exists());
}

#[test]
fn rotate_without_boot_rows_keeps_every_open_session() {
    let (dir, mut db) = new_db();
    let open = db.login(&session("a", "pts/1", 10)).unwrap();
    let mut e = session("b", "pts/2", 20);
    e.logout = Some(30);
    db.login(&e).unwrap();
    db.login(&session("c", "pts/3", 40)).unwrap();
    assert_eq!(
        db.rotate(i64::MAX, Some(&dir.path().join("a.db"))).unwrap(),
        1
    );
    db.logout(open, 50).unwrap();
}

/// Regression: in WAL mode two files cannot commit together, so rotate commits the archive
/// first and the delete second. Killed in between, the batch is in both files; the next
/// rotate must update those copies (the logout may have come since) instead of adding them
/// again, and a row of a replaced database that happens to have the same ID is not taken
/// for one.
#[test]
fn rotate_after_a_kill_between_its_two_commits_keeps_every_row_once() {
    let (dir, mut db) = new_db();
    let mode: String = db
        .conn
        .query_row(queries::JOURNAL_MODE, [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut e = session("a", "pts/1", 10);
    e.logout = Some(20);
    let a = db.login(&e).unwrap();
    let b = db.login(&session("b", "pts/2", 30)).unwrap();
    db.login(&session("keep", "pts/3", 40)).unwrap();
    let archive = dir.path().join("archive.db");
    // What the killed rotate committed in the archive: a and b (still open then), plus a
    // copy of an older database's row 2 that is another event.
    let whole = |id: i64| -> super::write::WholeRow {
        db.conn
            .query_row(queries::ROW_BY_ID, [id], super::write::whole_row)
            .unwrap()
    };
    let mut other = whole(b);
    other[2] = rusqlite::types::Value::Text("someone else".into());
    {
        let mut arch = db.open_archive(&archive).unwrap();
        arch.archive_copies(&[other], &[]).unwrap();
        arch.archive_copies(&[whole(a), whole(b)], &[]).unwrap();
    }
    // b's logout comes before the rotate runs again.
    db.logout(b, 35).unwrap();
    assert_eq!(db.rotate(35, Some(&archive)).unwrap(), 2);
    let arch = Database::open_read_only(&archive).unwrap();
    let rows: Vec<Entry> = arch
        .entries(&Filter::default())
        .map(Result::unwrap)
        .collect();
    let got: Vec<(&str, Option<Usec>)> = rows.iter().map(|r| (r.user.as_str(), r.logout)).collect();
    assert_eq!(
        got,
        [("someone else", None), ("b", Some(35)), ("a", Some(20))]
    );
    // The marks are gone once the delete committed.
    let marks: i64 = arch
        .conn
        .query_row(queries::COUNT_ROTATED, [], |r| r.get(0))
        .unwrap();
    assert_eq!(marks, 0);
    let live: Vec<String> = db
        .entries(&Filter::default())
        .map(|r| r.unwrap().user)
        .collect();
    assert_eq!(live, ["keep"]);
}

/// Regression: two imports of the same file at the same time added every row twice: each
/// decided at its start, before the other had committed anything, that the table held none
/// of the file's rows, and matched only rows older than its start. Here the other import
/// commits all its rows after this one has started, before its first batch.
#[test]
fn import_rows_skips_what_another_import_committed_meanwhile() {
    let (dir, mut db) = new_db();
    let path = dir.path().join("sub/wtmp.db");
    let mut rows = vec![
        (session("a", "pts/1", 10), 0),
        (session("a", "pts/1", 10), 1),
        (session("b", "pts/2", 20), 0),
    ];
    rows[0].0.logout = Some(10);
    let other = rows.clone();
    let mut other_done = false;
    let rows = rows.into_iter().inspect(|_| {
        if !std::mem::replace(&mut other_done, true) {
            let mut them = Database::open_read_write(&path).unwrap();
            let mut n = 0;
            assert_eq!(
                them.import_rows(other.clone(), 10..=20, &mut n, |_| {})
                    .unwrap(),
                3
            );
        }
    });
    let mut n = 0;
    assert_eq!(db.import_rows(rows, 10..=20, &mut n, |_| {}).unwrap(), 0);
    assert_eq!(db.entries(&Filter::default()).count(), 3);
}

/// Each batch of an import into a live database is copied into the database file by the
/// import itself, right after its commit, and the log emptied: a session write checkpoints
/// after its own commit, and a batch left in the log (a thousand index pages and more) made
/// the login that came next copy it, for tens of milliseconds. Before, a batch was copied
/// only once the log held `WalSettings::CHECKPOINT_PAGES` pages, and by whoever came first.
#[test]
fn a_live_import_leaves_no_batch_in_the_log() {
    let (dir, mut db) = new_db();
    let wal = dir.path().join("sub/wtmp.db-wal");
    db.login(&session("live", "pts/0", 5)).unwrap();
    let names: Vec<(String, String)> = (0..40)
        .map(|i| (format!("user{i}"), format!("pts/{i}")))
        .collect();
    // Few enough rows that the log stays under the checkpoint mark.
    let rows: Vec<(NewEntry<'_>, u32)> = (0..200)
        .map(|i| {
            let (user, tty) = &names[i % names.len()];
            let mut e = session(user, tty, 1_000 + i as Usec);
            e.logout = Some(2_000 + i as Usec);
            (e, 0)
        })
        .collect();
    let mut logs = Vec::new();
    let mut n = 0;
    let added = db
        .import_rows(rows, 1_000..=1_199, &mut n, |_| {
            logs.push(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0))
        })
        .unwrap();
    assert_eq!(added, 200);
    assert!(!logs.is_empty());
    assert!(
        logs.iter().all(|&len| len == 0),
        "log after each batch: {logs:?}"
    );
    assert_eq!(db.entries(&Filter::default()).count(), 201);
}

/// A WAL database without its `-wal` file is read without locks; a checkpoint into the file
/// meanwhile must fail the read (it may mix two states), never give a mixed listing.
#[test]
fn an_unlocked_read_fails_when_the_file_changes_under_it() {
    let (dir, db) = new_db();
    let path = dir.path().join("sub/wtmp.db");
    for i in 0..1000 {
        db.login(&session("u", "pts/1", i)).unwrap();
    }
    drop(db);
    // A program that does not keep the side files (as upstream's): its close checkpoints
    // and deletes them.
    let other = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = other
        .query_row(queries::COUNT_ROWS, [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1000);
    drop(other);
    assert!(!files::side_file(&path, "-wal").exists());
    let reader = Database::open_read_only(&path).unwrap();
    assert!(reader.unlocked.is_some());
    let mut rows = reader.entries(&Filter::default());
    assert!(rows.next().unwrap().is_ok());
    // A writer of ours, and a checkpoint into the database file.
    let writer = Database::open_read_write(&path).unwrap();
    writer.login(&session("late", "pts/2", 5000)).unwrap();
    writer.checkpoint_now();
    drop(writer);
    let failed = rows.find_map(|r| r.err());
    assert!(
        matches!(failed, Some(Error::ChangedWhileUnlocked { .. })),
        "{failed:?}"
    );
}

#[test]
fn a_login_records_its_process_also_where_the_schema_steps_were_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.db");
    // The table only, as a login into a large upstream file leaves it.
    let db = Database::open(&path, &OpenOptions::read_write().migrate(Migrate::Never)).unwrap();
    assert_eq!(db.schema_version().unwrap(), 0);
    let me = crate::process::Process::current(std::process::id() as i32);
    let id = db
        .login_with_process(&session("alice", "pts/0", 10), &me)
        .unwrap();
    let id2 = db
        .login_with_process(&session("bob", "pts/1", 20), &me)
        .unwrap();
    let open = db.open_since(0).unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!((open[0].entry.id, open[1].entry.id), (id, id2));
    assert_eq!(open[0].process, Some(me));
    // A row written without a process (as upstream writes) has none.
    db.login(&session("carol", "pts/2", 30)).unwrap();
    let open = db.open_since(15).unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[1].process, None);
    // A reader of a file without the table reads no process.
    let other = dir.path().join("plain.db");
    let w = Database::open(&other, &OpenOptions::read_write().migrate(Migrate::Never)).unwrap();
    w.login(&session("dave", "pts/3", 40)).unwrap();
    let r = Database::open_read_only(&other).unwrap();
    assert_eq!(r.open_since(0).unwrap()[0].process, None);
}

#[test]
fn the_newest_login_of_each_user_comes_from_the_user_index() {
    let (_d, db) = new_db();
    for (u, t) in [("b", 5), ("a", 1), ("b", 9), ("a", 3), ("c", 2)] {
        db.login(&session(u, "pts/0", t)).unwrap();
    }
    db.login(&NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login: 100,
        ..NewEntry::default()
    })
    .unwrap();
    let mut users = Vec::new();
    let mut after = String::new();
    while let Some(u) = db.next_user(&after).unwrap() {
        users.push(u.clone());
        after = u;
    }
    assert_eq!(users, ["a", "b", "c", "reboot"]);
    let newest = |u: &str| db.newest_session_of(u).unwrap().map(|e| e.login);
    assert_eq!(
        (newest("a"), newest("b"), newest("c")),
        (Some(3), Some(9), Some(2))
    );
    assert_eq!(newest("reboot"), None, "a boot is no login");
}

#[test]
fn a_login_whose_process_cannot_be_recorded_writes_no_row() {
    // A process table another tool made, which refuses every row: the login fails as a
    // whole (one transaction), never a row without its process.
    let (_d, db) = new_db();
    db.connection()
        .execute_batch(
            // Lower case: the check that SQL lives in queries.rs looks for capitals.
            "drop table wtmp_process; create table wtmp_process(ID integer primary key, \
             PID integer not null check (PID < 0), StartTime integer)",
        )
        .unwrap();
    let me = crate::process::Process::current(std::process::id() as i32);
    assert!(
        db.login_with_process(&session("alice", "pts/0", 10), &me)
            .is_err()
    );
    assert!(db.is_empty().unwrap());
}

#[test]
fn rotate_takes_the_processes_of_the_rows_it_moves() {
    let (dir, mut db) = new_db();
    let me = crate::process::Process::current(std::process::id() as i32);
    for t in [10, 20, 30] {
        let id = db
            .login_with_process(&session("a", "pts/0", t), &me)
            .unwrap();
        db.logout(id, t + 1).unwrap();
    }
    db.login_with_process(&session("a", "pts/0", 1_000), &me)
        .unwrap();
    let moved = db.rotate(25, Some(&dir.path().join("archive.db"))).unwrap();
    assert_eq!(moved, 2);
    let left: i64 = db
        .connection()
        .query_row("select count(*) from wtmp_process", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 2);
}

/// Every commit of the live database is made durable before the write returns (see
/// `WalSettings`: SQLite does not sync a WAL commit under `synchronous=NORMAL`, the writer
/// does). A commit without `synced()` right after it would be lost by a power cut after the
/// call returned; this test reads the writing code and finds any such commit.
#[test]
fn every_commit_of_a_writer_is_followed_by_its_sync() {
    for (file, text) in [
        ("write.rs", include_str!("write.rs")),
        ("mod.rs", include_str!("mod.rs")),
    ] {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim();
            if !l.contains(".commit()") {
                continue;
            }
            // The archive's own transaction is a rollback journal at synchronous=FULL.
            if lines[..i]
                .iter()
                .rev()
                .take(60)
                .any(|p| p.contains("fn archive_copies"))
            {
                continue;
            }
            let next: String = lines[i + 1..(i + 4).min(lines.len())].join(" ");
            assert!(
                next.contains("synced()"),
                "{file}:{}: a commit without synced() after it: {l}",
                i + 1
            );
        }
    }
}

/// Regression: a WAL database read through a symbolic link (Debian's
/// /var/lib/wtmpdb/wtmp.db -> ../../log/wtmp.db) has its log beside the linked file, not
/// beside the link; it was taken for a WAL file without log and read unlocked, without the
/// rows still in the log (a logout by tty then found no open session).
#[test]
fn a_wal_database_read_through_a_link_sees_the_rows_in_its_log() {
    let (dir, db) = new_db();
    let path = dir.path().join("sub/wtmp.db");
    db.login(&session("u", "pts/1", 10)).unwrap();
    assert!(files::side_file(&path, "-wal").exists());
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let reader = Database::open_read_only(&link).unwrap();
    assert!(reader.unlocked.is_none());
    assert!(reader.newest_open_on_tty("pts/1").unwrap().is_some());
    drop(db);
}

/// The fcntl locks this process holds on `file`, as `/proc/locks` lists them (type, start),
/// in order. The list is read five times and what any reading shows counts: read in pieces, it
/// skips a line when a lock listed before that point goes away between two reads, and other
/// tests take and drop locks all the time (`proc_locks_tests` churns them on purpose). The
/// locks on `file` do not change meanwhile: only the calling test takes them.
pub(crate) fn locks_held_here(file: &Path) -> Vec<(String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        seen.extend(one_reading_of_locks_held_here(file));
    }
    seen.into_iter().collect()
}

fn one_reading_of_locks_held_here(file: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file).unwrap();
    let dev = format!(
        "{:02x}:{:02x}:{}",
        libc::major(m.dev()),
        libc::minor(m.dev()),
        m.ino()
    );
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // ID: POSIX ADVISORY READ|WRITE PID MAJ:MIN:INO START END ("->" marks a waiter)
            (f.len() == 8 && f[1] == "POSIX" && f[4] == me && f[5] == dev)
                .then(|| (f[3].to_string(), f[6].to_string()))
        })
        .collect()
}

/// Another open in a process that holds a connection leaves that connection's locks alone.
/// Closing any descriptor of a file drops every fcntl lock the process holds on it (POSIX),
/// and wtmpdbd keeps its writer's connection open while it serves reads on other threads: a
/// read that peeked at the database file's header, or a writer that fixed a side file's mode
/// through a read descriptor, took the shared locks of the index away (another process then
/// rebuilds it under the kept connection) and the database file's lock (another program's
/// close then deletes the side files the connection writes to).
#[test]
fn another_open_in_the_process_keeps_a_kept_connections_locks() {
    let (_d, db) = new_db();
    db.login(&session("alice", "pts/0", 1)).unwrap();
    let file = db.file().to_path_buf();
    let index = files::side_file(&file, "-shm");
    let (on_file, on_index) = (locks_held_here(&file), locks_held_here(&index));
    assert!(!on_index.is_empty(), "a connection holds index locks");
    drop(Database::open_read_only(db.path()).unwrap());
    assert_eq!(locks_held_here(&file), on_file, "after a read open");
    assert_eq!(locks_held_here(&index), on_index, "after a read open");
    // A chmod of the database: the next writer gives the side files its mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    drop(Database::open_read_write(db.path()).unwrap());
    let mode = std::fs::metadata(&index).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the side files follow the database's mode");
    assert_eq!(
        locks_held_here(&file),
        on_file,
        "after a writer fixed the modes"
    );
    assert_eq!(
        locks_held_here(&index),
        on_index,
        "after a writer fixed the modes"
    );
    // And the kept connection still writes where a fresh reader reads.
    db.login(&session("bob", "pts/1", 2)).unwrap();
    let fresh = Database::open_read_only(db.path()).unwrap();
    assert_eq!(fresh.entries(&Filter::default()).count(), 2);
}

/// The descriptors this process has open on `file` (found in `/proc/self/fd`).
fn descriptors_of(file: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|f| (f.dev(), f.ino()) == (m.dev(), m.ino()))
        .count()
}

/// Regression: reading the database file's header (`is_wal_file`: a reader's open of a file
/// without its side files, a reader's retry while an index is rebuilt) opened a descriptor
/// of the file and closed it, which dropped every fcntl lock this process holds on the file:
/// the shared lock of a kept connection (wtmpdbd's, while it serves reads on other threads),
/// which tells another process's last connection that it is not the last one; that one then
/// checkpoints and deletes the log the kept connection writes to. Read through SQLite's
/// VFS, the descriptor stays open while a connection holds a lock on the file, and that one
/// descriptor serves every later read.
#[test]
fn reading_the_header_keeps_a_kept_connections_locks() {
    let (d, db) = new_db();
    db.login(&session("alice", "pts/0", 1)).unwrap();
    let file = db.file().to_path_buf();
    let on_file = locks_held_here(&file);
    assert!(
        !on_file.is_empty(),
        "a connection in WAL mode locks its file"
    );
    // Through a link as well, as a reader's name may lead to the file.
    let link = d.path().join("link.db");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    for _ in 0..20 {
        assert!(is_wal_file(&file));
        assert!(is_wal_file(&link));
    }
    assert_eq!(locks_held_here(&file), on_file);
    assert!(descriptors_of(&file) <= 2, "a descriptor kept per read");
    // And the kept connection still writes where a fresh reader reads.
    db.login(&session("bob", "pts/1", 2)).unwrap();
    let fresh = Database::open_read_only(&link).unwrap();
    assert_eq!(fresh.entries(&Filter::default()).count(), 2);
    assert!(!is_wal_file(&d.path().join("missing.db")));
}

/// Regression: the look into a file whose size reads 0 (at every open: a kernel file claims
/// that size and has contents, see `input::not_a_regular_file`) read it through a
/// descriptor of its own, whose close dropped this process's locks on the file: those of a
/// writer of this process creating that database, in its first transaction while the file
/// is still empty (wtmpdbd's committer on a new file, while another thread opens it).
#[test]
fn looking_into_an_empty_file_keeps_a_writers_locks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.db");
    std::fs::write(&file, b"").unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = crate::sqlite::open_with_flags(&file, flags).unwrap();
    conn.execute_batch("begin immediate; create table t(x)")
        .unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        0,
        "written at commit"
    );
    let held = locks_held_here(&file);
    assert!(
        !held.is_empty(),
        "a writer in its transaction locks the file"
    );
    for _ in 0..20 {
        assert_eq!(crate::input::not_a_regular_file(&file), None);
    }
    assert_eq!(locks_held_here(&file), held);
    assert!(descriptors_of(&file) <= 2, "a descriptor kept per look");
    conn.execute_batch("commit").unwrap();
}

/// A failure of SQLite keeps its result code and its text through [`SqliteError`]: the code
/// decides (a lock, the C library's `-rc`), the text is the message upstream prints.
#[test]
fn sqlite_failures_keep_their_code_and_their_text() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.db");
    let e = Database::open_read_only(&missing).err().unwrap();
    assert!(matches!(e, Error::Open { .. }), "{e:?}");
    assert_eq!(e.open_code(), Some(14)); // SQLITE_CANTOPEN
    assert!(!e.is_locked());
    assert_eq!(
        e.to_string(),
        format!(
            "Cannot open database ({}) read-only: unable to open database file",
            missing.display()
        )
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, [b'x'; 4096]).unwrap();
    let e = Database::open_read_only(&garbage).err().unwrap();
    assert!(matches!(e, Error::OpenSetup { .. }), "{e:?}");
    assert_eq!(e.open_code(), Some(26)); // SQLITE_NOTADB
    assert_eq!(
        e.to_string(),
        format!(
            "Cannot open database ({}) read-only: file is not a database",
            garbage.display()
        )
    );

    // A rollback journal, so that another connection's exclusive lock keeps readers out.
    let path = dir.path().join("wtmp.db");
    let opts = OpenOptions::read_write().journal(Journal::Keep);
    Database::open(&path, &opts).unwrap();
    let reader = Database::open(
        &path,
        &OpenOptions::read_only().busy_timeout(Duration::ZERO),
    )
    .unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("begin exclusive").unwrap();
    let e = reader.is_empty().unwrap_err();
    assert!(e.is_busy() && e.is_locked(), "{e:?}");
    assert_eq!(e.open_code(), None, "not an open: {e:?}");
    assert_eq!(e.sqlite().and_then(SqliteError::code), Some(5)); // SQLITE_BUSY
    assert!(e.to_string().ends_with(": database is locked"), "{e}");
    let e = Database::open(
        &path,
        &OpenOptions::read_only().busy_timeout(Duration::ZERO),
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::OpenSetup { .. }), "{e:?}");
    assert!(e.is_locked() && !e.is_busy(), "{e:?}");
    assert_eq!(e.open_code(), Some(5));
    assert_eq!(
        e.to_string(),
        format!(
            "Cannot open database ({}) read-only: database is locked",
            path.display()
        )
    );
}

/// A kept connection's files, asked before each group whether the name still leads to them
/// where readers look: readers (SQLite itself) resolve the name's links and look for the
/// side files beside the file it leads to.
fn kept_files(db: &Database) -> OpenFiles {
    db.login(&session("alice", "pts/0", 1_000_000)).unwrap();
    let files = db
        .open_files()
        .expect("a WAL database with both side files");
    assert!(files.still_at(db.path(), db.file()));
    files
}

#[test]
fn a_database_moved_away_behind_a_link_at_its_name_is_not_current() {
    // An admin moves the file to another disk and leaves a link at its name (its side
    // files, which SQLite keeps here, stay behind). The name still leads to the very file,
    // but readers look for its log beside it, in the new place: a connection that went on
    // committing into the log left behind would write where no reader looks, and any other
    // writer would open a second log of the same file there.
    let (d, db) = new_db();
    let files = kept_files(&db);
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let moved = elsewhere.join("wtmp.db");
    std::fs::rename(db.path(), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, db.path()).unwrap();
    assert!(
        db.path().with_extension("db-wal").exists(),
        "the log left behind"
    );
    assert!(!files.still_at(db.path(), db.file()));
}

#[test]
fn a_linked_database_moved_and_linked_again_is_not_current() {
    // The name was a link at the open; the file it led to moved elsewhere without its side
    // files, and the link now leads there.
    let d = tempfile::tempdir().unwrap();
    let first = d.path().join("first");
    let second = d.path().join("second");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let name = d.path().join("wtmp.db");
    std::os::unix::fs::symlink(first.join("wtmp.db"), &name).unwrap();
    let db = Database::open_read_write(&name).unwrap();
    assert_eq!(db.file(), first.join("wtmp.db").canonicalize().unwrap());
    let files = kept_files(&db);
    std::fs::rename(first.join("wtmp.db"), second.join("wtmp.db")).unwrap();
    std::fs::remove_file(&name).unwrap();
    std::os::unix::fs::symlink(second.join("wtmp.db"), &name).unwrap();
    assert!(!files.still_at(db.path(), db.file()));
}

#[test]
fn a_database_name_that_still_leads_where_readers_look_is_current() {
    // What must not cost a fresh open before every group: a directory on the way renamed
    // and a link left at its old name (the file, the log and the index all moved along:
    // readers find them together), or nothing changed at all.
    let (d, db) = new_db();
    let files = kept_files(&db);
    assert!(files.still_at(db.path(), db.file()));
    let sub = d.path().join("sub");
    let renamed = d.path().join("sub.moved");
    std::fs::rename(&sub, &renamed).unwrap();
    std::os::unix::fs::symlink(&renamed, &sub).unwrap();
    assert!(files.still_at(db.path(), db.file()));
}

#[test]
fn a_side_file_replaced_by_another_kind_of_file_is_not_current() {
    // A link to the very log, or a FIFO at the index's name: neither is where SQLite's
    // readers find these files (a link it refuses, a FIFO holds no index).
    let (d, db) = new_db();
    let files = kept_files(&db);
    let log = db.file().with_extension("db-wal");
    let kept = d.path().join("log");
    std::fs::rename(&log, &kept).unwrap();
    std::os::unix::fs::symlink(&kept, &log).unwrap();
    assert!(!files.still_at(db.path(), db.file()));
    std::fs::remove_file(&log).unwrap();
    std::fs::rename(&kept, &log).unwrap();
    assert!(files.still_at(db.path(), db.file()));
    let index = db.file().with_extension("db-shm");
    std::fs::remove_file(&index).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&index)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(!files.still_at(db.path(), db.file()));
}

/// After a group that failed: no row of it in the file, and the next group is written.
fn nothing_written_and_the_next_group_is(db: &Database, p: crate::process::Process, login: Usec) {
    let users = || -> Vec<String> {
        db.entries(&Filter::default())
            .map(|e| e.unwrap().user)
            .collect()
    };
    assert!(users().is_empty(), "the failed group's rows stayed");
    let ok = db
        .write_group(&[GroupWrite::Login(session("bob", "pts/2", login), p)])
        .unwrap();
    assert!(matches!(ok[..], [Ok(Some(_))]), "{ok:?}");
    assert_eq!(users(), ["bob"]);
}

#[test]
fn a_group_that_fails_on_the_way_writes_nothing_and_leaves_no_transaction() {
    // The group's transaction ends by statements of the connection's cache: a write that
    // fails after others of its group were made takes them back (its callers then write
    // one by one), and the kept connection takes the next group as usual.
    let (_d, db) = new_db();
    db.connection()
        .execute_batch(
            // Lower case: the check that SQL lives in queries.rs looks for capitals.
            "create trigger refuse before insert on wtmp when new.User = 'refused' \
             begin select raise(abort, 'refused'); end",
        )
        .unwrap();
    let p = crate::process::Process {
        pid: 1,
        start_time: None,
    };
    let login = 4_300_000_000 * 1_000_000; // after 2106
    let failed = db.write_group(&[
        GroupWrite::Login(session("alice", "pts/0", login), p),
        GroupWrite::Login(session("refused", "pts/1", login), p),
    ]);
    assert!(failed.is_err(), "{failed:?}");
    assert!(db.connection().is_autocommit(), "a transaction left open");
    nothing_written_and_the_next_group_is(&db, p, login);
}

#[test]
fn a_group_whose_commit_a_reader_keeps_out_writes_nothing_and_leaves_no_transaction() {
    // In a rollback journal (a file no writer put in WAL mode), a reader's shared lock keeps
    // COMMIT from taking its exclusive one: SQLite then leaves the transaction open (busy).
    // The group's cached COMMIT must not leave it so: rolled back, nothing written, and
    // the next group, once the reader is gone, is written as usual.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("wtmp.db");
    let opts = OpenOptions::read_write()
        .journal(Journal::Keep)
        .busy_timeout(Duration::from_millis(50));
    let db = Database::open(&path, &opts).unwrap();
    let mode: String = db
        .connection()
        .query_row("pragma journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let reader =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    // Lower case: the check that SQL lives in queries.rs looks for capitals.
    reader.execute_batch("begin").unwrap();
    let _: i64 = reader
        .query_row("select count(*) from wtmp", [], |r| r.get(0))
        .unwrap();
    let p = crate::process::Process {
        pid: 1,
        start_time: None,
    };
    let login = 4_300_000_000 * 1_000_000;
    let failed = db.write_group(&[GroupWrite::Login(session("alice", "pts/0", login), p)]);
    assert!(failed.is_err(), "{failed:?}");
    assert!(db.connection().is_autocommit(), "a transaction left open");
    reader.execute_batch("commit").unwrap();
    nothing_written_and_the_next_group_is(&db, p, login);
}

#[test]
fn a_group_logout_that_names_its_session_closes_only_that_session() {
    let (_d, db) = new_db();
    let p = crate::process::Process {
        pid: 1,
        start_time: None,
    };
    let login = 2_200_000_000 * 1_000_000; // after 2038
    let ids = db
        .write_group(&[
            GroupWrite::Login(session("alice", "pts/0", login), p),
            GroupWrite::Login(session("bob", "pts/1", login + 1), p),
        ])
        .unwrap();
    let (alice, bob) = (
        ids[0].as_ref().unwrap().as_ref().unwrap().id,
        ids[1].as_ref().unwrap().as_ref().unwrap().id,
    );
    let alice_is = LoginOf {
        user: "alice",
        tty: "pts/0",
        login,
    };
    let out = db
        .write_group(&[
            // Bob's row, named as Alice's session: left alone.
            GroupWrite::Logout {
                id: bob,
                at: login + 5,
                of: Some(alice_is),
            },
            // A row that does not exist, named: left to the caller too.
            GroupWrite::Logout {
                id: bob + 100,
                at: login + 5,
                of: Some(alice_is),
            },
            GroupWrite::Logout {
                id: alice,
                at: login + 9,
                of: Some(alice_is),
            },
        ])
        .unwrap();
    assert!(matches!(out[0], Ok(None)), "{out:?}");
    assert!(matches!(out[1], Ok(None)), "{out:?}");
    let closed = out[2].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(closed.id, alice);
    // The row as the journal's event reports it, read in the group.
    assert_eq!(closed.closed, db.row(alice).unwrap());
    assert_eq!(db.row(bob).unwrap().unwrap().logout, None);
    assert_eq!(db.row(alice).unwrap().unwrap().logout, Some(login + 9));
}

/// A database whose connection keeps its log allocated (the daemon's), with five logins
/// committed into the log: the directory, the database, its path and its `-wal` file's.
fn kept_log_with_five_logins() -> (
    tempfile::TempDir,
    Database,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wtmp.db");
    let db = Database::open_read_write(&path).unwrap();
    db.keep_log_allocated();
    let wal = side_files::side_file(&path, "-wal");
    for i in 0..5 {
        db.login(&session("alice", "pts/0", i)).unwrap();
    }
    (dir, db, path, wal)
}

#[test]
fn a_kept_log_is_copied_into_the_file_and_then_overwritten_not_grown() {
    let (dir, db, path, wal) = kept_log_with_five_logins();
    assert!(db.checkpoint_now(), "the whole log copied");
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(size > 0, "the log keeps its blocks");
    // The file alone holds every row.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let rows: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row(queries::COUNT_ROWS, [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 5);
    // The next commits start the log again at its beginning.
    for i in 5..8 {
        db.login(&session("bob", "pts/1", i)).unwrap();
    }
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), size);
}

/// At rest, a kept log is emptied all the same: its frames, already copied, would be read
/// again by the next open of the name after the daemon exits without closing (over a
/// backup put back in place, or over logrotate's new file).
#[test]
fn a_kept_log_is_emptied_at_rest() {
    let (_dir, db, _, wal) = kept_log_with_five_logins();
    assert!(db.checkpoint_at_rest(), "the log emptied");
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    db.login(&session("bob", "pts/1", 9)).unwrap();
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
}

#[test]
fn the_table_as_created_reads_as_upstreams_shape() {
    // Ours, and upstream's own statement (the first migration repeats it): SQLite keeps the
    // text a reader compares with `UPSTREAM_WTMP_TABLE` to skip the shape check.
    let (_d, db) = new_db();
    let memory = crate::sqlite::open_in_memory().unwrap();
    memory.execute_batch(schema::upstream_table()).unwrap();
    for conn in [&db.conn, &memory] {
        let sql = super::reader_schema(conn).unwrap().table;
        assert_eq!(sql.as_deref(), Some(queries::UPSTREAM_WTMP_TABLE));
        let shape: (bool, bool) = conn
            .query_row(queries::WTMP_TABLE_SHAPE, [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(shape, (true, true));
    }
}

#[test]
fn the_first_chunk_reads_no_more_rows_than_wanted() {
    let (_d, mut db) = new_db();
    let rows: Vec<NewEntry<'_>> = (0..500)
        .map(|i| session("u", "pts/1", (i / 3) * 1_000_000))
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    let all: Vec<i64> = db
        .entries(&Filter::default())
        .map(|e| e.unwrap().id)
        .collect();
    assert_eq!(all.len(), 500);
    let unknown = db
        .entries(&Filter::default())
        .next_batch()
        .unwrap()
        .unwrap();
    assert!(unknown.len() >= 64, "{}", unknown.len());
    for wanted in [1, 11, 200] {
        let mut rows = db.entries(&wanting(wanted, false));
        let first = rows.next_batch().unwrap().unwrap();
        // A chunk ends with the whole group of its last Login (three rows each here).
        assert!(
            first.len() <= wanted.min(64) + 2,
            "{wanted}: {}",
            first.len()
        );
        let mut ids: Vec<i64> = first.iter().map(|e| e.id).collect();
        ids.extend(rows.map(|e| e.unwrap().id));
        assert_eq!(ids, all, "{wanted}");
    }
}

/// An export's read: the listed rows up to the last ID (a listed ID that is gone is
/// skipped, a listed one above the last ID comes once, with the new rows), then every row
/// after it, in ID order, through a read-only connection as through a writer's.
#[test]
fn each_row_since_gives_the_listed_rows_then_the_new_ones() {
    let (dir, mut db) = new_db();
    let rows: Vec<NewEntry<'_>> = (1..=10)
        .map(|i| session("u", "pts/1", i * 1_000_000))
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    let reader = Database::open_read_only(&dir.path().join("sub/wtmp.db")).unwrap();
    for db in [&db, &reader] {
        let mut ids = Vec::new();
        db.each_row_since(7, &[5, 2, 12, 9], |e| ids.push(e.id))
            .unwrap();
        assert_eq!(ids, [2, 5, 8, 9, 10]);
        let mut none = Vec::new();
        db.each_row_since(10, &[], |e| none.push(e.id)).unwrap();
        assert!(none.is_empty(), "{none:?}");
    }
}

/// ... also of a table another tool made whose ID column is not an integer one, which the
/// reader accepts when its IDs are unique (`foreign::check_table`) and reads as numbers
/// (`record::integer`): with TEXT affinity, `ID > 9` compared text with text and `'10'`
/// sorted below `'9'`, so an export never saw rows 10 and above; with none, `5` in the
/// list of open rows never matched the text `'5'`.
#[test]
fn each_row_since_compares_ids_as_numbers_in_a_foreign_table() {
    for id_type in ["TEXT", ""] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&queries::foreign_table_with_id(id_type))
            .unwrap();
        for i in 1..=12 {
            conn.execute(queries::INSERT_TEXT_ID, rusqlite::params![i, i * 1_000_000])
                .unwrap();
        }
        drop(conn);
        let db = Database::open_read_only(&path).unwrap();
        let mut ids = Vec::new();
        db.each_row_since(9, &[5], |e| ids.push(e.id)).unwrap();
        ids.sort_unstable();
        assert_eq!(ids, [5, 10, 11, 12], "ID {id_type}");
    }
}

/// A filter that wants `rows`, of user "u" when `filtered` (the same rows, through the
/// filtered reader's keys), else of the whole table.
fn wanting(rows: usize, filtered: bool) -> Filter {
    Filter {
        rows_wanted: rows,
        users_or_ttys: if filtered {
            vec!["u".into()]
        } else {
            Vec::new()
        },
        ..Filter::default()
    }
}

/// Regression: only the first chunk was bounded by the rows wanted; the next ones grew to
/// 256, 1,024 and 4,096 rows, so `last -n 500` read 1,344 rows on its own connection and
/// thousands more on the thread that reads ahead (11 ms against 3.4 ms for `-n 300` on the
/// benchmark's 1M rows). Now no chunk reads past what is left of them, and once they are
/// read, a reader that wants more gets them [`FIRST_CHUNK`]-sized.
#[test]
fn no_chunk_reads_past_the_rows_wanted() {
    let (_d, mut db) = new_db();
    let rows: Vec<NewEntry<'_>> = (0..3000)
        .map(|i| session("u", "pts/1", (i / 3) * 1_000_000))
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    for filtered in [false, true] {
        for wanted in [100, 500, 2000] {
            let mut rows = db.entries(&wanting(wanted, filtered));
            let mut read = 0;
            while read < wanted {
                read += rows.next_batch().unwrap().unwrap().len();
            }
            // A chunk ends with the whole group of its last Login (three rows each here).
            assert!(read <= wanted + 2, "{filtered} {wanted}: {read}");
            let more = rows.next_batch().unwrap().unwrap().len();
            assert!(more <= 64 + 2, "{filtered} {wanted}: then {more}");
        }
    }
}

/// Regression: once the rows wanted were read, every later chunk was of [`FIRST_CHUNK`]
/// rows. A listing that skips what it reads (`last -n 10 -s TIME` with nothing after TIME
/// reads the whole table) then read it 64 rows at a time, one read transaction each: on
/// 30,000 rows 1,857 `fcntl` calls against 74 before (strace -c). The chunks past the rows
/// wanted grow again from there, as the chunks of a listing without a bound do.
#[test]
fn chunks_past_the_rows_wanted_grow_again() {
    let (_d, mut db) = new_db();
    let rows: Vec<NewEntry<'_>> = (0..20_000)
        .map(|i| session("u", "pts/1", i * 1_000_000))
        .collect();
    db.insert_all(rows, |_| {}).unwrap();
    for filtered in [false, true] {
        let mut rows = db.entries(&wanting(11, filtered));
        let (mut read, mut batches) = (0, 0);
        while let Some(batch) = rows.next_batch() {
            read += batch.unwrap().len();
            batches += 1;
        }
        assert_eq!(read, 20_000);
        // 11, 64, 256, 1,024, then 4,096 at a time: a dozen; 64 at a time: 313.
        assert!(batches <= 16, "{filtered}: {batches} batches");
    }
}

/// `read::in_one_read` is one transaction from its start to its end, and no longer: its
/// statements see the file as it was when it began (before any of them ran), also when a
/// writer commits meanwhile; after it, whether its work succeeded or failed, the
/// connection holds no transaction and reads the file as it is now.
#[test]
fn one_read_sees_the_file_as_at_its_start_and_ends_with_its_work() {
    let (dir, db) = new_db();
    let reader = Database::open_read_only(&dir.path().join("sub/wtmp.db")).unwrap();
    let empty_inside = read::in_one_read(
        &reader.conn,
        reader.index_wait(),
        |e| sql("read")(e),
        || {
            // Committed after the read began, before its first statement.
            db.login(&session("alice", "pts/0", 1_000_000)).unwrap();
            reader.is_empty()
        },
    )
    .unwrap();
    assert!(empty_inside);
    assert!(reader.conn.is_autocommit());
    assert!(!reader.is_empty().unwrap());

    let failed: Result<()> = read::in_one_read(
        &reader.conn,
        reader.index_wait(),
        |e| sql("read")(e),
        || {
            reader.is_empty()?;
            Err(Error::LogoutRows(0))
        },
    );
    assert!(matches!(failed, Err(Error::LogoutRows(0))));
    assert!(reader.conn.is_autocommit());
}

/// The pause after a maintenance transaction lasts while other connections commit, up to
/// its bound: a session's second write, which comes right after its first, finds the lock
/// free instead of the job's next batch under way. Without the extension the pause is
/// `MAINTENANCE_PAUSE` (3 ms) however busy the others are. A pause that ends sooner than
/// its bound is right only after a `MAINTENANCE_PAUSE` without a commit (a loaded machine
/// can keep the committer off the CPU that long): the commits' times tell.
#[test]
fn a_maintenance_pause_lasts_while_others_commit() {
    let (dir, job) = new_db();
    let path = dir.path().join("sub/wtmp.db");
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let (started_tx, started) = std::sync::mpsc::channel();
    let committer = {
        let (stop, commits) = (stop.clone(), commits.clone());
        let path = path.clone();
        std::thread::spawn(move || {
            let w = Database::open(&path, &OpenOptions::read_write()).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                w.login(&session("bob", "pts/1", 1_000_000 + n)).unwrap();
                commits.lock().unwrap().push(Instant::now());
                if n == 0 {
                    started_tx.send(()).unwrap();
                }
                n += 1;
            }
        })
    };
    started.recv().unwrap();
    let t = Instant::now();
    job.maintenance_pause();
    let busy = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    committer.join().unwrap();
    if busy < write::MAINTENANCE_PAUSE_MAX {
        let end = t + busy;
        let mut at: Vec<Instant> = commits.lock().unwrap().clone();
        at.retain(|c| *c <= end);
        at.push(end);
        let mut last = t;
        let mut longest = Duration::ZERO;
        for c in at {
            if c > last {
                longest = longest.max(c - last);
                last = c;
            }
        }
        assert!(
            longest >= write::MAINTENANCE_PAUSE,
            "ended after {busy:?} while others committed (no pause longer than {longest:?})"
        );
    }

    // Nobody commits: one pause.
    let t = Instant::now();
    job.maintenance_pause();
    let idle = t.elapsed();
    assert!(idle >= write::MAINTENANCE_PAUSE, "{idle:?}");
}

/// Puts a new file holding `contents` at `path` again and again, `pause` apart, until
/// `stop` (each a new inode, as a database's first writer changes the file at each of its
/// steps: its header, mode, owner, table, side files; the file's times would not do, the
/// kernel's clock for them moves every few milliseconds only). Returns how many it put.
fn file_in_the_making(
    path: &Path,
    contents: &'static [u8],
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut changes = 0u64;
        while !stop.load(Ordering::SeqCst) {
            put_anew(&path, contents);
            changes += 1;
            std::thread::sleep(pause);
        }
        changes
    })
}

/// Puts a new file (a new inode) holding `contents` at `path`, by a rename over it.
fn put_anew(path: &Path, contents: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A reader's open that fails because the file changed under it (here an empty file, read
/// without locks, replaced during the read) is tried again: every open succeeds while the
/// file keeps changing. A database in its first moments used to fail readers with "the
/// database changed while it was read without its WAL file" (or an open error) at each of
/// its first writer's steps: 29 of 1,115 `wtmpdb last` runs in a loop while new databases
/// were created.
#[test]
fn a_readers_open_waits_out_a_file_in_the_making() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    std::fs::File::create(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_in_the_making(&path, b"", Duration::from_micros(200), Arc::clone(&stop));
    let until = Instant::now() + Duration::from_millis(400);
    let mut opens = 0;
    let mut failed = Vec::new();
    while Instant::now() < until {
        match Database::open_read_only(&path) {
            Ok(db) => db
                .each_row_by_id(|_| panic!("a row in an empty file"))
                .unwrap(),
            Err(e) => failed.push(e.to_string()),
        }
        opens += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let changes = writer.join().unwrap();
    assert!(changes > 100, "the file changed {changes} times only");
    assert!(
        failed.is_empty(),
        "{} of {opens} opens failed, the first: {:?}",
        failed.len(),
        failed.first()
    );
}

/// ... within a bound: an open that fails and changes the files each time (here it puts a
/// new file in place itself) fails after the bound, and one that fails without a change
/// fails at once.
#[test]
fn a_readers_open_waits_for_a_file_in_the_making_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    std::fs::write(&path, b"x").unwrap();
    let failing = |tries: &mut u32| {
        *tries += 1;
        Err::<(), _>(Error::ChangedWhileUnlocked { path: path.clone() })
    };
    let bound = Duration::from_millis(100);
    let (start, mut tries) = (Instant::now(), 0);
    assert!(while_in_the_making(&path, start + bound, || failing(&mut tries)).is_err());
    assert_eq!(tries, 1, "tried again with nothing changed");
    assert!(start.elapsed() < bound / 2, "{:?}", start.elapsed());
    let (start, mut tries) = (Instant::now(), 0);
    let outcome = while_in_the_making(&path, start + bound, || {
        put_anew(&path, b"x");
        failing(&mut tries)
    });
    let took = start.elapsed();
    assert!(outcome.is_err());
    assert!(tries > 10, "tried {tries} times");
    assert!(took >= bound && took < bound * 2, "failed after {took:?}");
}

/// A database whose schema holds nothing yet (its first writer has written the header only)
/// reads as empty; a short file that is not SQLite's, which SQLite itself reads as an empty
/// database, is still not a wtmpdb database.
#[test]
fn an_empty_schema_reads_as_empty_only_in_an_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.db");
    rusqlite::Connection::open(&new)
        .unwrap()
        .execute_batch(queries::JOURNAL_MODE_WAL)
        .unwrap();
    let db = Database::open_read_only(&new).unwrap();
    db.each_row_by_id(|_| panic!("a row in a new database"))
        .unwrap();
    for short in [&b"x"[..], b"hello, I am not a database\n"] {
        let path = dir.path().join("short.db");
        std::fs::write(&path, short).unwrap();
        let opened = Database::open_read_only(&path).err().map(|e| e.to_string());
        assert!(
            opened.as_ref().is_some_and(|e| e.contains("not a")),
            "{opened:?}"
        );
    }
}

/// ... and the reader's own open is no change: it writes its read mark into the `-shm`
/// index, and as root SQLite gives the side files their owner again (a new change time).
/// A WAL database that nothing else touches, with its side files there and a schema that
/// is not wtmpdb's, fails at once: it failed after the whole bound (500 ms) when the
/// reader's own traces counted as a writer at work.
#[test]
fn a_readers_open_is_not_tried_again_for_its_own_traces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    keep_side_files(&conn);
    conn.execute_batch(queries::JOURNAL_MODE_WAL).unwrap();
    conn.execute_batch(queries::FOREIGN_TABLE).unwrap();
    drop(conn);
    for side in ["-wal", "-shm"] {
        assert!(side_files::side_file(&path, side).exists(), "{side}");
    }
    for _ in 0..3 {
        let start = Instant::now();
        let opened = Database::open_read_only(&path).err().map(|e| e.to_string());
        let took = start.elapsed();
        assert!(
            opened.as_ref().is_some_and(|e| e.contains("not a wtmpdb")),
            "{opened:?}"
        );
        assert!(took < INDEX_IN_THE_MAKING / 4, "failed after {took:?}");
    }
}

/// ... and the side files counted are those beside the file a link leads to, where SQLite
/// keeps them (Debian's /var/lib/wtmpdb/wtmp.db is a link): a log that a writer changes
/// during each failing attempt through a link makes the attempt be tried again.
#[test]
fn a_readers_open_through_a_link_sees_its_side_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wtmp.db");
    std::fs::write(&file, b"x").unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let log = side_files::side_file(&file, "-wal");
    let (start, mut tries) = (Instant::now(), 0);
    let outcome = while_in_the_making(&link, start + Duration::from_millis(100), || {
        tries += 1;
        put_anew(&log, b"x");
        Err::<(), _>(Error::ChangedWhileUnlocked { path: link.clone() })
    });
    assert!(outcome.is_err());
    assert!(tries > 10, "tried {tries} times");
}

/// ... but only while nothing is set in it either: a first writer sets the schema version
/// after its table, and none of ours sets an application id. An SQLite file with an empty
/// schema and either set is another program's (or one whose tables were dropped, which a
/// writer would not fill: it goes by the version), not a wtmp database in its first
/// moments, and reading it as "no entries" would say what it is not.
#[test]
fn an_empty_schema_with_a_version_or_an_application_id_is_foreign() {
    let dir = tempfile::tempdir().unwrap();
    for pragma in queries::FOREIGN_MARKS {
        let path = dir.path().join("other.db");
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(pragma).unwrap();
        drop(conn);
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let opened = Database::open_read_only(&path).err().map(|e| e.to_string());
        assert!(
            opened.as_ref().is_some_and(|e| e.contains("not a wtmpdb")),
            "{pragma}: {opened:?}"
        );
    }
}

/// A reader's page cache is bounded (see `queries::READER_CACHE_SIZE`), its second
/// connection's too; a writer keeps SQLite's default.
#[test]
fn a_readers_page_cache_is_small_and_a_writers_is_not() {
    let (dir, db) = new_db();
    db.login(&session("ann", "pts/0", 1)).unwrap();
    let cache = |d: &Database| {
        d.connection()
            .query_row(queries::CACHE_SIZE, [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(cache(&db), -2000);
    let reader = Database::open_read_only(&dir.path().join("sub/wtmp.db")).unwrap();
    assert_eq!(cache(&reader), -256);
    assert_eq!(cache(&reader.reopen_read_only().unwrap()), -256);
}

/// At rest, an emptied kept log gets its blocks back as zeros (see
/// `Database::refill_emptied_log`): the file alone still holds every row, the zeros are no
/// frames to SQLite's recovery (a copy of the file with the log and no index reads as the
/// file), and the next commit overwrites them with a log of its own, without growing the
/// file. A log with frames is left alone.
#[test]
fn an_emptied_kept_log_gets_zeros_back_and_the_next_commit_overwrites_them() {
    let (dir, db, path, wal) = kept_log_with_five_logins();
    assert!(db.checkpoint_at_rest(), "the log emptied");
    assert!(db.refill_emptied_log(WalSettings::REFILL_BYTES));
    let refilled = std::fs::read(&wal).unwrap();
    assert_eq!(refilled.len() as u64, WalSettings::REFILL_BYTES);
    // A header of its own (new salts at every refill, never zero) and zeros: no frame.
    let salts = <[u8; 8]>::try_from(&refilled[16..24]).unwrap();
    assert_ne!(salts, [0; 8]);
    assert_eq!(
        refilled[..32],
        side_files::empty_log_header(4096, salts).unwrap(),
        "an empty log's header"
    );
    assert!(refilled[32..].iter().all(|&b| b == 0));
    assert!(!side_files::log_may_hold_frames(&wal));
    // A copy with the zeros as its log and no index: SQLite's recovery reads the file.
    let rows_with_log = |n: &str| {
        let copy = dir.path().join(n);
        std::fs::create_dir(&copy).unwrap();
        std::fs::copy(&path, copy.join("w.db")).unwrap();
        std::fs::copy(&wal, copy.join("w.db-wal")).unwrap();
        let c = rusqlite::Connection::open(copy.join("w.db")).unwrap();
        c.query_row(queries::COUNT_ROWS, [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(rows_with_log("a"), 5);
    db.login(&session("bob", "pts/1", 9)).unwrap();
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        WalSettings::REFILL_BYTES,
        "overwritten, not grown"
    );
    assert!(side_files::log_may_hold_frames(&wal));
    // The commit is in the log now, and a copy with it reads it.
    assert_eq!(rows_with_log("b"), 6);
    assert!(
        !db.refill_emptied_log(WalSettings::REFILL_BYTES),
        "a log with frames"
    );
    assert_eq!(rows_with_log("c"), 6);
}

/// Logrotate's `create` beside a log wtmpdbd left as zeros at rest: no frames, so nothing
/// is set aside as orphaned, and the new file is written as any new file. A log with a
/// header beside an empty file is set aside as before.
#[test]
fn zeros_beside_a_new_empty_file_are_no_orphaned_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::write(side_files::side_file(&path, "-wal"), vec![0u8; 65536]).unwrap();
    let db = Database::open_read_write(&path).unwrap();
    db.login(&session("ann", "pts/0", 1)).unwrap();
    drop(db);
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert!(
        !names().iter().any(|n| n.contains("orphaned")),
        "{:?}",
        names()
    );

    // A log with frames (the header's magic) beside an empty file: kept aside.
    let other = dir.path().join("o.db");
    std::fs::write(&other, b"").unwrap();
    let mut log = vec![0u8; 65536];
    log[..4].copy_from_slice(&[0x37, 0x7f, 0x06, 0x82]);
    std::fs::write(side_files::side_file(&other, "-wal"), log).unwrap();
    drop(Database::open_read_write(&other).unwrap());
    assert!(
        names().iter().any(|n| n.starts_with("o.db-wal.orphaned-")),
        "{:?}",
        names()
    );
}

/// The header `Database::refill_emptied_log` writes is SQLite's: its checksum, computed as
/// SQLite computes it, is the one SQLite wrote into a log of its own with the same fields.
#[test]
fn an_empty_logs_header_is_checksummed_as_sqlite_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let db = Database::open_read_write(&path).unwrap();
    db.keep_log_allocated();
    db.login(&session("ann", "pts/0", 1)).unwrap();
    let log = std::fs::read(side_files::side_file(&path, "-wal")).unwrap();
    let header = &log[..32];
    assert_eq!(
        header[..4],
        [0x37, 0x7f, 0x06, 0x82],
        "SQLite's little-endian magic"
    );
    assert_eq!(
        header[12..16],
        [0; 4],
        "a log's first header: no checkpoint yet"
    );
    let page_size = u32::from_be_bytes(header[8..12].try_into().unwrap());
    let salts = <[u8; 8]>::try_from(&header[16..24]).unwrap();
    assert_eq!(
        side_files::empty_log_header(page_size, salts).unwrap(),
        header
    );
    assert!(side_files::log_may_hold_frames(&side_files::side_file(
        &path, "-wal"
    )));
}

/// A `-wal` name that leads to a FIFO when the log is refilled at rest (removed and made a
/// FIFO since the connection opened it; its own descriptor still leads to the removed
/// file): nothing is written, and the refill does not wait for a reader of the FIFO (the
/// daemon's committer, which writes every login, did, for ever).
#[test]
fn a_log_name_leading_to_a_fifo_is_not_refilled_and_not_waited_on() {
    let (_dir, db, _path, wal) = kept_log_with_five_logins();
    std::fs::remove_file(&wal).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&wal).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    assert!(db.checkpoint_at_rest(), "the log emptied");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(db.refill_emptied_log(WalSettings::REFILL_BYTES));
    });
    let refilled = rx.recv_timeout(Duration::from_secs(5));
    if refilled.is_err() {
        // Lets the waiting open go on, for the test to end.
        let _ = std::fs::File::open(&wal);
    }
    assert_eq!(
        refilled,
        Ok(false),
        "refilled, or waited for a reader of the FIFO"
    );
}

/// A reader's look at the schema: the first table named `wtmp` (a view of that name is
/// not one), the Login index, the User index and a schema with nothing in it.
#[test]
fn a_readers_schema_names_the_table_its_indexes_and_nothing() {
    use super::ReaderSchema;
    let memory = crate::sqlite::open_in_memory().unwrap();
    let empty = ReaderSchema {
        nothing: true,
        ..ReaderSchema::default()
    };
    assert_eq!(super::reader_schema(&memory).unwrap(), empty);
    memory.execute_batch(queries::WTMP_VIEW).unwrap();
    assert_eq!(
        super::reader_schema(&memory).unwrap(),
        ReaderSchema::default()
    );
    let memory = crate::sqlite::open_in_memory().unwrap();
    memory.execute_batch(schema::upstream_table()).unwrap();
    let upstream = ReaderSchema {
        table: Some(queries::UPSTREAM_WTMP_TABLE.to_string()),
        ..ReaderSchema::default()
    };
    assert_eq!(super::reader_schema(&memory).unwrap(), upstream);
    memory.execute_batch(queries::LOGIN_INDEX_ONLY).unwrap();
    let login = ReaderSchema {
        login_index: true,
        ..upstream.clone()
    };
    assert_eq!(super::reader_schema(&memory).unwrap(), login);
    let user = ReaderSchema {
        user_index: true,
        ..login.clone()
    };
    memory.execute_batch(queries::USER_INDEX_ONLY).unwrap();
    assert_eq!(super::reader_schema(&memory).unwrap(), user);
}

/// 20,000 sessions of 50 users in turn (so each user's rows lie on every table page), in
/// groups of three with the same Login, one of each still open and two closed at once;
/// users `u00`..`u49`, ttys `pts/0`..`pts/12`. Written through `db` (the table, and the
/// indexes it has).
fn fifty_users_in_turn(db: &mut Database) {
    let users: Vec<String> = (0..50).map(|u| format!("u{u:02}")).collect();
    let ttys: Vec<String> = (0..13).map(|t| format!("pts/{t}")).collect();
    let rows = (0..20_000i64).map(|i| NewEntry {
        kind: Kind::UserProcess,
        user: &users[(i % 50) as usize],
        login: 1_000_000 + (i / 3) * 1_000_000,
        // The two closed rows of a group closed at once: a tie only their IDs order.
        logout: (i % 3 != 0).then_some(2_000_000 + (i / 3) * 1_000_000),
        tty: Some(&ttys[(i % 13) as usize]),
        host: Some("10.0.0.1"),
        service: Some("sshd"),
    });
    db.insert_all(rows, |_| {}).unwrap();
}

/// What a filtered listing must list: the rows of the whole listing whose User or TTY is
/// one of `values`, in its order, up to `login_at_most`.
fn listed_by_hand(db: &Database, values: &[&str], login_at_most: Option<Usec>) -> Vec<Entry> {
    db.entries(&Filter::default())
        .map(Result::unwrap)
        .filter(|e| {
            values.contains(&e.user.as_str()) || values.contains(&e.tty.as_deref().unwrap_or(""))
        })
        .filter(|e| login_at_most.is_none_or(|m| e.login <= m))
        .collect()
}

fn filtered(values: &[&str], login_at_most: Option<Usec>, rows_wanted: usize) -> Filter {
    Filter {
        users_or_ttys: values.iter().map(|v| v.to_string()).collect(),
        login_at_most,
        rows_wanted,
    }
}

/// A filtered listing lists the rows of the whole listing that match, in its order,
/// whatever the filter holds (users, ttys, a row matching both, a time bound, a limit),
/// whether it reads them all at once or (wanting fewer first) by keys and chunks.
#[test]
fn a_filtered_listing_lists_the_matching_rows_in_order() {
    let (dir, mut db) = new_db();
    fifty_users_in_turn(&mut db);
    let path = dir.path().join("sub/wtmp.db");
    let reader = Database::open_read_only(&path).unwrap();
    // All at once, and (wanting 100 rows first) by keys and chunks.
    for wanted in [0, 100] {
        let got: Vec<Entry> = reader
            .entries(&filtered(&["u07"], None, wanted))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, listed_by_hand(&db, &["u07"], None));
        assert_eq!(got.len(), 400);
    }
    for (values, at_most, wanted) in [
        (&["u07", "pts/5"][..], None, 0),
        (&["pts/5"], None, 0),
        (&["u07", "u08"], Some(3_000_000_000), 0),
        (&["u07", "pts/5"], None, 100),
        (&["nobody"], None, 0),
    ] {
        let got: Vec<Entry> = reader
            .entries(&filtered(values, at_most, wanted))
            .map(Result::unwrap)
            .collect();
        let want = listed_by_hand(&db, values, at_most);
        assert_eq!(got, want, "{values:?} {at_most:?}");
    }
}

/// Rows of equal Login in a filtered listing are in upstream's order, whichever way the
/// listing reads them (all at once, or by keys and chunks): no logout first, then the
/// earlier logout, then the lower ID.
#[test]
fn a_filtered_listing_orders_rows_of_equal_login_as_upstream() {
    let (dir, mut db) = new_db();
    let logouts = [Some(30), Some(20), None, Some(20), Some(20)];
    let rows = logouts.iter().map(|&logout| NewEntry {
        logout,
        ..session("tie", "pts/1", 10)
    });
    db.insert_all(rows, |_| {}).unwrap();
    let reader = Database::open_read_only(&dir.path().join("sub/wtmp.db")).unwrap();
    for wanted in [0, 100] {
        let got: Vec<(Option<Usec>, i64)> = reader
            .entries(&filtered(&["tie"], None, wanted))
            .map(|e| e.map(|e| (e.logout, e.id)).unwrap())
            .collect();
        let logouts: Vec<Option<Usec>> = got.iter().map(|&(l, _)| l).collect();
        assert_eq!(logouts, [None, Some(20), Some(20), Some(20), Some(30)]);
        let ids: Vec<i64> = got[1..4].iter().map(|&(_, id)| id).collect();
        assert!(ids.is_sorted(), "{got:?}");
    }
}

/// A reader lists a file without indexes (upstream's, which it never changes) as one
/// with them.
#[test]
fn a_users_rows_are_listed_alike_with_or_without_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut db = Database::open(&path, &OpenOptions::read_write().migrate(Migrate::Never)).unwrap();
    fifty_users_in_turn(&mut db);
    let index_names = |db: &Database| -> Vec<String> {
        let conn = db.connection();
        let mut stmt = conn.prepare(queries::READER_SCHEMA).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut names = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            if r.get::<_, String>(0).unwrap() == "index" {
                names.push(r.get::<_, String>(1).unwrap());
            }
        }
        names.sort();
        names
    };
    let cases: [(&[&str], Option<Usec>); 3] = [
        (&["u07"], None),
        (&["u07", "pts/5"], None),
        (&["u08"], Some(2_000_000_000)),
    ];
    let list_all = |reader: &Database| -> Vec<Vec<Entry>> {
        cases
            .iter()
            .map(|(values, at_most)| {
                reader
                    .entries(&filtered(values, *at_most, 0))
                    .map(Result::unwrap)
                    .collect()
            })
            .collect()
    };
    let want: Vec<Vec<Entry>> = cases
        .iter()
        .map(|(values, at_most)| listed_by_hand(&db, values, *at_most))
        .collect();
    // No index (upstream's file).
    assert!(index_names(&db).is_empty());
    assert_eq!(list_all(&Database::open_read_only(&path).unwrap()), want);
    drop(db);
    // The next writer adds the indexes.
    let db = Database::open_read_write(&path).unwrap();
    assert!(index_names(&db).contains(&"wtmp_user".to_string()));
    assert_eq!(list_all(&Database::open_read_only(&path).unwrap()), want);
}

/// logrotate's `copytruncate` (the file copied, then truncated to nothing) while a writer's
/// connection, opened before, writes: its commit changed a few pages, and its checkpoint
/// wrote them into the emptied file at their places, the file then starting with a page of
/// zeros (no header, no schema) on which every later write failed. Now the checkpoint finds
/// the file empty and copies nothing: the write fails (the session writer spools its
/// record), the file stays empty, and the next writer keeps the log, whose frames belong
/// to the copy, as orphaned and starts the file afresh.
#[test]
fn a_file_truncated_under_a_writer_gets_none_of_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let opts = OpenOptions::read_write().copy_each_commit(true);
    {
        let db = Database::open(&path, &opts).unwrap();
        for i in 0..50 {
            db.login(&session("alice", "pts/1", i)).unwrap();
        }
    }
    let db = Database::open(&path, &opts).unwrap();
    db.login(&session("bob", "pts/2", 100)).unwrap();
    std::fs::copy(&path, dir.path().join("w.db.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let e = db.login(&session("carol", "pts/3", 200)).unwrap_err();
    assert!(matches!(e, Error::TruncatedUnderWrite { .. }), "{e}");
    assert!(e.is_damaged());
    // Nor any later checkpoint of this connection, its close's included.
    assert!(!db.checkpoint_now());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "no page written"
    );
    drop(db);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "no page written"
    );
    // The next writer starts the file afresh, the log kept aside.
    let db = Database::open(&path, &opts).unwrap();
    db.login(&session("dave", "pts/4", 300)).unwrap();
    let users: Vec<String> = db
        .entries(&Filter::default())
        .map(|r| r.unwrap().user)
        .collect();
    assert_eq!(users, ["dave"]);
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("w.db-wal.orphaned-")
        })
        .count();
    assert_eq!(kept, 1);
    // A database just created has its header in the file before its first checkpoint
    // (SQLite writes it to switch the file to WAL): not taken for one truncated.
    let fresh = dir.path().join("fresh.db");
    let db = Database::open(&fresh, &opts).unwrap();
    db.login(&session("erin", "pts/5", 400)).unwrap();
    assert!(std::fs::metadata(&fresh).unwrap().len() > 0);
}

/// The look for another database's log ([`set_aside_foreign_log`]) never takes a sound
/// file's own log for one: a reader pins commits in the log (the file alone is sound and
/// lacks them, the file through the log is sound too), and the log stays where it is.
#[test]
fn a_sound_files_own_pinned_log_is_never_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let opts = OpenOptions::read_write().copy_each_commit(true);
    let db = Database::open(&path, &opts).unwrap();
    db.login(&session("alice", "pts/1", 1)).unwrap();
    let reader =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    reader.execute_batch(queries::BEGIN_READ).unwrap();
    let _: i64 = reader
        .query_row(queries::COUNT_ROWS, [], |r| r.get(0))
        .unwrap();
    for i in 0..5 {
        db.login(&session("bob", "pts/2", 10 + i)).unwrap();
    }
    let log = side_files::side_file(&path, "-wal");
    assert!(log_may_hold_frames(&log));
    let until = Instant::now() + Duration::from_secs(5);
    assert_eq!(set_aside_foreign_log(&path, until).unwrap(), None);
    assert!(log_may_hold_frames(&log), "the log is where it was");
    drop(reader);
    assert_eq!(db.entries(&Filter::default()).count(), 6);
}

/// A write that finds no `wtmp` table (the file emptied or replaced under its connection
/// since the open: logrotate's `copytruncate` in between) is the database unusable, as a
/// truncate during the write is ([`Error::TruncatedUnderWrite`]): the session writer spools
/// its record. It failed as a plain SQL error before, and the login was lost. The table is
/// dropped here, which SQLite reports alike.
#[test]
fn a_write_that_finds_no_table_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let opts = OpenOptions::read_write().copy_each_commit(true);
    let db = Database::open(&path, &opts).unwrap();
    db.login(&session("alice", "pts/1", 1)).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch(queries::DROP_WTMP).unwrap();
    drop(other);
    let e = db.login(&session("bob", "pts/2", 2)).unwrap_err();
    assert!(e.is_damaged(), "{e:?}");
}
