//! Every acknowledged record is in the main database file at rest: once no write is in
//! flight (at once for the direct writer, whose call checkpoints before it returns; within a
//! second for `wtmpdbd`, which checkpoints when idle), the database file alone holds every
//! row. Checked with the tools an admin uses on it: Debian's logrotate stanza for
//! `/var/log/wtmp.db` run by the real `logrotate`, `cp`, and `rm` of the `-wal` file, the
//! results read by `sqlite3` and `wtmpdb last`.
//!
//! The sessions are written through the one write path (`wtmpdb::writer::Writer`, what the
//! PAM module and the C library call): into the file, and through a real `wtmpdbd`.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wtmpdb::session::{CloseTarget, SessionItems};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");

/// Debian's stanza, as `libwtmpdb0` ships it in /etc/logrotate.d/wtmpdb, for `db`.
fn debian_stanza(db: &Path) -> String {
    format!(
        "{} {{\n\tmissingok\n\tyearly\n\tcreate\n\tnocompress\n\trotate 4\n}}\n",
        db.display()
    )
}

/// How long the daemon may take to leave its writes in the file (the README's promise).
const AT_REST: Duration = Duration::from_secs(1);

fn daemon_bin() -> PathBuf {
    support::workspace_binary("wtmpdbd", "crates/daemon")
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One login and its logout through `w`, as the PAM module writes them.
fn session(w: &Writer, user: &str) {
    let items = SessionItems::from_bytes(user.as_bytes(), Some(b"pts/7"), None, Some(b"sshd"));
    let logged = w.open(&items, 1, wtmpdb::time::now()).unwrap();
    let closed = w.close(
        CloseTarget::Id(logged.session.id, None),
        Some(logged.via),
        &items,
        1,
        wtmpdb::time::now(),
    );
    closed.row.unwrap();
}

/// The users of `db`'s rows, in order, read by the `sqlite3` shell from a copy of the
/// database file alone (no side file beside it), as a backup of that file would be read.
fn users_in_the_file_alone(db: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(db, &copy).unwrap();
    users_by_sqlite3(&copy)
}

/// The users of the rows of `db` as the `sqlite3` shell reads it (with whatever lies beside
/// it).
fn users_by_sqlite3(db: &Path) -> Vec<String> {
    let out = ok(run(
        "sqlite3",
        &[s(db), "SELECT User FROM wtmp WHERE Type = 3 ORDER BY ID"],
    ));
    out.lines().map(str::to_string).collect()
}

/// Files in `dir` whose name holds "orphaned": logs set aside, which no reader reads.
fn orphaned(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("orphaned"))
        .collect()
}

/// `logrotate -f` with Debian's stanza for `db`, its state file and configuration in
/// `work`. False when logrotate or sqlite3 is missing (see `support::tool`).
fn logrotate(db: &Path, work: &Path) -> bool {
    let Some(bin) = support::tool("logrotate") else {
        return false;
    };
    let conf = work.join("wtmpdb.logrotate");
    std::fs::write(&conf, debian_stanza(db)).unwrap();
    support::chmod(&conf, 0o644);
    ok(Command::new(bin)
        .arg("-f")
        .arg("-s")
        .arg(work.join("logrotate.state"))
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .unwrap());
    true
}

fn tools() -> bool {
    support::tool("sqlite3").is_some() && support::tool("logrotate").is_some()
}

/// The three checks on `db`, written by `w` (the file, or the daemon, whose writes have
/// `settle` to reach the file): `cp`, removal of the `-wal` file, and Debian's logrotate
/// stanza; after each, every acknowledged row is in the file that readers and backups see.
fn every_row_at_rest(w: &Writer, db: &Path, settle: Duration) {
    let work = tempfile::tempdir().unwrap();
    let dir = db.parent().unwrap().to_path_buf();
    // A young database: its first sessions (the schema too was in the log alone).
    let mut users: Vec<String> = (0..3).map(|i| format!("young{i}")).collect();
    for u in &users {
        session(w, u);
    }
    std::thread::sleep(settle);
    // An admin's backup: `cp` of the database file.
    let backup = work.path().join("backup.db");
    ok(run("cp", &[s(db), s(&backup)]));
    assert_eq!(users_by_sqlite3(&backup), users, "cp after the writes");

    // The `-wal` file removed (by an admin, a cleaning script): nothing lost.
    for i in 0..3 {
        let u = format!("rm{i}");
        session(w, &u);
        users.push(u);
    }
    std::thread::sleep(settle);
    std::fs::remove_file(dir.join("wtmp.db-wal")).unwrap();
    assert_eq!(users_in_the_file_alone(db), users, "the -wal file removed");
    let last = ok(run(BIN, &["last", "-f", s(db)]));
    for u in &users {
        assert!(last.contains(u.as_str()), "{u} missing from last:\n{last}");
    }
    session(w, "after-rm");
    users.push("after-rm".into());
    std::thread::sleep(settle);
    assert_eq!(users_in_the_file_alone(db), users, "a write after the rm");

    // Debian's stanza: rename + create, by the real logrotate.
    for i in 0..3 {
        let u = format!("rotate{i}");
        session(w, &u);
        users.push(u);
    }
    std::thread::sleep(settle);
    assert!(logrotate(db, work.path()));
    let rotated = dir.join("wtmp.db.1");
    assert_eq!(
        std::fs::metadata(db).unwrap().len(),
        0,
        "logrotate's create"
    );
    assert_eq!(users_in_the_file_alone(&rotated), users, "the rotated file");
    let last = ok(run(BIN, &["last", "-f", s(&rotated)]));
    for u in &users {
        assert!(last.contains(u.as_str()), "{u} missing from last:\n{last}");
    }
    // The next session goes into the new file; nothing of the old one is set aside.
    session(w, "rotated");
    std::thread::sleep(settle);
    assert_eq!(users_in_the_file_alone(db), ["rotated"]);
    assert_eq!(users_in_the_file_alone(&rotated), users);
    assert_eq!(orphaned(&dir), Vec::<String>::new());
}

/// The direct writer (the PAM module and the C library without the daemon): each call
/// leaves its records in the database file before it returns.
#[test]
fn the_direct_writers_records_are_in_the_database_file_at_rest() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log/wtmp.db");
    let w = Writer::new(Target::File(db.clone()));
    every_row_at_rest(&w, &db, Duration::ZERO);
}

/// `wtmpdbd`, which keeps its connection open between writes: within a second of the last
/// write, its records are in the database file.
#[test]
#[ignore = "needs root: the daemon's writes are for uid 0"]
fn the_daemons_records_are_in_the_database_file_within_a_second() {
    support::require_root();
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = support::Wtmpdbd::start(&daemon_bin(), dir.path(), &[]);
    let w = Writer::new(Target::Daemon {
        socket: d.socket.clone(),
    });
    every_row_at_rest(&w, &d.db, AT_REST);
}

/// A reader that holds a read transaction (any user who may read the file can) pins the
/// log: the daemon's copy cannot pass its snapshot, so the logins after it stay in the log
/// while it lasts (what the README says remains). It delays no login, and once the reader
/// ends the daemon's next try (every second) leaves them in the file.
#[test]
#[ignore = "needs root: the daemon's writes are for uid 0"]
fn a_reader_pins_the_daemons_log_only_while_it_reads() {
    support::require_root();
    if support::tool("sqlite3").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = support::Wtmpdbd::start(&daemon_bin(), dir.path(), &[]);
    let w = Writer::new(Target::Daemon {
        socket: d.socket.clone(),
    });
    session(&w, "first");
    std::thread::sleep(AT_REST);
    assert_eq!(users_in_the_file_alone(&d.db), ["first"]);
    let reader = support::pinning_reader(&d.db);
    let mut users = vec!["first".to_string()];
    for i in 0..5 {
        let u = format!("pinned{i}");
        session(&w, &u);
        users.push(u);
    }
    std::thread::sleep(AT_REST);
    assert_eq!(users_in_the_file_alone(&d.db), ["first"], "the reader pins");
    assert_eq!(users_by_sqlite3(&d.db), users, "readers see every row");
    drop(reader);
    std::thread::sleep(AT_REST * 2);
    assert_eq!(users_in_the_file_alone(&d.db), users);
}

/// `wtmpdbd` stopped at rest (systemd's SIGTERM: the daemon exits without closing its
/// connection) leaves no log frames beside the file: nothing but the file holds the
/// sessions, so what an admin does to the file while the daemon is down sees the file
/// alone. Debian's logrotate then rotates, and the next login (by the direct writer) finds
/// no log of another file to set aside; a backup put back in place with `cp` reads as the
/// backup, without the newer commits replayed over it.
#[test]
#[ignore = "needs root: the daemon's writes are for uid 0"]
fn the_daemon_stopped_at_rest_leaves_no_log_beside_the_file() {
    support::require_root();
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let stop = |d: support::Wtmpdbd| {
        // SAFETY: a signal to the test's own child, which it has not reaped yet.
        assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGTERM) }, 0);
        drop(d);
    };
    let d = support::Wtmpdbd::start(&daemon_bin(), dir.path(), &[]);
    let db = d.db.clone();
    let log = db.with_file_name("wtmp.db-wal");
    let w = Writer::new(Target::Daemon {
        socket: d.socket.clone(),
    });
    let mut users = Vec::new();
    for i in 0..3 {
        let u = format!("before{i}");
        session(&w, &u);
        users.push(u);
    }
    std::thread::sleep(AT_REST);
    let backup = work.path().join("backup.db");
    ok(run("cp", &[s(&db), s(&backup)]));
    for i in 0..3 {
        let u = format!("after{i}");
        session(&w, &u);
        users.push(u);
    }
    std::thread::sleep(AT_REST);
    stop(d);
    // Empty, or a header and zeros: the daemon gives an emptied log its blocks back (no
    // frame behind the header for anyone's recovery).
    let left = std::fs::read(&log).unwrap_or_default();
    assert!(
        left.len() <= 32 || left[32..].iter().all(|&b| b == 0),
        "the stopped daemon left {} bytes of log, not a header and zeros",
        left.len()
    );

    // The backup put back with `cp` (the file overwritten in place) reads as the backup.
    let newest = work.path().join("newest.db");
    ok(run("cp", &[s(&db), s(&newest)]));
    ok(run("cp", &[s(&backup), s(&db)]));
    assert_eq!(users_by_sqlite3(&db), users[..3], "the backup put back");
    ok(run("cp", &[s(&newest), s(&db)]));
    assert_eq!(users_by_sqlite3(&db), users, "the newest file put back");

    // Rotated while the daemon is down; the next login goes into the new file.
    let d = support::Wtmpdbd::start(&daemon_bin(), dir.path(), &[]);
    let w = Writer::new(Target::Daemon {
        socket: d.socket.clone(),
    });
    session(&w, "restarted");
    users.push("restarted".into());
    std::thread::sleep(AT_REST);
    stop(d);
    assert!(logrotate(&db, work.path()));
    let direct = Writer::new(Target::File(db.clone()));
    session(&direct, "rotated");
    let parent = db.parent().unwrap();
    assert_eq!(orphaned(parent), Vec::<String>::new());
    assert_eq!(users_in_the_file_alone(&db), ["rotated"]);
    assert_eq!(users_in_the_file_alone(&parent.join("wtmp.db.1")), users);
}

/// A reader that may not write the `-shm` index (a member of `--readers`' group, the
/// `sqlite3` shell or any program of theirs; `readonly_shm=1` here, as root) and keeps its
/// connection open sees every row the daemon committed between two of its reads, while
/// no writer was connected at either: the daemon started, wrote, came to rest and exited
/// (as it does when idle, socket-activated). SQLite's reader without the index tells that
/// the file changed under its page cache only from the log: a log shorter than a header,
/// or a header whose salts differ from those it saw. A log of zeros has the same (zero)
/// salts every time, so its cache of the first read was taken for the file's state.
#[test]
#[ignore = "needs root: the daemon's writes are for uid 0"]
fn a_reader_without_the_index_sees_what_a_daemon_run_wrote_since_its_last_read() {
    let dir = tempfile::tempdir().unwrap();
    let stop = |d: support::Wtmpdbd| {
        // SAFETY: a signal to the test's own child, which it has not reaped yet.
        assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGTERM) }, 0);
        drop(d);
    };
    let run_daemon = |users: &[&str]| {
        let d = support::Wtmpdbd::start(&daemon_bin(), dir.path(), &[]);
        let w = Writer::new(Target::Daemon {
            socket: d.socket.clone(),
        });
        for u in users {
            session(&w, u);
        }
        std::thread::sleep(AT_REST);
        stop(d);
    };
    run_daemon(&["first"]);
    let db = dir.path().join("db/wtmp.db");
    let reader = wtmpdb::sqlite::open_with_flags(
        format!("file:{}?readonly_shm=1", db.display()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let users = |c: &rusqlite::Connection| -> Vec<String> {
        let mut q = c
            .prepare("SELECT User FROM wtmp WHERE Type = 3 ORDER BY ID")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(users(&reader), ["first"]);

    run_daemon(&["second", "third"]);
    assert_eq!(users_by_sqlite3(&db), ["first", "second", "third"]);
    assert_eq!(
        users(&reader),
        ["first", "second", "third"],
        "the reader's second read, on the connection of its first"
    );
}
