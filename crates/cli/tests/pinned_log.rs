//! The direct mode (no daemon) under a reader that pins the WAL log: any user who may read
//! the database can open it and keep a read transaction, and then no checkpoint can reset
//! the log. A session write then appends nothing to a log over its bound
//! (`WalSettings::LOG_CAP_BYTES`): its records go to the spool, at a constant cost, and are
//! merged, each once, when root reads or once the reader lets go. Real SQLite files, the
//! real `wtmpdb` binary, and the reader in a process of its own (`nobody`, as root).

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use wtmpdb::session::{CloseTarget, RowClosed, SessionItems, spool};
use wtmpdb::storage::{WalSettings, log_may_hold_frames};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");

/// How far past its bound the log may be: the pages of the one write that found it just
/// under the bound (a session's pages are some 34 KB).
const SLACK: u64 = 128 << 10;

/// `n` sessions through `w` (users `u0`, `u1`, ... added to `users`), the log checked to
/// be within its bound after each, `under` what: how many records went to the spool.
fn sessions_with_the_log_bounded(
    w: &Writer,
    db: &Path,
    users: &mut Vec<String>,
    n: usize,
    under: &str,
) -> usize {
    let mut spooled = 0;
    for i in 0..n {
        let u = format!("u{i}");
        spooled += session(w, &u);
        users.push(u);
        let log = size(&wal(db));
        assert!(
            log <= WalSettings::LOG_CAP_BYTES + SLACK,
            "after {} sessions under {under} the log is {log} bytes ({spooled} records spooled)",
            i + 1
        );
    }
    spooled
}

/// One login and its logout through `w`, as the PAM module writes them: how many of the
/// two went to the spool.
fn session(w: &Writer, user: &str) -> usize {
    let items = SessionItems::from_bytes(user.as_bytes(), Some(b"pts/7"), None, Some(b"sshd"));
    let logged = w.open(&items, 1, wtmpdb::time::now()).unwrap();
    let closed = w.close(
        CloseTarget::Id(logged.session.id, None),
        Some(logged.via),
        &items,
        1,
        wtmpdb::time::now(),
    );
    let logout = closed.row.unwrap();
    usize::from(logged.spooled.is_some()) + usize::from(matches!(logout, RowClosed::Spooled(_)))
}

fn wal(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// A database in a directory `nobody` may enter (as /var/lib/wtmpdb), with one session.
fn database() -> (tempfile::TempDir, PathBuf, Writer) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("wtmp.db");
    let w = Writer::new(Target::File(db.clone()));
    session(&w, "first");
    assert!(!log_may_hold_frames(&wal(&db)), "at rest before the reader");
    (dir, db, w)
}

fn end(mut reader: Child) {
    drop(reader.stdin.take());
    reader.wait().unwrap();
}

/// Every row of the table: user -> (rows, rows without logout).
fn rows(db: &Path) -> BTreeMap<String, (u32, u32)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut s = c.prepare("SELECT User, Logout IS NULL FROM wtmp").unwrap();
    let mut by = BTreeMap::new();
    for r in s
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
        .unwrap()
    {
        let (user, open) = r.unwrap();
        let e = by.entry(user).or_insert((0, 0));
        e.0 += 1;
        e.1 += u32::from(open);
    }
    by
}

/// After the reader let go: the next writes reset the log and merge what waits; then every
/// session is in the table once, closed, the spool is empty and the log too (at rest).
#[track_caller]
fn every_session_once_after_the_reader(w: &Writer, db: &Path, users: &mut Vec<String>) {
    for i in 0..20 {
        let u = format!("after{i}");
        assert_eq!(session(w, &u), 0, "the log is reset: written live");
        users.push(u);
        if spool::waiting(db).unwrap() == 0 {
            break;
        }
    }
    assert_eq!(
        spool::waiting(db).unwrap(),
        0,
        "the writes merged the spool"
    );
    assert!(!log_may_hold_frames(&wal(db)), "the log is reset at rest");
    let rows = rows(db);
    let wrong: Vec<_> = rows.iter().filter(|(_, n)| **n != (1, 0)).collect();
    assert!(wrong.is_empty(), "lost, doubled or open: {wrong:?}");
    let mut want = users.clone();
    want.sort();
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), want);
}

/// Under a reader that holds a read transaction, the log stays under its bound whatever
/// the number of sessions (it grew by some 34 KB a session: 4 MB here), the records that
/// did not go into it wait in the spool, root's `wtmpdb last` (the spool's owner merges
/// before it reads) shows every session with its logout while the reader still holds the
/// log, and once the reader ends every session is in the table exactly once.
#[test]
fn a_reader_pinning_the_log_keeps_it_bounded_and_loses_no_record() {
    let (_dir, db, w) = database();
    let Some(reader) = support::reader_pins_the_log(&db) else {
        return;
    };
    let mut users = vec!["first".to_string()];
    let spooled = sessions_with_the_log_bounded(&w, &db, &mut users, 120, "the reader");
    assert!(spooled > 150, "only {spooled} records spooled");
    // The spool's owner merges before it reads, the reader still there.
    let out = Command::new(BIN)
        .args(["last", "-f", db.to_str().unwrap()])
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for u in &users {
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(u))
            .collect();
        assert_eq!(lines.len(), 1, "{u} in `last`:\n{text}");
        assert!(!lines[0].contains("still logged in"), "{}", lines[0]);
    }
    assert_eq!(spool::waiting(&db).unwrap(), 0, "merged by `last`");
    end(reader);
    every_session_once_after_the_reader(&w, &db, &mut users);
}

/// `nobody`'s reader opens the file read-only, so it cannot attach to the WAL index: each
/// connection of a writer is then the first to open it and rebuilds it by reading the whole
/// log. Before the bound a session read twice the log (35 MB at an 18 MB log, 22 ms); now
/// what a session reads does not grow with the sessions written under the reader.
#[test]
#[ignore = "needs root: the reader is nobody, who cannot attach to the index"]
fn nobodys_reader_does_not_make_sessions_read_the_log() {
    support::require_root();
    let (_dir, db, w) = database();
    let Some(reader) = support::reader_pins_the_log(&db) else {
        return;
    };
    let mut users = vec!["first".to_string()];
    for i in 0..300 {
        let u = format!("u{i}");
        session(&w, &u);
        users.push(u);
    }
    let before = read_bytes();
    let mut spooled = 0;
    for i in 0..20 {
        let u = format!("v{i}");
        spooled += session(&w, &u);
        users.push(u);
    }
    let per_session = (read_bytes() - before) / 20;
    let log = size(&wal(&db));
    assert!(
        per_session < 64 << 10,
        "a session read {per_session} bytes (the log is {log} bytes)"
    );
    assert!(
        log <= WalSettings::LOG_CAP_BYTES + SLACK,
        "the log is {log} bytes"
    );
    assert_eq!(spooled, 40, "every record spooled");
    end(reader);
    every_session_once_after_the_reader(&w, &db, &mut users);
}

/// The bytes this process has read (`/proc/self/io`).
fn read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The Python program of [`nobodys_lock_on_the_checkpoint_byte_does_not_grow_the_log`]: a
/// read-only connection that attaches to the index (a root connection is attached when it
/// opens) and stays open without a transaction, and a shared lock on the checkpoint byte
/// (121) of the `-shm` file, taken through a descriptor of its own (never closed: that
/// would drop the connection's locks too). Both are what read access to the 0644 files
/// allows any user.
const ATTACH_AND_LOCK_CHECKPOINTS_PY: &str = "import fcntl, os, sqlite3, sys\n\
    c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, isolation_level=None)\n\
    c.execute('SELECT count(*) FROM wtmp').fetchone()\n\
    fd = os.open(sys.argv[1] + '-shm', os.O_RDONLY)\n\
    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 121, 0)\n\
    print('locked', flush=True)\n\
    sys.stdin.read()\n";

/// `nobody` keeps every checkpoint out with a shared lock on the checkpoint byte, while an
/// attached connection of theirs keeps the index valid (so writers need no rebuild and
/// are not shut out): no checkpoint can reset the log. Once it is over its bound, the
/// sessions' records must go to the spool, also when they come one right after another
/// (a login and its logout, a busy host): each write finds the log written a moment ago
/// by the one before.
#[test]
#[ignore = "needs root: the lock holder is nobody"]
fn nobodys_lock_on_the_checkpoint_byte_does_not_grow_the_log() {
    support::require_root();
    let (_dir, db, w) = database();
    // A root connection attached to the index while nobody's connection opens, so that
    // nobody's attaches too (the state while any writer is at work); then closed.
    let root = rusqlite::Connection::open(&db).unwrap();
    root.query_row("SELECT count(*) FROM wtmp", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let Some(holder) =
        support::nobody_runs_python(ATTACH_AND_LOCK_CHECKPOINTS_PY, &[db.as_os_str()], "locked")
    else {
        return;
    };
    drop(root);
    let mut users = vec!["first".to_string()];
    let spooled = sessions_with_the_log_bounded(
        &w,
        &db,
        &mut users,
        150,
        "nobody's lock on the checkpoint byte",
    );
    assert!(spooled > 100, "only {spooled} records spooled");
    end(holder);
    every_session_once_after_the_reader(&w, &db, &mut users);
}
