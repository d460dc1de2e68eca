//! A user who may read the database (0644, as upstream's and Debian's) can take a shared
//! `fcntl` lock on the write, checkpoint or recovery byte of its `-shm` file, which SQLite
//! takes only exclusively: every writer is kept out for as long as the lock is held. No wait
//! gets past it, so a session write that finds such a lock spools at once instead of waiting
//! out its bound (40 ms a call, 85 ms a session measured by `bench/attacks.sh` before), says
//! which process holds it, and the record is merged by the first write after the lock goes.
//! Checked for the lock alone (nobody attached to the index: SQLite's own retries of the
//! index's rebuild, whose first wait looks) and with the attach byte too (a connection
//! attached: SQLite's busy handler).

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use wtmpdb::session::{CloseTarget, SessionItems};
use wtmpdb::storage::{self, ForeignLock};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

/// A process of this user holding a shared lock on bytes `start`..`start + len` of `shm`
/// until its stdin closes.
fn lock_holder(shm: &Path, start: u32, len: u32) -> Option<Child> {
    let python = support::tool("python3")?;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(
            "import fcntl, os, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, int(sys.argv[3]), int(sys.argv[2]), 0)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
        )
        .arg(shm)
        .arg(start.to_string())
        .arg(len.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    Some(child)
}

fn items(user: &str) -> SessionItems {
    SessionItems::from_bytes(user.as_bytes(), Some(b"pts/3"), None, Some(b"sshd"))
}

fn users(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT User FROM wtmp WHERE Type = 3 AND Logout IS NOT NULL ORDER BY Login")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_shared_lock_that_keeps_writers_out_spools_at_once() {
    for (start, len) in [(120, 1), (120, 9)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let w = Writer::new(Target::File(db.clone()));
        let first = w.open(&items("first"), 1, 1).unwrap();
        w.close(
            CloseTarget::Id(first.session.id, None),
            Some(first.via),
            &items("first"),
            1,
            2,
        )
        .row
        .unwrap();
        let Some(mut holder) = lock_holder(&dir.path().join("wtmp.db-shm"), start, len) else {
            return;
        };
        // With the attach byte held too, a reader is attached: keep one, as the attacker's
        // lock then stands for a connection that is.
        let before = storage::lock_sleeps();
        let logged = w.open(&items("locked"), 1, 3).unwrap();
        let slept = storage::lock_sleeps() - before;
        assert!(logged.spooled.is_some(), "bytes {start}+{len}: spooled");
        assert_eq!(
            logged.shut_out,
            Some(ForeignLock {
                byte: 120,
                pid: holder.id() as i32
            }),
            "bytes {start}+{len}: the holder is named"
        );
        assert!(
            slept <= 2,
            "bytes {start}+{len}: the write slept {slept} times for the lock instead of giving up"
        );
        let closed = w.close(
            CloseTarget::Id(logged.session.id, None),
            Some(logged.via),
            &items("locked"),
            1,
            4,
        );
        closed.row.unwrap();
        drop(holder.stdin.take());
        holder.wait().unwrap();
        // The lock is gone: the next write merges what waited.
        let after = w.open(&items("after"), 1, 5).unwrap();
        w.close(
            CloseTarget::Id(after.session.id, None),
            Some(after.via),
            &items("after"),
            1,
            6,
        )
        .row
        .unwrap();
        assert_eq!(
            users(&db),
            ["first", "locked", "after"],
            "bytes {start}+{len}"
        );
    }
}

/// Child process mode of this test binary (see `support::hold_lock`). Not a test by itself.
#[test]
#[ignore = "child-process helper, run by the tests that hold a database's lock"]
fn child_process_lock_holder() {
    support::lock_holder_child()
}

/// Child process mode of this test binary: one login through the session writer into the
/// database named in the environment. Not a test by itself.
#[test]
#[ignore = "child-process helper, run by the tests below"]
fn child_process_one_login() {
    let db = std::path::PathBuf::from(std::env::var_os("WTMPDB_TEST_DB").expect("helper"));
    let w = Writer::new(Target::File(db));
    w.open(&items("waiting"), 1, 10).unwrap();
}

/// A session write that finds another process's writer holding the lock (an import's
/// batch, another login's commit) looks at what is in its way without reading
/// `/proc/locks`: it asks the kernel (F_GETLK) through SQLite's own descriptor of the
/// `-shm` file. Each read of `/proc/locks` waits for an RCU grace period, in which no
/// process can take or release an `fcntl` lock: 4-30 ms under an import's load, paid by
/// every login that waited for a batch (logins during an import: p50 24 ms).
#[test]
fn a_write_behind_another_writer_does_not_read_proc_locks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wtmp.db");
    let w = Writer::new(Target::File(db.clone()));
    w.open(&items("first"), 1, 1).unwrap();
    let mut holder = support::hold_lock(&db);
    let trace = one_login_traced(&db);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    if let Some(trace) = trace {
        opened_the_index_not_proc_locks(&trace);
    }
}

/// The files one login through the session writer into `db` opens, in a process of its
/// own under strace (None without strace, outside CI).
fn one_login_traced(db: &Path) -> Option<String> {
    support::strace_child_test(
        "openat,open",
        "child_process_one_login",
        &[("WTMPDB_TEST_DB", db.as_os_str())],
    )
}

/// Checks a trace of [`one_login_traced`]: the write opened the index, and never read
/// `/proc/locks`.
fn opened_the_index_not_proc_locks(trace: &str) {
    assert!(
        trace.contains("-shm"),
        "the write did not open the index:\n{trace}"
    );
    assert!(
        !trace.contains("/proc/locks"),
        "the write read /proc/locks:\n{trace}"
    );
}

/// A session write that finds the log over its bound while a writer is at work on it (an
/// import's batch, committed and on its way into the file) does not read `/proc/locks` to
/// look for a reader pinning the log: the log was written just now, and the write's own
/// checkpoint tells. Here another connection commits every few milliseconds without
/// copying, as an import's batches fill the log.
#[test]
fn a_write_while_a_writer_fills_the_log_does_not_read_proc_locks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wtmp.db");
    let w = Writer::new(Target::File(db.clone()));
    w.open(&items("first"), 1, 1).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (filled_tx, filled) = std::sync::mpsc::channel();
    let filler = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE IF NOT EXISTS filler(b)")
                .unwrap();
            let mut sent = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.execute("INSERT INTO filler VALUES (zeroblob(65536))", [])
                    .unwrap();
                let log = std::fs::metadata(wal_of(&db)).unwrap().len();
                if !sent && log > storage::WalSettings::LOG_CAP_BYTES {
                    filled_tx.send(()).unwrap();
                    sent = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    filled.recv().unwrap();
    let trace = one_login_traced(&db);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
    if let Some(trace) = trace {
        opened_the_index_not_proc_locks(&trace);
    }
}

fn wal_of(db: &Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}
