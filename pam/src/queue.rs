//! A first-come-first-served queue for the database work of module calls in one process.
//!
//! SQLite's file locks are not queued: waiters poll, and whoever polls right after a release
//! wins. With many threads of one process logging in at once (a multi-threaded server), that
//! lottery left some waiters past the time bound while others went through repeatedly. Inside
//! the process the calls therefore take turns here, sleeping on a condition variable instead of
//! polling; only the head of the queue competes for SQLite's lock with other processes.
//!
//! This is the only state shared between calls: it holds no configuration and no data of any
//! call, only whose turn it is, and a call that gives up (deadline passed) leaves the queue.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

struct State {
    next: u64,
    serving: u64,
    /// Tickets whose holders stopped waiting before their turn.
    abandoned: BTreeSet<u64>,
}

static STATE: Mutex<State> = Mutex::new(State {
    next: 0,
    serving: 0,
    abandoned: BTreeSet::new(),
});
static TURN: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // A panic while holding the mutex cannot leave the counters inconsistent (each update is a
    // single assignment), so a poisoned lock is still usable.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn skip_abandoned(&mut self) {
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
    }
}

/// The caller's turn; the next caller's starts when this is dropped.
pub struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        let mut s = state();
        s.serving += 1;
        s.skip_abandoned();
        TURN.notify_all();
    }
}

/// Waits for this caller's turn until `deadline`; None if the deadline came first.
pub fn wait(deadline: Instant) -> Option<Turn> {
    let mut s = state();
    let ticket = s.next;
    s.next += 1;
    loop {
        s.skip_abandoned();
        if s.serving == ticket {
            return Some(Turn(()));
        }
        let now = Instant::now();
        if now >= deadline {
            s.abandoned.insert(ticket);
            return None;
        }
        s = TURN
            .wait_timeout(s, deadline - now)
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
        let far = Instant::now() + Duration::from_secs(10);
        let first = wait(far).unwrap();
        // Times out behind `first`, and must not block the ones after it.
        assert!(wait(Instant::now() + Duration::from_millis(20)).is_none());
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let _t = wait(far).unwrap();
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
