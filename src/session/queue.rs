//! A first-come-first-served queue for the database work of session writes in one process.
//!
//! SQLite's file locks are not queued: waiters poll, and whoever polls right after a release
//! wins. With many threads of one process logging in at once (a multi-threaded server), that
//! lottery left some waiters past the time bound while others went through repeatedly. Inside
//! the process the calls therefore take turns here, sleeping on a condition variable instead of
//! polling; only the head of the queue competes for SQLite's lock with other processes.
//!
//! There is one queue per database file, so a locked database never holds up logins that
//! write to another one. This is the only state shared between calls: it holds no
//! configuration and no data of any call, only whose turn it is; a call that gives up (deadline
//! passed) leaves the queue, and an empty queue is removed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    next: u64,
    serving: u64,
    /// Tickets whose holders stopped waiting before their turn.
    abandoned: BTreeSet<u64>,
}

/// The queues, with the process they belong to.
type Queues = Option<(u32, HashMap<PathBuf, State>)>;

static QUEUES: Mutex<Queues> = Mutex::new(None);
static TURN: Condvar = Condvar::new();

/// The queues of this process, waiting for the lock at most until `deadline`.
///
/// After `fork` the child inherits the parent's queues, whose turns belong to threads that do
/// not exist in the child: the process ID tells, and the child starts afresh. A fork that
/// happened while another thread held the lock leaves it locked for good in the child, so the
/// lock is polled until the deadline rather than waited for.
fn queues(deadline: Instant) -> Option<MutexGuard<'static, Queues>> {
    let mut guard = loop {
        match QUEUES.try_lock() {
            Ok(g) => break g,
            // A panic while holding the mutex cannot leave a queue inconsistent (each update
            // is a single assignment), so a poisoned lock is still usable.
            Err(TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    };
    let pid = std::process::id();
    if guard.as_ref().map(|q| q.0) != Some(pid) {
        *guard = Some((pid, HashMap::new()));
    }
    Some(guard)
}

fn map(q: &mut Queues) -> &mut HashMap<PathBuf, State> {
    &mut q
        .get_or_insert_with(|| (std::process::id(), HashMap::new()))
        .1
}

impl State {
    fn skip_abandoned(&mut self) {
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
    }
}

impl State {
    fn idle(&self) -> bool {
        self.serving == self.next
    }
}

/// Advances `path`'s queue past a finished or abandoned turn; drops it when empty.
fn advance(map: &mut HashMap<PathBuf, State>, path: &Path, f: impl FnOnce(&mut State)) {
    if let Some(s) = map.get_mut(path) {
        f(s);
        s.skip_abandoned();
        if s.idle() {
            map.remove(path);
        }
    }
    TURN.notify_all();
}

/// The caller's turn on one database; the next caller's starts when this is dropped. Without
/// a queue (its lock stuck after a fork), the call goes ahead on SQLite's locking alone.
pub(super) struct Turn(Option<(u32, PathBuf)>);

impl Drop for Turn {
    fn drop(&mut self) {
        let Some((pid, path)) = self.0.take() else {
            return;
        };
        let Some(mut q) = queues(Instant::now() + Duration::from_millis(100)) else {
            return;
        };
        // A turn taken before a fork means nothing in the child's fresh queues.
        if q.as_ref().map(|q| q.0) == Some(pid) {
            advance(map(&mut q), &path, |s| s.serving += 1);
        }
    }
}

/// Waits until `deadline` for this caller's turn to use `database`; None if the deadline came
/// first.
pub(super) fn wait(database: &Path, deadline: Instant) -> Option<Turn> {
    let Some(mut q) = queues(deadline) else {
        return Some(Turn(None));
    };
    let pid = std::process::id();
    let ticket = {
        let s = map(&mut q).entry(database.to_path_buf()).or_default();
        s.next += 1;
        s.next - 1
    };
    loop {
        let map = map(&mut q);
        let s = map.entry(database.to_path_buf()).or_default();
        s.skip_abandoned();
        if s.serving == ticket {
            return Some(Turn(Some((pid, database.to_path_buf()))));
        }
        let now = Instant::now();
        if now >= deadline {
            s.abandoned.insert(ticket);
            advance(map, database, |_| {});
            return None;
        }
        q = TURN
            .wait_timeout(q, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn turns_are_taken_in_order_and_timeouts_leave_the_queue() {
        let db = Path::new("/queue-test/a.db");
        let far = Instant::now() + Duration::from_secs(10);
        let first = wait(db, far).unwrap();
        // Another database has its own queue.
        drop(wait(Path::new("/queue-test/b.db"), Instant::now()).unwrap());
        // Times out behind `first`, and must not block the ones after it.
        assert!(wait(db, Instant::now() + Duration::from_millis(20)).is_none());
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let _t = wait(db, far).unwrap();
                order.lock().unwrap().push(2);
            });
            std::thread::sleep(Duration::from_millis(50));
            order.lock().unwrap().push(1);
            drop(first);
            h.join().unwrap();
        });
        assert_eq!(*order.lock().unwrap(), vec![1, 2]);
    }

    /// Regression: a child forked while the parent held a turn waited for a turn that no
    /// thread of the child would ever give back, and every login in it timed out.
    #[test]
    fn a_forked_child_does_not_wait_for_the_parents_turns() {
        let db = Path::new("/queue-test/fork.db");
        let held = wait(db, Instant::now() + Duration::from_secs(10)).unwrap();
        // The child only takes the queue lock (not held by anyone at this point in this
        // test's own thread; other test threads use other paths and short critical
        // sections).
        let status = crate::sys::wait_status_of_child(|| {
            let got = wait(db, Instant::now() + Duration::from_millis(500));
            let code = if got.is_some() { 0 } else { 1 };
            std::mem::forget(got);
            code
        })
        .expect("fork or waitpid failed");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child: {status}"
        );
        drop(held);
    }
}
