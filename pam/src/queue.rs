//! A first-come-first-served queue for the database work of module calls in one process.
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
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
struct State {
    next: u64,
    serving: u64,
    /// Tickets whose holders stopped waiting before their turn.
    abandoned: BTreeSet<u64>,
}

static QUEUES: Mutex<Option<HashMap<PathBuf, State>>> = Mutex::new(None);
static TURN: Condvar = Condvar::new();

fn queues() -> MutexGuard<'static, Option<HashMap<PathBuf, State>>> {
    // A panic while holding the mutex cannot leave a queue inconsistent (each update is a
    // single assignment), so a poisoned lock is still usable.
    QUEUES.lock().unwrap_or_else(|e| e.into_inner())
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

/// The caller's turn on one database; the next caller's starts when this is dropped.
pub struct Turn(PathBuf);

impl Drop for Turn {
    fn drop(&mut self) {
        let mut q = queues();
        advance(q.get_or_insert_with(HashMap::new), &self.0, |s| {
            s.serving += 1
        });
    }
}

/// Waits until `deadline` for this caller's turn to use `database`; None if the deadline came
/// first.
pub fn wait(database: &Path, deadline: Instant) -> Option<Turn> {
    let mut q = queues();
    let ticket = {
        let s = q
            .get_or_insert_with(HashMap::new)
            .entry(database.to_path_buf())
            .or_default();
        s.next += 1;
        s.next - 1
    };
    loop {
        let map = q.get_or_insert_with(HashMap::new);
        let s = map.entry(database.to_path_buf()).or_default();
        s.skip_abandoned();
        if s.serving == ticket {
            return Some(Turn(database.to_path_buf()));
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
}
