//! A user who may read the database but not write its `-shm` index reads through the
//! moment another process rebuilds the index. The user's connection, finding no other on
//! the index (logins at rest), reads the log without it; at its next read, a writer has
//! opened the index meanwhile, emptied it and not yet locked it for the rebuild: SQLite
//! answers that read `SQLITE_READONLY_RECOVERY` ("attempt to write a readonly database"),
//! which failed about one `last` in 700 while logins went on. Made still here.

mod support;

wtmpdb::load_sqlite_at_start!();

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wtmpdb::session::{CloseTarget, FileWriter, SessionItems};
use wtmpdb::storage::{Database, Entry, Filter, OpenOptions};

const NOBODY: libc::uid_t = 65534;

/// How long the writer of [`read_in_a_writers_first_moments`] stays in its first moments
/// before it rebuilds the index, when the read waits for it.
const REBUILT_AFTER: Duration = Duration::from_millis(200);

fn items(user: &str) -> SessionItems {
    SessionItems {
        user: user.into(),
        tty: "pts/1".into(),
        host: None,
        service: None,
    }
}

/// A database in a directory every user may enter, with the closed sessions of `closed`
/// and the open one of `open`, at rest: its log empty, no connection open.
fn database_at_rest(dir: &Path, closed: &[&str], open: &str) -> PathBuf {
    support::chmod(dir, 0o755);
    let path = dir.join("w.db");
    let writer = FileWriter::new(&path);
    let mut at = 1_000_000;
    for user in closed {
        let id = writer.open(&items(user), 1, at).unwrap().session.id;
        let closed = writer.close(CloseTarget::Id(id, None), &items(user), 1, at + 500_000);
        closed.row.unwrap();
        at += 1_000_000;
    }
    writer.open(&items(open), 1, at).unwrap();
    drop(writer);
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    assert!(
        !wtmpdb::storage::log_may_hold_frames(log.as_ref()),
        "the log at rest"
    );
    path
}

/// Makes the calling thread's file-system user `nobody` (its other threads keep theirs):
/// its opens are checked as nobody's, so SQLite opens the root-owned `-shm` read-only.
fn this_thread_opens_files_as_nobody() {
    // SAFETY: setfsuid takes a plain integer and changes only the calling thread's
    // credentials; the second call, with an ID that cannot be set, reports the one in force.
    let now = unsafe {
        libc::setfsuid(NOBODY);
        libc::setfsuid(libc::uid_t::MAX)
    };
    assert_eq!(now as libc::uid_t, NOBODY, "setfsuid");
}

/// `read` on a thread opening files as nobody, on the database `path` opened with `opts`;
/// while its `pause` is held another process gets into a writer's first moments on the
/// index (see the module documentation and [`support::writer_in_its_first_moments`]).
/// That process rebuilds the index, as the writer does, `rebuild_after` the pause ended
/// and before `read` is waited for; or, with None, after `read` ended. What `read` gave.
fn read_in_a_writers_first_moments<T: Send + 'static>(
    path: &Path,
    opts: OpenOptions,
    rebuild_after: Option<Duration>,
    read: impl FnOnce(&Database, &mut dyn FnMut()) -> T + Send + 'static,
) -> Option<T> {
    let (paused, wait_for_pause) = mpsc::channel();
    let (go_on, wait_to_go_on) = mpsc::channel();
    let reading = {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            this_thread_opens_files_as_nobody();
            let db = Database::open(&path, &opts).unwrap();
            read(&db, &mut || {
                paused.send(()).unwrap();
                wait_to_go_on.recv().unwrap();
            })
        })
    };
    wait_for_pause.recv().unwrap();
    let writer = support::writer_in_its_first_moments(path, true);
    go_on.send(()).unwrap();
    let Some(mut writer) = writer else {
        let _ = reading.join();
        return None;
    };
    let mut rebuild = move || {
        drop(writer.stdin.take());
        assert!(
            writer.wait().unwrap().success(),
            "the rebuilding writer failed"
        );
    };
    Some(match rebuild_after {
        Some(after) => {
            std::thread::sleep(after);
            rebuild();
            reading.join().unwrap()
        }
        None => {
            let read = reading.join().unwrap();
            rebuild();
            read
        }
    })
}

fn users(rows: &[Entry]) -> Vec<&str> {
    rows.iter().map(|e| e.user.as_str()).collect()
}

/// `last`: the next chunk of a listing.
#[test]
#[ignore = "needs root: a reader thread runs with nobody as its file-system user"]
fn a_users_listing_reads_on_through_an_index_rebuild() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = database_at_rest(dir.path(), &["ann", "bob"], "cat");
    let read = read_in_a_writers_first_moments(
        &path,
        OpenOptions::read_only(),
        Some(REBUILT_AFTER),
        |db, pause| {
            let filter = Filter {
                rows_wanted: 1,
                ..Filter::default()
            };
            let mut entries = db.entries(&filter);
            let first = entries.next().unwrap().unwrap();
            pause();
            let rest: Result<Vec<_>, _> = entries.collect();
            (first, rest.map_err(|e| e.to_string()))
        },
    );
    let Some((first, rest)) = read else {
        return;
    };
    assert_eq!(first.user, "cat");
    assert_eq!(users(&rest.expect("the listing read on")), ["bob", "ann"]);
}

/// `who`: a lookup on a database opened before.
#[test]
#[ignore = "needs root: a reader thread runs with nobody as its file-system user"]
fn a_users_lookup_reads_through_an_index_rebuild() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = database_at_rest(dir.path(), &["ann"], "bob");
    let read = read_in_a_writers_first_moments(
        &path,
        OpenOptions::read_only(),
        Some(REBUILT_AFTER),
        |db, pause| {
            pause();
            db.open_since(0).map_err(|e| e.to_string())
        },
    );
    let Some(open) = read else {
        return;
    };
    let open = open.expect("the lookup read");
    let open: Vec<Entry> = open.into_iter().map(|o| o.entry).collect();
    assert_eq!(users(&open), ["bob"]);
}

/// A user's read that was told not to wait (a busy timeout of zero) does not wait out an
/// index in the making either: it fails at once, as its open does (which tries again only
/// within the busy timeout), instead of after the 500 ms of a reader that may wait.
#[test]
#[ignore = "needs root: a reader thread runs with nobody as its file-system user"]
fn a_read_told_not_to_wait_does_not_wait_out_an_index_rebuild() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = database_at_rest(dir.path(), &["ann"], "bob");
    let opts = OpenOptions::read_only().busy_timeout(Duration::ZERO);
    // Still in its first moments until the read is over.
    let read = read_in_a_writers_first_moments(&path, opts, None, |db, pause| {
        pause();
        let started = Instant::now();
        let read = db.open_since(0).map_err(|e| e.to_string());
        (read, started.elapsed())
    });
    let Some((read, took)) = read else {
        return;
    };
    let e = read.expect_err("the index is still in the making");
    assert!(e.ends_with("attempt to write a readonly database"), "{e}");
    assert!(took < Duration::from_millis(250), "waited {took:?}");
}
