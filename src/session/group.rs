//! Group commit, for a process that writes many sessions at once (the daemon): the logins
//! and logouts that arrive while one transaction commits are written together in the next
//! one, with one sync for all of them (`storage::Database::write_group`). One connection is
//! kept; the writing thread that finds nobody writing writes through it, its own write and
//! every other submitted meanwhile (see [`Committer`]), and each caller learns its outcome
//! only after the commit and the sync, so no caller is ever told a write is done that is
//! not on disk.
//!
//! A [`crate::writer::Writer`] given a [`Committer`] submits its file writes here first.
//! When the group cannot be written (the database is locked by another program past the
//! short busy wait, or an SQL error), every write of the group is handed back and the
//! writer takes the session writer's path ([`super::FileWriter`]: its bounded wait, then the
//! durable spool), exactly as without grouping.
//!
//! The core keeps no logger: the committer's own lines (a group not written, a merge of the
//! spool, a file that changed under it) go to the function its owner passes.

use crate::journal::Events;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use libc::{LOG_DEBUG, LOG_ERR, LOG_NOTICE};

use super::{MIGRATE_MAX_ROWS, SessionItems, spool};
use crate::process::Process;
use crate::storage::{
    Database, Fingerprint, GroupWrite, IndexState, Migrate, OpenFiles, OpenOptions, WalSettings,
    vfs,
};
use crate::time::Usec;

/// Where the committer's lines go: a syslog priority (`libc::LOG_*`) and the message.
pub type Log = fn(i32, std::fmt::Arguments<'_>);

macro_rules! log {
    ($log:expr, $level:expr, $($arg:tt)*) => {
        ($log)($level, format_args!($($arg)*))
    };
}

/// Logs through `log` what a merge of the spool did, when it did something: each file it
/// set aside or removed is in one merge's result only, so this is its only line.
pub fn log_merge(log: Log, merged: &Result<spool::Merged, spool::MergeError>) {
    match merged {
        Ok(m) => {
            if let Some(line) = m.summary() {
                log!(log, LOG_NOTICE, "{line}");
            }
            if m.bad > 0 {
                log!(
                    log,
                    LOG_ERR,
                    "{} spool files are not records; set aside as .bad-*",
                    m.bad
                );
            }
        }
        Err(e) => log!(log, LOG_ERR, "merging the spool: {e}"),
    }
}

/// How long a writer waits for its write's group to commit.
pub const GROUP_WAIT: Duration = Duration::from_secs(30);

/// The most writes in one transaction.
pub const MAX_GROUP: usize = 256;

/// With no write coming, how often the committer looks whether records wait in the spool
/// (written by the session writer when a group could not be, or by another writer).
pub const IDLE_LOOK: Duration = Duration::from_millis(500);

/// While records wait (the database busy, or more than one merge takes), how soon the
/// committer tries again.
pub const IDLE_RETRY: Duration = Duration::from_millis(200);

/// How long an idle merge waits for the database's lock: short, so that a write arriving
/// meanwhile is hardly delayed; the merge is tried again after [`IDLE_RETRY`].
pub const IDLE_LOCK_WAIT: Duration = Duration::from_millis(5);

/// What a write's caller learns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Committed and synced: the login's new row ID, or the logout's row.
    Done(i64),
    /// This write failed on its own (a logout of a row that does not exist).
    Failed(String),
    /// The group could not be written: write it through the session writer.
    Fallback,
}

pub(crate) enum Op {
    Login {
        items: SessionItems,
        process: Process,
        at: Usec,
    },
    /// By row ID; with the session's identity, only if the row is still that session
    /// (else the session writer decides: [`Outcome::Fallback`]).
    Logout {
        id: i64,
        at: Usec,
        identity: Option<super::Identity>,
    },
}

struct Job {
    op: Op,
    reply: Sender<Msg>,
}

/// What a waiting writer is told.
enum Msg {
    /// Its write's outcome.
    Done(Outcome),
    /// The leader let go while writes wait, this one's among them: lead.
    Lead,
}

/// The handle writing threads submit through.
///
/// There is no committer thread on the write path: the first writer that finds nobody
/// writing becomes the leader, and writes the submitted writes (its own and those that
/// arrived while another committed) as one group; once its own is written it lets go and
/// tells the oldest waiting writer to lead the next group. The others wait for their
/// outcome. A lone login is then written by its own thread, without waking another one, and
/// concurrent ones still share a transaction and a sync. A housekeeping thread does the work
/// between writes (the spool's merge, the log copied into the file: [`Idle`], [`Settle`]),
/// under the same lock, and writes one group of what was submitted meanwhile before it lets
/// go and hands the rest over.
pub struct Committer {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    log: Log,
    events: Events,
    /// Submitted writes no leader has taken yet.
    pending: Mutex<Vec<Job>>,
    /// The leader's: whoever holds it writes.
    state: Mutex<State>,
    /// Wakes the housekeeper: a group brought its next work forward, or the last handle
    /// went away.
    wake: Condvar,
    /// The [`Committer`] handles alive; the housekeeper ends with the last one.
    handles: AtomicUsize,
    /// The rows written whose journal events have not gone out yet, in the order written:
    /// they go out after the writers' callers have their answers (see
    /// [`Committer::after_reply`]), not on the way to them. Under a lock of their own, not
    /// the leader's, held only to add rows or to take them all, never while they are sent:
    /// a leader adds its group's rows while it holds its own lock, and a sender kept off
    /// the processors (the daemon's workers run at nice 19) would keep every writer
    /// waiting.
    unsent: Mutex<Vec<Unsent>>,
    /// Whether `unsent` holds any, read without its lock: a caller with nothing to send
    /// takes no lock after its answer.
    any_unsent: AtomicBool,
    /// Whether a thread is sending events: one at a time, so that they go out in order. A
    /// thread that finds another at it leaves the rows to that one, which looks at
    /// `any_unsent` again once it stops (see [`Inner::send_unsent`]).
    sending: AtomicBool,
    /// Tests: stops the next sender of events in the middle of its sends (it says so on
    /// the first channel, and goes on when told on the second).
    #[cfg(test)]
    stop_in_send: Mutex<Option<(Sender<()>, mpsc::Receiver<()>)>>,
}

/// Marks the end of a thread's sends (see [`Inner::sending`]), also when one panics: the
/// events of the rows written later would never go out, and the rows would pile up.
struct Sending<'a>(&'a AtomicBool);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A row whose journal event has not gone out yet (see [`Inner::unsent`]).
enum Unsent {
    /// A login's row (its ID) and what the write that made it said of the session.
    Login {
        id: i64,
        items: SessionItems,
        process: Process,
        at: Usec,
    },
    /// A row a logout closed, as it is after it.
    Closed(crate::storage::Entry),
}

/// What the leader and the housekeeper share.
struct State {
    kept: Option<Conn>,
    idle: Idle,
    settle: Settle,
    /// The last group written or the last idle work done: the timers count from it.
    last: Instant,
}

impl State {
    /// How long after [`State::last`] the idle work is due.
    fn wait(&self) -> Duration {
        match self.settle {
            Settle::Done => self.idle.wait,
            Settle::Soon => SETTLE_AFTER.min(self.idle.wait),
            Settle::Retry => SETTLE_RETRY.min(self.idle.wait),
        }
    }
}

/// How often a writer waiting for its outcome looks whether a leader is needed (only a
/// safety net: a leader that lets go tells a waiting writer to lead, see
/// [`Inner::hand_over`]).
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Clone for Committer {
    fn clone(&self) -> Committer {
        self.inner.handles.fetch_add(1, Ordering::SeqCst);
        Committer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so that the housekeeper is either waiting (and woken) or
            // about to look at the count.
            let _st = locked(&self.inner.state);
            self.inner.wake.notify_all();
        }
    }
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Committer {
    /// Starts the committer on the database at `path` (its housekeeping thread), its lines
    /// to `log`, the journal events of what it writes (and merges) sent as `events` says.
    pub fn start(path: PathBuf, log: Log, events: Events) -> std::io::Result<Committer> {
        let inner = Arc::new(Inner {
            path,
            log,
            events,
            pending: Mutex::new(Vec::new()),
            state: Mutex::new(State {
                kept: None,
                idle: Idle::default(),
                settle: Settle::Done,
                last: Instant::now(),
            }),
            wake: Condvar::new(),
            handles: AtomicUsize::new(1),
            unsent: Mutex::new(Vec::new()),
            any_unsent: AtomicBool::new(false),
            sending: AtomicBool::new(false),
            #[cfg(test)]
            stop_in_send: Mutex::new(None),
        });
        let house = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || house.housekeep())?;
        Ok(Committer { inner })
    }

    /// The database it writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Where its lines go.
    pub fn log(&self) -> Log {
        self.inner.log
    }

    /// Sends the journal events of the rows written so far. For a caller that has just
    /// answered its own caller: a write's event costs a message to journald (after a read
    /// of the row, for a logout, before), some tens of microseconds a login no longer waits
    /// for. Takes no lock when there is nothing to send, never the leader's, and waits for
    /// no other sender (that one sends these too).
    pub fn after_reply(&self) {
        self.inner.send_unsent();
    }

    /// Sends the journal events of the rows written so far, and waits (at most `within`)
    /// for another thread's sends under way: for a process about to exit, which would
    /// otherwise end that thread in the middle of them.
    pub fn flush_events(&self, within: Duration) {
        let end = Instant::now() + within;
        loop {
            self.inner.send_unsent();
            let idle = !self.inner.sending.load(Ordering::SeqCst)
                && !self.inner.any_unsent.load(Ordering::SeqCst);
            if idle || Instant::now() >= end {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Submits one write and waits for its outcome (at most `wait`, then reported as a
    /// failure), writing it (and the others waiting) itself when nobody else writes.
    pub(crate) fn submit(&self, op: Op, wait: Duration) -> Outcome {
        let (reply, rx) = mpsc::channel();
        locked(&self.inner.pending).push(Job { op, reply });
        let end = Instant::now() + wait;
        loop {
            if self.inner.lead_once() {
                // This thread led a group: its own write was in it, or in one before, or
                // waits behind a full group (then it leads again).
                match rx.try_recv() {
                    Ok(Msg::Done(o)) => {
                        self.inner.hand_over();
                        return o;
                    }
                    Ok(Msg::Lead) | Err(TryRecvError::Empty) => continue,
                    Err(TryRecvError::Disconnected) => return Outcome::Fallback,
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(FOLLOW_POLL.min(left)) {
                Ok(Msg::Done(o)) => return o,
                Ok(Msg::Lead) => {}
                // Its leader dropped it unanswered (a panic): never written.
                Err(mpsc::RecvTimeoutError::Disconnected) => return Outcome::Fallback,
                Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Outcome::Failed(format!(
                        "the write did not complete within {} s",
                        wait.as_secs_f64()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

impl Inner {
    /// Sends the events of [`Inner::unsent`], in order, unless another thread is sending
    /// them: that one sends these too. The rows are taken from under their lock and sent
    /// without it, so a leader adding its group's rows never waits for a send.
    fn send_unsent(&self) {
        while self.any_unsent.load(Ordering::SeqCst) {
            if self.sending.swap(true, Ordering::SeqCst) {
                // The thread at it looks at `any_unsent` once it stops: these rows were
                // added before that.
                return;
            }
            let _sending = Sending(&self.sending);
            loop {
                let rows = {
                    let mut u = locked(&self.unsent);
                    self.any_unsent.store(false, Ordering::SeqCst);
                    std::mem::take(&mut *u)
                };
                if rows.is_empty() {
                    break;
                }
                #[cfg(test)]
                if let Some((stopped, go)) = locked(&self.stop_in_send).take() {
                    let _ = stopped.send(());
                    let _ = go.recv();
                }
                for row in rows {
                    self.send_one(row);
                }
            }
        }
    }

    /// The journal event of one row written.
    fn send_one(&self, row: Unsent) {
        match row {
            Unsent::Login {
                id,
                items,
                process,
                at,
            } => self.events.new_row(
                id,
                &items.login_entry(at),
                &self.path,
                Some(process.pid.into()),
            ),
            Unsent::Closed(entry) => self.events.row(&entry, true, &self.path, false, None),
        }
    }

    /// Writes one group of the submitted writes (the oldest, up to [`MAX_GROUP`]) unless
    /// another leader (or the housekeeper) holds the lock. False when it was held.
    fn lead_once(&self) -> bool {
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        self.write_one_group(&mut st);
        true
    }

    /// Writes the oldest submitted writes, up to [`MAX_GROUP`], as one group.
    fn write_one_group(&self, st: &mut State) {
        let jobs: Vec<Job> = {
            let mut p = locked(&self.pending);
            let n = p.len().min(MAX_GROUP);
            p.drain(..n).collect()
        };
        if jobs.is_empty() {
            return;
        }
        let due = st.last + st.wait();
        let written = write_group(&self.path, st, jobs, self.log, &self.events);
        if !written.is_empty() {
            let mut u = locked(&self.unsent);
            u.extend(written);
            self.any_unsent.store(true, Ordering::SeqCst);
        }
        st.last = Instant::now();
        // The housekeeper wakes at the due time it last saw and looks again then; it is
        // woken now only when this group brought that time forward (the first group after
        // rest: 200 ms to the copy instead of the 500 ms look), not at every group.
        if st.last + st.wait() < due {
            self.wake.notify_all();
        }
    }

    /// A leader done with its own write lets go: the oldest waiting writer (if any) is
    /// told to lead, so that no thread writes for others without end while its own
    /// caller waits, and writes submitted while the lock was held are never left behind.
    fn hand_over(&self) {
        let p = locked(&self.pending);
        for j in p.iter() {
            if j.reply.send(Msg::Lead).is_ok() {
                return;
            }
        }
    }

    /// The housekeeper: between writes, the spool's merge every [`Idle::wait`] and the log
    /// copied into the file after [`SETTLE_AFTER`]; ends with the last handle.
    fn housekeep(&self) {
        let mut st = locked(&self.state);
        while self.handles.load(Ordering::SeqCst) > 0 {
            let due = st.last + st.wait();
            let now = Instant::now();
            if now < due {
                st = self
                    .wake
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            // Events no caller sent after its answer (see `Committer::after_reply`).
            self.send_unsent();
            let State {
                kept,
                idle,
                settle: s,
                ..
            } = &mut *st;
            if idle.merge(&self.path, kept, self.log, &self.events) {
                *s = Settle::Soon;
            } else if *s != Settle::Done {
                // A file that is no longer at the name is copied into only as `retire`
                // decides (its side files may be another file's now).
                if Conn::retire_stale(kept, &self.path, self.log) {
                    *s = Settle::Done;
                } else {
                    *s = settle(kept.as_mut(), &self.path, self.log, *s);
                }
            }
            st.last = Instant::now();
            // What came meanwhile found the lock taken: one group written before it is let
            // go, the rest handed to a waiting writer.
            self.write_one_group(&mut st);
            drop(st);
            self.hand_over();
            st = locked(&self.state);
        }
        // The connection's close copies its log into the file (see `storage::Database`'s
        // `Drop`): only as `retire` decides when the name leads elsewhere now.
        Conn::retire_stale(&mut st.kept, &self.path, self.log);
        self.send_unsent();
    }
}

/// The committer's connection, kept open between groups while it still writes where
/// readers look (see [`Conn::still_current`]).
struct Conn {
    db: Database,
    /// What the name led to right after the open; None when the database is not in WAL
    /// mode with its side files (then the connection serves one group only).
    files: Option<OpenFiles>,
    /// Its `-shm` index's header as this connection last left it (after its open, each
    /// group, merge and copy into the file): see [`Conn::retire`].
    left: Option<IndexState>,
    /// The database file as this connection left it at rest (its log copied into it and
    /// emptied, see [`settle`]), until its next commit. SQLite keeps the connection's page
    /// cache while the log's index is unchanged, so a file written meanwhile by anything
    /// but SQLite (a database copied over it in place, logrotate's `copytruncate`) must
    /// not be written through this connection: its next group would write pages of the
    /// cache over the new contents. At rest nothing is lost by opening it again.
    rest: Option<Fingerprint>,
    /// The spool directory of the name as it was opened: the same while the connection
    /// is current (a name that leads elsewhere means a new connection), so the check for
    /// spooled records after each group is one stat, not the name's resolution again.
    spool: std::path::PathBuf,
}

impl Conn {
    fn open(path: &Path) -> Result<Conn, String> {
        // A short busy wait: past it, the writes go to the session writer, which waits its
        // bound and then spools. The schema steps only on a small file, as for the session
        // writer: building the indexes of a large upstream database takes seconds (3.3 s
        // for 2 million rows), past the client's wait for its reply (the PAM module's 3 s),
        // and the logins of that group would fail although written; `wtmpdb boot` or a
        // rotate builds them.
        let opts = OpenOptions::read_write()
            .busy_timeout(spool::SPOOL_AFTER)
            .migrate(Migrate::UpToRows(MIGRATE_MAX_ROWS));
        let db = Database::open(path, &opts).map_err(|e| e.to_string())?;
        db.keep_log_allocated();
        let files = db.open_files();
        let spool = spool::spool_dir(path);
        let mut c = Conn {
            db,
            files,
            left: None,
            rest: None,
            spool,
        };
        c.note_index();
        Ok(c)
    }

    /// Notes the index's header as this connection leaves it: after anything it did that may
    /// change it (a commit, a copy into the file). 48 bytes read from SQLite's mapping of
    /// the index, no system call (see [`Database::index_state`]).
    fn note_index(&mut self) {
        self.left = self.files.and_then(|_| self.db.index_state());
        self.rest = None;
    }

    /// Whether the database file was written since this connection left it at rest by
    /// something other than SQLite (see [`Conn::rest`]). A writer of another process that
    /// wrote it through SQLite (the PAM module writing the file, `wtmpdb boot`) also
    /// changed the index, and SQLite drops the page cache for that itself.
    fn changed_at_rest(&self) -> bool {
        self.rest.is_some_and(|seen| {
            self.db
                .file_fingerprint()
                .is_none_or(|now| now.contents_differ(&seen))
        }) && self.index_untouched()
    }

    /// Whether nobody else used this connection's index since it last left it (see
    /// [`Conn::note_index`]): then the index describes this connection's own log alone.
    fn index_untouched(&self) -> bool {
        self.left.is_some() && self.db.index_state() == self.left
    }

    /// Whether this connection may write the next group. Kept open, it keeps the WAL index
    /// alive for every process (no index rebuild per write, the cost of a fresh connection)
    /// and holds the shared lock that stops another program's close from deleting the side
    /// files under it. What it cannot stop: logrotate renaming the file away and creating a
    /// new one, or a program deleting side files it failed to lock; the names are checked
    /// before every group (a few stats), and a change means a fresh open.
    fn still_current(&self) -> bool {
        self.files
            .is_some_and(|f| f.still_at(self.db.path(), self.db.file()))
            && !self.changed_at_rest()
    }

    /// Retires `kept` (see [`Conn::retire`]) when it no longer writes where readers look;
    /// true when it did. Asked before each use of the connection (a group, a merge of the
    /// spool, a copy into the file) and as the committer ends.
    fn retire_stale(kept: &mut Option<Conn>, path: &Path, log: Log) -> bool {
        match kept.take_if(|c| !c.still_current()) {
            Some(old) => {
                old.retire(path, log);
                true
            }
            None => false,
        }
    }

    /// Ends a connection that is no longer current. When only side files went (deleted by
    /// a program or an admin), the file at the name is still this connection's, and other
    /// writers may already use new side files: it is left alone.
    ///
    /// When the name came to lead to another database file (logrotate's rename + create, a
    /// file put in its place with `mv`, the file deleted), the side files beside the name may
    /// still be the ones this connection has open, and SQLite finds them by name: a writer
    /// of another process that opened the new file since (`wtmpdb boot`, the PAM module
    /// writing the file itself) uses the same `-shm` index (this connection's lock on it
    /// keeps SQLite from starting it afresh), and its commits, the new file's pages, are
    /// counted there. A checkpoint through this connection would then copy frames at those
    /// page numbers out of this connection's own log into the renamed file (zeros or the
    /// new file's pages over its first pages: seen destroying it), and mark them copied, so
    /// that the new file lost them too. So:
    ///
    /// * At rest (every commit already copied into its file, see [`settle`]), the usual case
    ///   when logrotate runs: nothing is left to copy, and the side files are not touched.
    /// * Otherwise its newest commits are in its log only, which the next open would take
    ///   for the new file's (set aside as orphaned, or read over the new file). They are
    ///   copied into the file it has open, but only while the index's header is still what
    ///   this connection left: nobody else has used it. The copy waits for no lock, and is
    ///   tried again while that holds (see [`Database::checkpoint_into_file`]): a copy that
    ///   waited for another writer's transaction copied that writer's commit. (A writer that
    ///   commits between the look and the copy's own reading of the index is not seen: a
    ///   window of microseconds, against the one this closes, which lasted from the rename
    ///   to the committer's next write.) When another connection has used it, nothing more
    ///   is copied, and that is logged as an error.
    fn retire(self, path: &Path, log: Log) {
        let Some(files) = self.files else {
            return;
        };
        if files.still_at(self.db.path(), self.db.file()) {
            // Only the file's size or modification time changed, at rest (see `Conn::rest`):
            // a copy over it or a truncation, or a mere `touch`, which cannot be told apart
            // from them without reading the file, so the message names all three.
            log!(
                log,
                LOG_NOTICE,
                "{}: another program changed the file's size or modification time since its log was last copied into it (a copy over it, logrotate's copytruncate, or a touch); opening it again",
                path.display()
            );
            self.db.close_leaving_side_files();
            return;
        }
        if files.database_is_at(path) {
            log!(
                log,
                LOG_NOTICE,
                "{}: its side files changed; opening it again",
                path.display()
            );
            return;
        }
        let moved = "the name leads to another file now (renamed, replaced or removed)";
        if self.db.at_rest() {
            log!(
                log,
                LOG_NOTICE,
                "{}: {moved}; the writes made through the old name are in the old file; opening the new file",
                path.display()
            );
        } else {
            match self
                .db
                .checkpoint_into_file(|| self.index_untouched(), spool::SPOOL_AFTER)
            {
                Some(true) => log!(
                    log,
                    LOG_NOTICE,
                    "{}: {moved}; the writes made through the old name are in the old file; opening the new file",
                    path.display()
                ),
                Some(false) => {
                    // A reader pins the log: it stays the old file's. Left beside the
                    // name, the next open would read it over the new file.
                    let file = self.db.file().to_path_buf();
                    let alone = self.index_untouched();
                    self.db.close_leaving_side_files();
                    let kept = if alone {
                        files.set_aside_log(path, &file)
                    } else {
                        Ok(None)
                    };
                    match kept {
                        Ok(Some(kept)) => log!(
                            log,
                            LOG_ERR,
                            "{}: {moved}; the old file's last writes could not be copied into it (a reader holds them): its log is kept as {} (beside the old file as its -wal, it gives them back); opening the new file",
                            path.display(),
                            kept.display()
                        ),
                        Ok(None) => log!(
                            log,
                            LOG_ERR,
                            "{}: {moved}; the old file's last writes could not be copied into it (a reader holds them), and its log beside the name is in another's use now ({}-wal)",
                            path.display(),
                            path.display()
                        ),
                        Err(e) => log!(
                            log,
                            LOG_ERR,
                            "{}: {moved}; the old file's last writes could not be copied into it (a reader holds them), nor its log set aside ({e}): they are in {}-wal",
                            path.display(),
                            path.display()
                        ),
                    }
                    return;
                }
                None => log!(
                    log,
                    LOG_ERR,
                    "{}: {moved}, and another program has used the side files beside the name since the last write here: the old file's log is copied into it no further (the copy would write the new file's pages there), so the old file may lack the writes made since its log was last copied into it; they are in that log ({}-wal), or, when that program read the new file through it, they may have been copied into the new file",
                    path.display(),
                    path.display()
                ),
            }
        }
        self.db.close_leaving_side_files();
    }
}

/// How long the committer waits, after the last group, before it copies the log into the
/// database file (see [`Settle`]): long enough that a burst of logins commits group after
/// group into the log (one sync each), short enough that the records are in the file within
/// a second of the last one.
pub const SETTLE_AFTER: Duration = Duration::from_millis(200);

/// How long it waits before it tries again, when a reader kept part of the log from being
/// copied.
pub const SETTLE_RETRY: Duration = Duration::from_secs(1);

/// The bound on SQLite's internal retries during such a copy (it waits for no lock).
const SETTLE_BOUND: Duration = Duration::from_millis(100);

/// Whether the kept connection's commits are all in the database file. A kept connection
/// never closes, and SQLite checkpoints only as the last connection closes (or as the log
/// grows, see `storage::WalSettings`): without this, the newest groups would stay in the
/// `-wal` file beside the name, where logrotate's rename + `create`, an admin's `cp` or the
/// loss of that file leave them behind. So once the committer has been idle for
/// [`SETTLE_AFTER`], it checkpoints ([`Database::checkpoint_at_rest`]: the log copied into
/// the file, the file synced, the log truncated), off every login's path: a write that arrives
/// meanwhile waits at most for that copy (a few pages and one sync). A reader holding a read
/// transaction since before a commit keeps the pages after its snapshot in the log; nothing
/// waits for it, and the copy is tried again every [`SETTLE_RETRY`] until it is complete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Nothing in the log that is not in the file (or no connection kept).
    Done,
    /// A group committed since: copy after [`SETTLE_AFTER`] without a write.
    Soon,
    /// A copy was incomplete: try again after [`SETTLE_RETRY`] without a write.
    Retry,
}

/// Copies the kept connection's log into its database file, without waiting for anyone.
fn settle(kept: Option<&mut Conn>, path: &Path, log: Log, now: Settle) -> Settle {
    let retrying = now == Settle::Retry;
    let Some(c) = kept else {
        return Settle::Done;
    };
    let _bound = vfs::bound_sleeps(std::time::Instant::now() + SETTLE_BOUND);
    let emptied = c.db.checkpoint_at_rest();
    c.note_index();
    if emptied {
        // Emptied: its blocks back, for the next login not to extend it.
        c.db.refill_emptied_log(WalSettings::REFILL_BYTES);
        c.rest = c.db.file_fingerprint();
        if retrying {
            log!(
                log,
                LOG_DEBUG,
                "{}: the log is in the database file now",
                path.display()
            );
        }
        Settle::Done
    } else {
        if !retrying {
            log!(
                log,
                LOG_DEBUG,
                "{}: the log could not be copied into the database file yet (a reader or writer in the way); trying again",
                path.display()
            );
        }
        Settle::Retry
    }
}

/// Writes one group of jobs in one transaction and one sync and tells each its outcome:
/// the kept connection (opened again when the name leads elsewhere now), then the spool's
/// records merged after them. A group that cannot be written is handed back, each write to
/// the session writer ([`Outcome::Fallback`]). Returns the rows written whose journal
/// events are to go out (none when they are off).
fn write_group(
    path: &Path,
    st: &mut State,
    jobs: Vec<Job>,
    log: Log,
    events: &Events,
) -> Vec<Unsent> {
    // SQLite's internal retries end with the busy wait (see `wtmpdb::storage::vfs`): past
    // it the group goes to the session writer, which spools.
    let _bound = vfs::bound_sleeps(Instant::now() + spool::SPOOL_AFTER);
    Conn::retire_stale(&mut st.kept, path, log);
    let opened = match st.kept.take() {
        Some(c) => Ok(c),
        None => Conn::open(path),
    };
    let mut c = match opened {
        Ok(c) => c,
        Err(e) => {
            log!(log, LOG_ERR, "group commit: {e}");
            for j in jobs {
                let _ = j.reply.send(Msg::Done(Outcome::Fallback));
            }
            return Vec::new();
        }
    };
    let writes: Vec<GroupWrite<'_>> = jobs
        .iter()
        .map(|j| match &j.op {
            Op::Login { items, process, at } => GroupWrite::Login(items.login_entry(*at), *process),
            Op::Logout { id, at, identity } => GroupWrite::Logout {
                id: *id,
                at: *at,
                of: identity.as_ref().map(super::Identity::login_of),
            },
        })
        .collect();
    let results = match c.db.write_group(&writes) {
        Ok(results) => results,
        Err(e) => {
            log!(
                log,
                LOG_NOTICE,
                "group of {} writes not written ({e}): each goes through the session writer",
                jobs.len()
            );
            drop(writes);
            for j in jobs {
                let _ = j.reply.send(Msg::Done(Outcome::Fallback));
            }
            return Vec::new();
        }
    };
    drop(writes);
    log!(log, LOG_DEBUG, "group commit of {} writes", results.len());
    // The writers first (committed and synced: each may answer its caller); the journal
    // once they have (see `Inner::unsent`).
    let mut unsent = Vec::new();
    for (j, r) in jobs.into_iter().zip(results) {
        let outcome = match r {
            Ok(Some(done)) => {
                if events.enabled {
                    match (done.closed, j.op) {
                        (Some(row), _) => unsent.push(Unsent::Closed(row)),
                        (None, Op::Login { items, process, at }) => unsent.push(Unsent::Login {
                            id: done.id,
                            items,
                            process,
                            at,
                        }),
                        // A logout always has its row (`GroupDone::closed`).
                        (None, Op::Logout { .. }) => {}
                    }
                }
                Outcome::Done(done.id)
            }
            Ok(None) => Outcome::Fallback,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let _ = j.reply.send(Msg::Done(outcome));
    }
    // Records spooled earlier (by us or another writer) are merged now.
    if c.spool.exists() {
        let merged = spool::merge(&mut c.db);
        if let Ok(m) = &merged {
            events.merged(&c.db, m);
        }
        log_merge(log, &merged);
    }
    c.note_index();
    st.kept = Some(c);
    st.settle = Settle::Soon;
    unsent
}

/// The committer's work when no write comes: records that wait in the spool are merged
/// (a bounded part at a time, see [`spool::merge`]) without waiting for the next login, so
/// that one is in the table within [`IDLE_LOOK`] + [`IDLE_RETRY`] of the database being free.
/// A write that arrives goes first: this runs only after [`Idle::wait`] without one.
struct Idle {
    /// How long to wait for a write before the next look.
    wait: Duration,
    /// The last failure logged, so that a lasting one (a lock held for minutes) is logged
    /// once, not at every retry.
    failed: Option<String>,
}

impl Default for Idle {
    fn default() -> Idle {
        Idle {
            wait: IDLE_LOOK,
            failed: None,
        }
    }
}

impl Idle {
    /// Merges what waits in the spool; true when it wrote something (the log then holds
    /// it, to be copied into the file).
    fn merge(&mut self, path: &Path, kept: &mut Option<Conn>, log: Log, events: &Events) -> bool {
        self.wait = IDLE_LOOK;
        if !spool::waiting(path).is_ok_and(|n| n > 0) {
            return false;
        }
        self.wait = IDLE_RETRY;
        let _bound = vfs::bound_sleeps(std::time::Instant::now() + IDLE_LOCK_WAIT);
        Conn::retire_stale(kept, path, log);
        let mut c = match kept.take() {
            Some(c) => c,
            None => match Conn::open(path) {
                Ok(c) => c,
                Err(e) => {
                    self.failed(log, format!("opening it: {e}"));
                    return false;
                }
            },
        };
        let merged = spool::merge(&mut c.db);
        if let Ok(m) = &merged {
            events.merged(&c.db, m);
        }
        c.note_index();
        *kept = Some(c);
        match &merged {
            Ok(m) => {
                if m.left == 0 {
                    self.wait = IDLE_LOOK;
                }
                self.failed = None;
                log_merge(log, &merged);
                m.logins + m.logouts > 0
            }
            Err(e) => {
                self.failed(log, e.to_string());
                false
            }
        }
    }

    /// Logs an idle merge's failure, once while it stays the same.
    fn failed(&mut self, log: Log, why: String) {
        if self.failed.as_ref() != Some(&why) {
            log!(
                log,
                LOG_NOTICE,
                "records wait in the spool; merging them failed ({why}); trying again every {} ms",
                IDLE_RETRY.as_millis()
            );
            self.failed = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Database;

    fn quiet(_: i32, _: std::fmt::Arguments<'_>) {}

    fn login(user: &str) -> Op {
        Op::Login {
            items: SessionItems::from_bytes(user.as_bytes(), Some(b"pts/1"), None, Some(b"sshd")),
            process: Process::current(1),
            at: crate::time::now(),
        }
    }

    /// A journal's socket in `dir` (read by the test) and the events sent to it.
    fn journal_in(dir: &Path) -> (std::os::unix::net::UnixDatagram, Events) {
        let mut events = Events::default();
        events.socket = dir.join("journal");
        let journal = std::os::unix::net::UnixDatagram::bind(&events.socket).unwrap();
        (journal, events)
    }

    /// A thread that leads writes a group with its own write, then lets another lead:
    /// under a steady stream of writes from other threads, each caller has its answer soon
    /// (a leader that wrote every group while any waited kept its own caller, whose write
    /// was long done, waiting as long as the stream lasted: 1.4 to 2.3 s here, against the
    /// PAM module's 3 s wait), and every write is written once.
    #[test]
    fn a_leader_answers_its_caller_under_a_steady_stream_of_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let c = Committer::start(db.clone(), quiet, Events::off()).unwrap();
        let end = Instant::now() + Duration::from_secs(3);
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let (mut n, mut slowest) = (0, Duration::ZERO);
                    while Instant::now() < end {
                        let start = Instant::now();
                        let o = c.submit(login(&format!("u{t}")), GROUP_WAIT);
                        assert!(matches!(o, Outcome::Done(_)), "{o:?}");
                        slowest = slowest.max(start.elapsed());
                        n += 1;
                    }
                    (n, slowest)
                })
            })
            .collect();
        let mut written = 0;
        for t in threads {
            let (n, slowest) = t.join().unwrap();
            written += n;
            assert!(
                slowest < Duration::from_secs(1),
                "a write waited {slowest:?} for its answer"
            );
        }
        drop(c);
        let db = Database::open(&db, &OpenOptions::read_only()).unwrap();
        let mut rows = 0;
        db.each_row_by_id(|_| rows += 1).unwrap();
        assert_eq!(rows, written);
    }

    /// The events go out under a lock of their own, never the leader's: a caller that
    /// sends them after its answer keeps no writer waiting, and is not kept from sending
    /// by a leader at work. (Under the leader's lock, a write submitted meanwhile found it
    /// taken and waited unled for the housekeeper's look: 203-205 ms in the load
    /// generator's runs with 8 connections.)
    #[test]
    fn events_go_out_while_a_leader_holds_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = journal_in(dir.path());
        journal.set_nonblocking(true).unwrap();
        let c = Committer::start(dir.path().join("wtmp.db"), quiet, events).unwrap();
        assert!(matches!(
            c.submit(login("ann"), GROUP_WAIT),
            Outcome::Done(_)
        ));
        let leader = locked(&c.inner.state);
        c.after_reply();
        let mut buf = vec![0u8; 65536];
        let n = journal
            .recv(&mut buf)
            .expect("the login's event, sent at once");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("MESSAGE=Login of ann on pts/1"));
        drop(leader);
    }

    /// The journal events of a group go out once its writers' callers have their answers:
    /// none is sent on the way to the answer (a login waited for a read of the row and a
    /// message to journald), each is sent once, by [`Committer::after_reply`] or, when no
    /// caller sends them, by the housekeeper at its next look; a logout's with its row.
    #[test]
    fn a_groups_events_go_out_after_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = journal_in(dir.path());
        journal.set_nonblocking(true).unwrap();
        let received = || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = journal.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            got
        };
        // What arrives within the housekeeper's wait and a margin.
        let arrived = || {
            let end = Instant::now() + SETTLE_AFTER + Duration::from_secs(2);
            let mut got = received();
            while got.is_empty() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
                got = received();
            }
            std::thread::sleep(Duration::from_millis(20));
            got.extend(received());
            got
        };
        let c = Committer::start(dir.path().join("wtmp.db"), quiet, events).unwrap();
        let Outcome::Done(id) = c.submit(login("ann"), GROUP_WAIT) else {
            panic!("login not written");
        };
        // The housekeeper's look comes SETTLE_AFTER after the group, long after this.
        assert_eq!(received(), Vec::<String>::new(), "sent before the answer");
        c.after_reply();
        let got = arrived();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("MESSAGE=Login of ann on pts/1"), "{got:?}");
        c.after_reply();
        assert_eq!(received(), Vec::<String>::new(), "sent twice");

        let logout = Op::Logout {
            id,
            at: crate::time::now(),
            identity: None,
        };
        assert!(matches!(c.submit(logout, GROUP_WAIT), Outcome::Done(_)));
        assert_eq!(received(), Vec::<String>::new(), "sent before the answer");
        // No caller sends it: the housekeeper does.
        let got = arrived();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("MESSAGE=Logout of ann on pts/1"), "{got:?}");
    }

    /// A thread that sends the events keeps no writer waiting, however long it takes (a
    /// worker of the daemon runs at nice 19, and can be kept off the processors for tens
    /// of milliseconds in the middle of its sends): the next group is written and answered
    /// meanwhile, and its events follow the ones under way, in order.
    #[test]
    fn a_stopped_sender_of_events_keeps_no_writer_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = journal_in(dir.path());
        journal.set_nonblocking(true).unwrap();
        let c = Committer::start(dir.path().join("wtmp.db"), quiet, events).unwrap();
        assert!(matches!(
            c.submit(login("ann"), GROUP_WAIT),
            Outcome::Done(_)
        ));
        let (stopped_tx, stopped) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        *locked(&c.inner.stop_in_send) = Some((stopped_tx, go_rx));
        let sender = {
            let c = c.clone();
            std::thread::spawn(move || c.after_reply())
        };
        stopped
            .recv_timeout(Duration::from_secs(5))
            .expect("the sender stopped in its sends");
        let (done_tx, done) = mpsc::channel();
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let o = c.submit(login("bob"), GROUP_WAIT);
                let _ = done_tx.send((o, start.elapsed()));
                // Its caller answered: its own events, as the daemon sends them.
                c.after_reply();
            })
        };
        let answered = done.recv_timeout(Duration::from_millis(500));
        go.send(()).unwrap();
        sender.join().unwrap();
        writer.join().unwrap();
        let (o, took) = answered.expect("the write waited for the sender of events");
        assert!(matches!(o, Outcome::Done(_)), "{o:?}");
        assert!(took < Duration::from_millis(250), "the write took {took:?}");
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < 2 && Instant::now() < end {
            match journal.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("MESSAGE=Login of ann"), "{got:?}");
        assert!(got[1].contains("MESSAGE=Login of bob"), "{got:?}");
    }

    /// Records waiting in the spool, merged by a group, have their events (marked spooled)
    /// as before; the group's own rows have theirs once, after the answer.
    #[test]
    fn a_groups_merge_of_the_spool_sends_the_merged_rows_events() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let (journal, events) = journal_in(dir.path());
        journal.set_nonblocking(true).unwrap();
        let c = Committer::start(db.clone(), quiet, events).unwrap();
        // The database first (the spool lies beside it), then a login waiting there.
        assert!(matches!(
            c.submit(login("ann"), GROUP_WAIT),
            Outcome::Done(_)
        ));
        c.after_reply();
        let items = SessionItems::from_bytes(b"zoe", Some(b"pts/7"), None, Some(b"sshd"));
        spool::put(
            &db,
            &spool::login_record(&items, crate::time::now()).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            c.submit(login("bob"), GROUP_WAIT),
            Outcome::Done(_)
        ));
        c.after_reply();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = journal.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("Login of ann"), "{got:?}");
        let zoe: Vec<_> = got.iter().filter(|e| e.contains("Login of zoe")).collect();
        let bob: Vec<_> = got.iter().filter(|e| e.contains("Login of bob")).collect();
        assert_eq!((zoe.len(), bob.len()), (1, 1), "{got:?}");
        assert!(zoe[0].contains("WTMPDB_SPOOLED=1"), "{got:?}");
    }

    /// Under many writers, some of which send after their answers and some not (the
    /// others, or the housekeeper, send theirs), each row's events go out once, and a
    /// session's logout never before its login. (Two senders at once interleave them:
    /// 168-191 logouts before their logins in 3 s.) Events dropped by a full journal
    /// queue (a small net.unix.max_dgram_qlen) are not counted.
    #[test]
    fn the_events_of_many_writers_go_out_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = journal_in(dir.path());
        journal
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let c = Committer::start(dir.path().join("wtmp.db"), quiet, events).unwrap();
        let receiver = std::thread::spawn(move || {
            let mut got: Vec<(i64, bool)> = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = journal.recv(&mut buf) {
                let e = String::from_utf8_lossy(&buf[..n]).into_owned();
                let id = e
                    .lines()
                    .find_map(|l| l.strip_prefix("WTMPDB_ID="))
                    .and_then(|v| v.parse().ok())
                    .unwrap();
                got.push((id, e.contains("MESSAGE=Logout")));
            }
            got
        });
        let end = Instant::now() + Duration::from_secs(2);
        let writers: Vec<_> = (0..12)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    while Instant::now() < end {
                        let Outcome::Done(id) = c.submit(login(&format!("u{t}")), GROUP_WAIT)
                        else {
                            panic!("login not written");
                        };
                        if t % 3 != 0 {
                            c.after_reply();
                        }
                        let logout = Op::Logout {
                            id,
                            at: crate::time::now(),
                            identity: None,
                        };
                        let o = c.submit(logout, GROUP_WAIT);
                        assert!(matches!(o, Outcome::Done(_)), "{o:?}");
                        if t % 3 != 1 {
                            c.after_reply();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got = receiver.join().unwrap();
        let mut seen = std::collections::HashMap::new();
        let (mut twice, mut early) = (Vec::new(), Vec::new());
        for &(id, logout) in &got {
            let (logins, logouts) = seen.entry(id).or_insert((0, 0));
            if logout {
                *logouts += 1;
            } else {
                *logins += 1;
                if *logouts > 0 {
                    early.push(id);
                }
            }
            if *logins > 1 || *logouts > 1 {
                twice.push(id);
            }
        }
        assert!(!got.is_empty());
        assert_eq!(twice, Vec::<i64>::new(), "sent twice");
        assert_eq!(early, Vec::<i64>::new(), "logouts sent before their logins");
    }

    /// The variable that makes this test binary a direct writer (see
    /// [`child_process_direct_writer`]): the database it writes.
    const DIRECT_WRITER: &str = "WTMPDB_TEST_DIRECT_WRITER";

    /// Child process mode of this test binary, not a test by itself: a writer that does not
    /// go through the committer (`wtmpdb boot`, the PAM module writing the file itself). It
    /// opens the database named in the environment, commits one login ("direct"), says so
    /// on its standard output, and closes (its close copies the log into the file) once a
    /// line arrives on its standard input: its commit is in the log meanwhile, as it is
    /// between any writer's commit and its close.
    #[test]
    #[ignore = "child-process helper, run by the tests of a file replaced under the committer"]
    fn child_process_direct_writer() {
        use std::io::Write;
        let path = std::env::var_os(DIRECT_WRITER).expect("child-process helper, not a test");
        let db = Database::open_read_write(Path::new(&path)).unwrap();
        db.login(&crate::storage::NewEntry {
            kind: crate::storage::Kind::UserProcess,
            user: "direct",
            login: crate::time::now(),
            tty: Some("pts/9"),
            ..crate::storage::NewEntry::default()
        })
        .unwrap();
        println!("committed");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        drop(db);
    }

    /// [`child_process_direct_writer`] on `path`, running in another process (SQLite's
    /// locks are a process's: a writer in this one would not meet the committer's), once
    /// it has committed.
    /// This test binary run as its child-process helper `test` on database `db` (named to
    /// it in the environment variable `var`), its standard input and output piped.
    fn child_helper(
        test: &str,
        var: &str,
        db: &Path,
    ) -> (
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    ) {
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                test,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(var, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        (child, out)
    }

    /// Reads a child's output until a line ends with `word`; false when it ended first.
    fn read_until(out: &mut impl std::io::BufRead, word: &str) -> bool {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if line.trim_end().ends_with(word) {
                return true;
            }
            line.clear();
        }
        false
    }

    /// Another database, with one row ("restored"), copied to `db`: a backup put back, a
    /// file from another machine.
    fn copy_a_database_to(db: &Path) {
        let other = db.parent().unwrap().join("other/wtmp.db");
        let o = Database::open_read_write(&other).unwrap();
        o.login(&crate::storage::NewEntry {
            kind: crate::storage::Kind::UserProcess,
            user: "restored",
            login: 1,
            ..crate::storage::NewEntry::default()
        })
        .unwrap();
        drop(o);
        std::fs::copy(&other, db).unwrap();
    }

    struct DirectWriter(
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    );

    impl DirectWriter {
        fn commit(path: &Path) -> DirectWriter {
            let (mut child, mut out) = child_helper(
                "session::group::tests::child_process_direct_writer",
                DIRECT_WRITER,
                path,
            );
            if read_until(&mut out, "committed") {
                return DirectWriter(child, out);
            }
            panic!(
                "the direct writer ended without committing: {:?}",
                child.wait()
            );
        }

        /// Lets it close, and waits for its end.
        fn close(mut self) {
            use std::io::Write;
            self.0.stdin.take().unwrap().write_all(b"\n").unwrap();
            // Its last lines read, not cut off.
            std::io::Read::read_to_end(&mut self.1, &mut Vec::new()).unwrap();
            let status = self.0.wait().unwrap();
            assert!(status.success(), "the direct writer: {status:?}");
        }
    }

    /// What a database holds: SQLite's integrity check ("ok") and its users, by row ID.
    fn contents(path: &Path) -> (String, Vec<String>) {
        let db = match Database::open(path, &OpenOptions::read_only()) {
            Ok(db) => db,
            Err(e) => return (format!("not opened: {e}"), Vec::new()),
        };
        let mut users = Vec::new();
        let read = db.each_row_by_id(|e| users.push(e.user));
        let mut check = db.integrity();
        if let Err(e) = read {
            check = format!("{check}; rows not read: {e}");
        }
        (check, users)
    }

    /// What logrotate's `create` (or an admin) puts at the name after renaming the file.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum NewFile {
        /// An empty file (logrotate's `create`).
        Empty,
        /// Another database, copied in (a backup put back, a file from another machine).
        Copied,
    }

    /// Where the committer's commits are when its file is renamed away.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Commits {
        /// All copied into the file (as when logrotate runs on a quiet machine).
        AtRest,
        /// In the log only: the rename comes right after them, and the committer's next
        /// write after the other writer's commit.
        InTheLog,
        /// All copied but the last one; the committer's housekeeper, whose copy into the
        /// file is due, comes after the other writer's commit, before the next write.
        OneInTheLog,
    }

    /// The committer's lines of every test that logs through [`kept`].
    static LINES: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

    fn kept(level: i32, line: std::fmt::Arguments<'_>) {
        locked(&LINES).push((level, line.to_string()));
    }

    /// The errors logged about `path`.
    fn errors_about(path: &Path) -> Vec<String> {
        let name = path.display().to_string();
        locked(&LINES)
            .iter()
            .filter(|(level, line)| *level == LOG_ERR && line.contains(&name))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// The lines of any level logged about `path` that say `what`.
    fn said_about(path: &Path, what: &str) -> Vec<String> {
        let name = path.display().to_string();
        locked(&LINES)
            .iter()
            .filter(|(_, line)| line.contains(&name) && line.contains(what))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Submits `user`'s login and asserts it was written.
    fn written(c: &Committer, user: &str) {
        let o = c.submit(login(user), GROUP_WAIT);
        assert!(matches!(o, Outcome::Done(_)), "{o:?}");
    }

    /// Waits until the committer has nothing left to copy (or no connection).
    fn at_rest(c: &Committer) {
        let end = Instant::now() + Duration::from_secs(5);
        while locked(&c.inner.state).settle != Settle::Done {
            assert!(Instant::now() < end, "the committer never came to rest");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What each file holds (see [`contents`]) after the committer's database was renamed
    /// away and `new` put at the name, with its commits as `commits` says, and a writer of
    /// another process (`wtmpdb boot`, the PAM module writing the file itself) committed to
    /// the new file before the committer's next write ("after"). `closed_first`: that
    /// writer closes before the committer's write, otherwise after it (its commit still in
    /// the log then, as between any writer's commit and its close). The renamed file, the
    /// new one, and the errors logged.
    fn replaced_under_the_committer(
        new: NewFile,
        commits: Commits,
        closed_first: bool,
    ) -> ([(String, Vec<String>); 2], Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let renamed = dir.path().join("wtmp.db.1");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before1");
        written(&c, "before2");
        if commits != Commits::InTheLog {
            at_rest(&c);
        }
        if commits == Commits::OneInTheLog {
            written(&c, "late");
        }
        // Kept from copying its log (or not) while the file is replaced.
        let held = locked(&c.inner.state);
        std::fs::rename(&db, &renamed).unwrap();
        match new {
            NewFile::Empty => drop(std::fs::File::create(&db).unwrap()),
            NewFile::Copied => {
                copy_a_database_to(&db);
            }
        }
        let direct = DirectWriter::commit(&db);
        let direct = if closed_first {
            direct.close();
            None
        } else {
            Some(direct)
        };
        drop(held);
        if commits == Commits::OneInTheLog {
            at_rest(&c);
        }
        written(&c, "after");
        if let Some(d) = direct {
            d.close();
        }
        drop(c);
        // The housekeeper's end (and its connection's close) is not waited for: each file
        // is read as any reader would, whatever the committer does meanwhile.
        ([contents(&renamed), contents(&db)], errors_about(&db))
    }

    fn sound(users: &[&str]) -> (String, Vec<String>) {
        let users = users.iter().map(|u| u.to_string()).collect();
        ("ok".to_string(), users)
    }

    /// [`replaced_under_the_committer`], and both files as they must be: the renamed one
    /// with the committer's rows alone, the new one with its own (a copied-in file's row
    /// first), the other writer's and the committer's next, and no error reported.
    fn kept_apart(new: NewFile, commits: Commits, closed_first: bool) {
        let case = format!("{new:?}, {commits:?}, closed first: {closed_first}");
        let ([renamed, new_file], errors) =
            replaced_under_the_committer(new, commits, closed_first);
        assert_eq!(
            renamed,
            sound(&["before1", "before2"]),
            "the renamed file: {case}"
        );
        let mut users = vec!["direct", "after"];
        if new == NewFile::Copied {
            users.insert(0, "restored");
        }
        assert_eq!(new_file, sound(&users), "the new file: {case}");
        assert_eq!(errors, Vec::<String>::new(), "{case}");
    }

    /// Regression: at rest, the committer's connection shares its `-shm` index with a
    /// writer of another process that opened the new file (SQLite finds it by name, and the
    /// connection's lock on it kept it from being started afresh), and that writer's
    /// commit, still in the log, was counted there. The committer's next write copied
    /// "frames" at the new file's page numbers out of its own log into the renamed file:
    /// zeros over its first page ("file is not a database").
    #[test]
    fn at_rest_a_file_created_anew_and_written_by_another_process_is_kept_apart() {
        kept_apart(NewFile::Empty, Commits::AtRest, false);
    }

    /// The same with a database copied in: the new file's pages were copied over the
    /// renamed file, which then held the new file's rows, its own gone.
    #[test]
    fn at_rest_a_file_copied_in_and_written_by_another_process_is_kept_apart() {
        kept_apart(NewFile::Copied, Commits::AtRest, false);
    }

    /// When the other writer has closed before the committer's next write, its close copied
    /// its commit into the new file and emptied the log: nothing was left to copy wrongly.
    /// The index it used is not the committer's as that left it, but a connection at rest
    /// has nothing to copy, and nothing is reported.
    #[test]
    fn at_rest_a_file_replaced_and_written_by_a_writer_that_closed_is_kept_apart() {
        for new in [NewFile::Empty, NewFile::Copied] {
            kept_apart(new, Commits::AtRest, true);
        }
    }

    /// Right after a group, the committer's commits are in the log only; an empty file put
    /// at the name and opened by another writer sets that log aside with its index (see
    /// `storage::files::keep_orphaned_log`), so the connection's index is its own still:
    /// the commits are copied into the renamed file, where they belong.
    #[test]
    fn a_file_created_anew_right_after_a_group_gets_the_groups_copied_into_the_old_file() {
        kept_apart(NewFile::Empty, Commits::InTheLog, false);
    }

    /// A database copied in while the committer's last group is in the log only, and
    /// written by another process: that writer shares the connection's index and log, and
    /// reads the new file through the log (SQLite's doing, out of the committer's reach).
    /// The committer's housekeeper, due to copy the log into the file, finds its index used
    /// by another and copies nothing, and says so: the renamed file keeps what it held,
    /// sound, without the other writer's row (the copy wrote its pages there).
    #[test]
    fn a_file_copied_in_right_after_a_group_gets_none_of_its_pages_into_the_old_file() {
        let ([renamed, _], errors) =
            replaced_under_the_committer(NewFile::Copied, Commits::OneInTheLog, false);
        assert_eq!(renamed, sound(&["before1", "before2"]), "the renamed file");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("another program has used"), "{errors:?}");
    }

    /// Regression: the committer's connection read its index's header through a descriptor
    /// of its own, closed after the connection (a retire, a group that failed, the end).
    /// Closing any descriptor of the `-shm` file drops every `fcntl` lock the process holds
    /// on it, and the daemon has other connections on that index (its readers, the session
    /// writer's fallback, a rotate): one holding the write lock lost it, and a writer of
    /// another process committed meanwhile (in 4 ms, seen with `child_process_direct_writer`)
    /// and had its acknowledged row overwritten by that connection's commit.
    #[test]
    fn dropping_the_kept_connection_leaves_the_locks_of_the_others_on_its_index() {
        use crate::storage::tests::locks_held_here;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp.db");
        let c = Conn::open(&path).unwrap();
        assert!(c.left.is_some(), "the index's header read after the open");
        let shm = c.db.file().with_extension("db-shm");
        // Another connection of this process, in a write transaction.
        let other = Database::open_read_write(&path).unwrap();
        other.connection().execute_batch("BEGIN IMMEDIATE").unwrap();
        let held = locks_held_here(&shm);
        assert!(
            held.contains(&("WRITE".into(), "120".into())),
            "the write lock: {held:?}"
        );
        drop(c);
        assert_eq!(locks_held_here(&shm), held, "the other connection's locks");
        other.connection().execute_batch("ROLLBACK").unwrap();
    }

    /// Regression: the committer's connection at rest keeps its page cache (SQLite trusts
    /// it while the log's index is unchanged), so a database copied over the file in place
    /// (`cp backup.db wtmp.db`, the same inode) was written from that cache: the next
    /// group's pages went over the copied-in file, whose rows were gone (or whose indexes
    /// no longer matched its table), and the group's own row was not in the table either.
    #[test]
    fn a_database_copied_over_the_file_at_rest_is_written_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before1");
        written(&c, "before2");
        at_rest(&c);
        // In place: `std::fs::copy` truncates and writes the file at the name.
        copy_a_database_to(&db);
        written(&c, "after");
        drop(c);
        assert_eq!(contents(&db), sound(&["restored", "after"]));
        assert_eq!(errors_about(&db), Vec::<String>::new());
    }

    /// A writer of another process that writes the file through SQLite at rest (the PAM
    /// module writing the file itself) changes it too, and the index with it: that is no
    /// file written in place, and SQLite drops the connection's cache for it itself.
    #[test]
    fn a_direct_writer_at_rest_is_no_file_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before");
        at_rest(&c);
        DirectWriter::commit(&db).close();
        written(&c, "after");
        drop(c);
        assert_eq!(contents(&db), sound(&["before", "direct", "after"]));
        assert_eq!(said_about(&db, "written in place"), Vec::<String>::new());
    }

    /// An admin's `chmod` or `chown` of the file at rest changes its change time alone:
    /// the connection goes on, and says nothing of a file written in place.
    #[test]
    fn a_new_mode_at_rest_is_no_file_written_in_place() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before");
        at_rest(&c);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        written(&c, "after");
        drop(c);
        assert_eq!(contents(&db), sound(&["before", "after"]));
        assert_eq!(said_about(&db, "written in place"), Vec::<String>::new());
    }

    /// Regression: logrotate's `copytruncate` (the file copied, then truncated in place)
    /// under a committer at rest: its next group was written from its page cache into the
    /// emptied file, leaving the first page zeros ("file is not a database"): that row and
    /// every later one unreadable, and every direct writer refused.
    #[test]
    fn a_file_truncated_in_place_at_rest_is_written_as_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let rotated = dir.path().join("wtmp.db.1");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before");
        at_rest(&c);
        std::fs::copy(&db, &rotated).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(0)
            .unwrap();
        written(&c, "after");
        drop(c);
        assert_eq!(contents(&rotated), sound(&["before"]), "the copy");
        assert_eq!(contents(&db), sound(&["after"]), "the truncated file");
    }

    /// Regression: a reader's transaction (any user's `BEGIN; SELECT`) kept the
    /// committer's last group in its log when the file was renamed away and another
    /// database put at the name (`mv wtmp.db old.db; cp backup.db wtmp.db`). The
    /// committer could not copy that log into the renamed file and left it beside the
    /// name, where the next open read its frames over the copied-in file: "database disk
    /// image is malformed" for every login from then on, through the committer and in the
    /// direct mode. The log is now set aside (`NAME-wal.orphaned-TIME`), as a writer does
    /// beside an empty file: with the renamed file, it holds the group.
    #[test]
    fn a_log_a_reader_pins_is_set_aside_when_another_database_is_put_at_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let renamed = dir.path().join("wtmp.db.1");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before");
        at_rest(&c);
        let reader = Database::open_read_only(&db).unwrap();
        reader
            .connection()
            .execute_batch("BEGIN; SELECT count(*) FROM wtmp;")
            .unwrap();
        written(&c, "late");
        let held = locked(&c.inner.state);
        std::fs::rename(&db, &renamed).unwrap();
        copy_a_database_to(&db);
        drop(held);
        written(&c, "after");
        drop(c);
        assert_eq!(contents(&db), sound(&["restored", "after"]), "the new file");
        drop(reader);
        let orphaned: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("-wal.orphaned-"))
            .collect();
        assert_eq!(orphaned.len(), 1, "{orphaned:?}");
        // Beside the renamed file as its log, it gives the group back.
        let whole = dir.path().join("whole.db");
        std::fs::copy(&renamed, &whole).unwrap();
        std::fs::copy(&orphaned[0], dir.path().join("whole.db-wal")).unwrap();
        assert_eq!(contents(&whole), sound(&["before", "late"]), "with its log");
    }

    /// The variable that makes this test binary a writer holding its transaction (see
    /// [`child_process_writer_in_a_transaction`]): the database it writes.
    const HOLDING_WRITER: &str = "WTMPDB_TEST_HOLDING_WRITER";

    /// Child process mode of this test binary, not a test by itself: a writer of another
    /// process in the middle of a transaction (an import's or a rotate's batch). It opens
    /// the database named in the environment, begins a write transaction and inserts a row
    /// ("held"), says "begun"; at the next line on its standard input commits and says
    /// "committed"; at the next one closes.
    #[test]
    #[ignore = "child-process helper, run by the tests of a file replaced under the committer"]
    fn child_process_writer_in_a_transaction() {
        use std::io::{BufRead, Write};
        let path = std::env::var_os(HOLDING_WRITER).expect("child-process helper, not a test");
        let db = Database::open_read_write(Path::new(&path)).unwrap();
        let sql = |q: &str| db.connection().execute_batch(q).unwrap();
        let mut lines = std::io::stdin().lock().lines();
        sql("BEGIN IMMEDIATE");
        sql("INSERT INTO wtmp (Type, User, Login) VALUES (7, 'held', 1)");
        println!("begun");
        std::io::stdout().flush().unwrap();
        lines.next();
        sql("COMMIT");
        println!("committed");
        std::io::stdout().flush().unwrap();
        lines.next();
        drop(db);
    }

    /// Regression: the committer's copy of its log into the renamed file, begun while the
    /// index was still as it left it, waited (its busy handling, 40 ms) for the write lock
    /// of a writer of another process that had opened the database copied in at the name
    /// (sharing the index) and was in the middle of a transaction (an import's or a
    /// rotate's batch). That writer committed meanwhile; the copy then took the lock, read
    /// the index with that commit in it, and copied its frames too: its row ("held") was
    /// in the renamed file and gone from the new one, and nothing was logged.
    #[test]
    fn a_writer_of_the_new_file_that_commits_while_the_copy_would_wait_stays_out_of_it() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        let renamed = dir.path().join("wtmp.db.1");
        let c = Committer::start(db.clone(), kept, Events::off()).unwrap();
        written(&c, "before1");
        at_rest(&c);
        // "late" in the log only, kept there while the file is replaced.
        written(&c, "late");
        let held = locked(&c.inner.state);
        std::fs::rename(&db, &renamed).unwrap();
        copy_a_database_to(&db);
        let (mut child, mut out) = child_helper(
            "session::group::tests::child_process_writer_in_a_transaction",
            HOLDING_WRITER,
            &db,
        );
        let mut stdin = child.stdin.take().unwrap();
        let mut wait_for = |word: &str| {
            assert!(read_until(&mut out, word), "the child ended before {word}");
        };
        // Its transaction holds the write lock: the committer's next write (or its
        // housekeeper, due by now) finds its file renamed, and the index as it left it.
        wait_for("begun");
        drop(held);
        std::thread::scope(|s| {
            let c2 = c.clone();
            let after = s.spawn(move || written(&c2, "after"));
            // Within the 40 ms the copy waited for the lock.
            std::thread::sleep(Duration::from_millis(15));
            stdin.write_all(b"\n").unwrap();
            wait_for("committed");
            after.join().unwrap();
        });
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        let status = child.wait().unwrap();
        assert!(status.success(), "the writer: {status:?}");
        drop(c);
        // (What the new file holds is SQLite's doing: its writer read it through the
        // committer's log.)
        assert_eq!(
            contents(&renamed),
            sound(&["before1", "late"]),
            "the renamed file"
        );
    }
}
