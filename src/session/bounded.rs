//! The bounded writer: how a session write waits for the database, and for how long.
//!
//! A login must not hang behind a long report, a locked file or other logins: every call
//! gets one deadline ([`LOCK_WAIT`] from its start) that bounds its turn among the calls of
//! this process (see `queue`), every wait for SQLite's lock, and the legacy mirror's socket
//! exchanges.

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::storage::{self, Database, Migrate, OpenOptions};

/// The bound of one session call: its turn among the calls of its process, its write (or
/// its spooling, when the database's lock is not free within
/// [`super::spool::SPOOL_AFTER`]), and the legacy mirror. Upstream waits 5 s for the lock
/// alone, then loses the record.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Rows up to which a session write may create our indexes on an upstream database (a few
/// tens of milliseconds); above it, the write leaves that to `wtmpdb boot`.
pub const MIGRATE_MAX_ROWS: i64 = 20_000;

/// Bounds on one utmps exchange (one connection). A login or logout makes two (utmpd, then
/// wtmpd). Each gets half of what is left of the call's deadline, but at least
/// [`UTMPS_MIN`] (a logout is mirrored even after the database used up the deadline) and at
/// most [`UTMPS_MAX`] (a local daemon answers in well under a millisecond; waiting longer only
/// means it is stuck). A stuck daemon thus adds at most 0.5 s to a call, and a call whose
/// database wait ran out at most 0.2 s.
pub const UTMPS_MIN: Duration = Duration::from_millis(100);
pub const UTMPS_MAX: Duration = Duration::from_millis(250);

/// After its turn, a call tries SQLite's lock for at least this long, even when the turn
/// took longer than [`super::spool::SPOOL_AFTER`]: enough for a commit of another process
/// to end, short enough that a queue behind a locked database drains quickly into the spool.
const LOCK_TRY_MIN: Duration = Duration::from_millis(5);

/// The deadlines of one call: `all` bounds the whole call, the database's lock is waited for
/// until [`super::spool::SPOOL_AFTER`] after the start (then the write is spooled). The
/// lock's deadline is in force for SQLite's busy handler on this thread until dropped.
pub(super) struct Deadline {
    start: Instant,
    pub(super) all: Instant,
    /// Set by [`Deadline::wait_to_the_end`].
    to_the_end: Cell<bool>,
}

impl Deadline {
    pub(super) fn start() -> Deadline {
        let start = Instant::now();
        let d = Deadline {
            start,
            all: start + LOCK_WAIT,
            to_the_end: Cell::new(false),
        };
        arm(Some(start + super::spool::SPOOL_AFTER));
        storage::vfs::look_before_waits(Some(shut_out));
        SHUT_OUT.with(|s| {
            *s.borrow_mut() = ShutOut {
                may_spool: true,
                ..ShutOut::default()
            }
        });
        d
    }

    /// Waits for this call's turn among the session calls of this process on `database`
    /// (within the whole bound: the calls of one process go one after the other, quickly),
    /// then arms the lock's deadline.
    pub(super) fn turn(&self, database: &Path) -> Result<super::queue::Turn, super::Error> {
        let turn = super::queue::wait(database, self.all).ok_or(super::Error::QueueTimeout {
            waited_ms: LOCK_WAIT.as_millis() as u64,
        })?;
        let lock = if self.to_the_end.get() {
            self.all
        } else {
            (self.start + super::spool::SPOOL_AFTER).max(Instant::now() + LOCK_TRY_MIN)
        };
        arm(Some(lock.min(self.all)));
        Ok(turn)
    }

    /// Lets the lock be waited for until the end of the whole bound: for a write that could
    /// not be spooled (no spool directory this writer may use), waiting is all that is left.
    pub(super) fn wait_to_the_end(&self) {
        self.to_the_end.set(true);
        SHUT_OUT.with(|s| s.borrow_mut().may_spool = false);
        arm(Some(self.all));
    }

    /// Whether the record may still go to the spool: not once the call waits to the end
    /// (it found no spool it may use).
    pub(super) fn may_spool(&self) -> bool {
        !self.to_the_end.get()
    }

    /// The time allowed for one utmps exchange at this point of the call.
    pub(super) fn utmps_timeout(&self) -> Duration {
        utmps_timeout(self.all)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        arm(None);
        storage::vfs::look_before_waits(None);
        SHUT_OUT.with(|s| s.take());
    }
}

/// The writes of the running call on this thread, for [`busy`]: the database it has
/// open, whether `/proc/locks` was read for a lock no wait gets past, and what that found.
#[derive(Default)]
struct ShutOut {
    /// The database the call opens (its name: see [`busy`]).
    database: Option<std::path::PathBuf>,
    /// Giving up early is for a call that can spool: one that waits to the end (it has no
    /// spool) must wait, whatever holds the lock.
    may_spool: bool,
    looked: bool,
    found: Option<storage::ForeignLock>,
}

thread_local! {
    static SHUT_OUT: std::cell::RefCell<ShutOut> = std::cell::RefCell::new(ShutOut::default());
}

/// The lock another process holds that made this thread's running call give up waiting at
/// once (see [`busy`]), if one did.
pub(super) fn shut_out_by() -> Option<storage::ForeignLock> {
    SHUT_OUT.with(|s| s.borrow().found)
}

/// Sets the lock's deadline on this thread, set only for the duration of one call, so no
/// state crosses calls or handles. One value serves both waits: the busy handler's
/// ([`busy`]) and SQLite's own sleeps between its internal retries, which the busy handler
/// never sees (see `storage::vfs`).
fn arm(until: Option<Instant>) {
    storage::vfs::set_deadline(until);
}

fn utmps_timeout(deadline: Instant) -> Duration {
    (deadline.saturating_duration_since(Instant::now()) / 2).clamp(UTMPS_MIN, UTMPS_MAX)
}

/// SQLite busy handler: retry until the call's deadline with short jittered sleeps. SQLite's
/// own handler backs off to 100 ms sleeps, so with dozens of logins at once the ones that
/// happened to back off longest kept losing to newcomers and ran into the timeout; polling
/// every 0.1-2.4 ms lets a waiter take the lock soon after it is released.
///
/// Once per call, at its second retry (the lock was not released within a fraction of a
/// millisecond, as another writer's commit releases it), it looks for a shared lock of
/// another process on the write, checkpoint or recovery byte: SQLite takes those only
/// exclusively, so it is a user holding writers out (a read-only descriptor of the
/// world-readable `-shm` file suffices), and no wait gets past it. The call then gives up at
/// once and spools, instead of waiting out its bound at every login and logout. The look
/// asks the kernel through SQLite's own descriptor of the `-shm` file, and reads
/// `/proc/locks` only when this process has none (see `storage::writers_shut_out`).
fn busy(retries: i32) -> bool {
    let Some(deadline) = storage::vfs::deadline() else {
        return false;
    };
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    if retries >= 1 && shut_out(deadline) {
        return false;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // 0.1 ms doubling to 1.6 ms, plus up to half of that again as jitter so waiters do not
    // wake in step. Shorter sleeps made dozens of waiting processes burn the CPU that the lock
    // holder needed to finish.
    let base = 100u64 << retries.clamp(0, 4);
    let pause = Duration::from_micros(base + u64::from(nanos) % (base / 2 + 1));
    storage::vfs::count_lock_sleep();
    std::thread::sleep(pause.min(deadline - now));
    true
}

/// Once per call: whether another process holds a lock that keeps writers out (see
/// [`busy`]), recorded for [`shut_out_by`]. Asked by the busy handler at
/// its second retry, and by SQLite's own sleeps before their first wait (see
/// `storage::vfs::look_before_waits`): a connection that is the first to open the WAL index
/// rebuilds it in a loop of SQLite's, which never calls the busy handler.
fn shut_out(deadline: Instant) -> bool {
    let database = SHUT_OUT.with(|s| {
        let mut s = s.borrow_mut();
        (s.may_spool && !std::mem::replace(&mut s.looked, true))
            .then(|| s.database.clone())
            .flatten()
    });
    let Some(database) = database else {
        return false;
    };
    // The file a writer opens, its links resolved as a writer follows them.
    let file = storage::files::trusted_file(&database).unwrap_or(database);
    match storage::writers_shut_out(&file, deadline) {
        Some(lock) => {
            SHUT_OUT.with(|s| s.borrow_mut().found = Some(lock));
            true
        }
        None => false,
    }
}

/// Opens `path` for one session write under the running call's deadline: waits for locks
/// only until then, and builds missing indexes only on small databases.
pub(super) fn open(path: &Path) -> storage::Result<Database> {
    let options = OpenOptions::read_write()
        .busy_timeout(Duration::ZERO)
        .migrate(Migrate::UpToRows(MIGRATE_MAX_ROWS))
        // One connection per call: its commits are in the database file when it returns.
        .copy_each_commit(true)
        // Its waits end at the deadline, and `/proc/locks` is read once a wait begins
        // (see `shut_out`), not before every open.
        .look_for_locks_before_open(false);
    // The open's own statements fail at once on a lock and are retried here with the same
    // short polling as `busy`: SQLite's default handler would sleep up to 100 ms between tries
    // and lose the lock to the writers that keep polling.
    // What `busy` looks at, should the lock be taken (its links are resolved only then).
    SHUT_OUT.with(|s| s.borrow_mut().database = Some(path.to_path_buf()));
    let mut tries = 0;
    let db = loop {
        match Database::open(path, &options) {
            // A lock that keeps writers out whatever they wait: spooled at once.
            Err(e) if e.is_locked() && !e.shuts_writers_out() && busy(tries) => tries += 1,
            other => break other?,
        }
    };
    db.set_busy_handler(busy)?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utmps_timeout_is_bounded() {
        let now = Instant::now();
        assert_eq!(utmps_timeout(now), UTMPS_MIN);
        assert_eq!(utmps_timeout(now + Duration::from_secs(1)), UTMPS_MAX);
        let t = utmps_timeout(now + Duration::from_millis(300));
        assert!(t > UTMPS_MIN && t <= Duration::from_millis(150), "{t:?}");
    }
}
