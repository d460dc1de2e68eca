//! What happened, independent of how it is shown: for each row, how its session or boot
//! ended (a logout, a crash, still logged in, still running), whether it falls inside a time
//! window or was present at a time, and the shutdown that ended a boot.
//!
//! The answers come from the boot rows of the whole database, never from the rows a listing
//! happened to see, so they do not change with user, tty or time filters (upstream's do:
//! `last alice` shows a crashed session as "still logged in"). Every view (`last` in text
//! or JSON, later `who` and `lastlog`) asks this model and only lays the answer out.

use crate::report::RowSource;
use crate::storage::{self, Entry, Kind};
use crate::time::{USEC_PER_SEC, Usec};

/// How a row's session (or boot) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Logged out (or shut down) at this time.
    At(Usec),
    /// No logout, and the system booted again after the login: the session died with it.
    Crash,
    /// A session without logout in the running boot.
    StillLoggedIn,
    /// The running boot.
    StillRunning,
    /// A row of a kind neither implementation writes, without logout.
    Unknown(i64),
}

/// A boot that was shut down, and the next boot after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shutdown {
    pub down: Usec,
    pub up: Usec,
}

/// What the model says about one row that passed the time conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub ending: Ending,
    /// With [`Window::system`], the shutdown that ended this boot row, when it lies in the
    /// window.
    pub shutdown: Option<Shutdown>,
}

/// The time conditions of a listing, in whole seconds since the epoch (upstream compares
/// truncated seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Rows logged in (or, for boots under `system`, shut down) at or after this second.
    pub since: Option<i64>,
    /// Rows logged in at or before this second.
    pub until: Option<i64>,
    /// Rows present at this second.
    pub present: Option<i64>,
    /// Shutdowns are events of their own (`last -x`).
    pub system: bool,
}

fn secs(t: Usec) -> i64 {
    t / USEC_PER_SEC
}

/// The model over the rows of one source (the file, or the daemon's rows): boot times,
/// read on first use (most listings of closed sessions never need them) and kept for the
/// rest of the listing.
pub struct History<'a> {
    src: &'a dyn RowSource,
    boots: Option<Vec<Usec>>,
}

impl<'a> History<'a> {
    pub fn new(src: &'a dyn RowSource) -> History<'a> {
        History { src, boots: None }
    }

    /// The oldest boot strictly after `t`: the boot that ended the system run `t` lies in.
    pub fn next_boot_after(&mut self, t: Usec) -> storage::Result<Option<Usec>> {
        if self.boots.is_none() {
            self.boots = Some(self.src.boot_logins()?);
        }
        let boots = self.boots.as_deref().unwrap_or_default();
        Ok(boots.get(boots.partition_point(|&b| b <= t)).copied())
    }

    /// What happened to `e`, or None when it falls outside `w`.
    pub fn span(&mut self, e: &Entry, w: &Window) -> storage::Result<Option<Span>> {
        let is_boot = e.kind == Kind::BootTime;
        // Upstream compares a boot row's Logout with `-s` under `-x` (so the shutdown line of
        // a boot that started before the window stays); the same rule is kept here.
        let since_time = match e.logout {
            Some(out) if w.system && is_boot => out,
            _ => e.login,
        };
        if w.since.is_some_and(|s| s > secs(since_time)) {
            return Ok(None);
        }
        if w.until.is_some_and(|u| u < secs(e.login)) {
            return Ok(None);
        }
        // The boot that ended this row's system run, if any: the oldest boot after its login.
        let next_boot = if e.logout.is_none() || w.present.is_some() || (w.system && is_boot) {
            self.next_boot_after(e.login)?
        } else {
            None
        };
        if let Some(t) = w.present {
            let gone = match e.logout {
                Some(out) => secs(out) < t,
                None => next_boot.is_some_and(|b| secs(b) < t),
            };
            if t < secs(e.login) || gone {
                return Ok(None);
            }
        }
        let ending = match e.logout {
            Some(t) => Ending::At(t),
            None if next_boot.is_some() => Ending::Crash,
            None if e.kind == Kind::UserProcess => Ending::StillLoggedIn,
            None if is_boot => Ending::StillRunning,
            None => Ending::Unknown(e.kind.as_i64()),
        };
        let shutdown = match (w.system && is_boot, e.logout, next_boot) {
            (true, Some(down), Some(up))
                if w.since.is_none_or(|s| s <= secs(down))
                    && w.until.is_none_or(|u| u >= secs(down)) =>
            {
                Some(Shutdown { down, up })
            }
            _ => None,
        };
        Ok(Some(Span { ending, shutdown }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Database, NewEntry};

    const S: Usec = USEC_PER_SEC;

    fn db_with(rows: &[NewEntry<'_>]) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("w.db")).unwrap();
        for r in rows {
            db.login(r).unwrap();
        }
        (dir, db)
    }

    fn boot(login: Usec, logout: Option<Usec>) -> NewEntry<'static> {
        NewEntry {
            kind: Kind::BootTime,
            user: "reboot",
            login,
            logout,
            tty: Some("~"),
            ..NewEntry::default()
        }
    }

    fn session(login: Usec, logout: Option<Usec>) -> NewEntry<'static> {
        NewEntry {
            kind: Kind::UserProcess,
            user: "alice",
            login,
            logout,
            tty: Some("pts/0"),
            ..NewEntry::default()
        }
    }

    fn entry(db: &Database, login: Usec) -> Entry {
        db.entries(&Default::default())
            .map(Result::unwrap)
            .find(|e| e.login == login)
            .unwrap()
    }

    #[test]
    fn endings_come_from_the_boots_not_from_the_rows_seen() {
        let (_d, db) = db_with(&[
            boot(100 * S, Some(190 * S)),
            session(110 * S, None),
            boot(200 * S, None),
            session(210 * S, None),
            session(220 * S, Some(230 * S)),
        ]);
        let mut h = History::new(&db);
        let w = Window::default();
        let ending = |h: &mut History<'_>, t| h.span(&entry(&db, t), &w).unwrap().unwrap().ending;
        assert_eq!(ending(&mut h, 110 * S), Ending::Crash);
        assert_eq!(ending(&mut h, 210 * S), Ending::StillLoggedIn);
        assert_eq!(ending(&mut h, 200 * S), Ending::StillRunning);
        assert_eq!(ending(&mut h, 220 * S), Ending::At(230 * S));
        assert_eq!(ending(&mut h, 100 * S), Ending::At(190 * S));
    }

    #[test]
    fn presence_windows_and_shutdowns() {
        let (_d, db) = db_with(&[
            boot(100 * S, Some(190 * S)),
            session(110 * S, None),
            boot(200 * S, None),
            session(220 * S, Some(230 * S)),
        ]);
        let mut h = History::new(&db);
        let at = |t| Window {
            present: Some(t),
            ..Window::default()
        };
        // The crashed session was present until the next boot, not after it.
        assert!(h.span(&entry(&db, 110 * S), &at(150)).unwrap().is_some());
        assert!(h.span(&entry(&db, 110 * S), &at(201)).unwrap().is_none());
        // The running boot was present at any later time.
        assert!(h.span(&entry(&db, 200 * S), &at(10_000)).unwrap().is_some());
        // -x: the first boot's shutdown at 190, followed by the boot at 200.
        let x = Window {
            system: true,
            ..Window::default()
        };
        let span = h.span(&entry(&db, 100 * S), &x).unwrap().unwrap();
        assert_eq!(
            span.shutdown,
            Some(Shutdown {
                down: 190 * S,
                up: 200 * S
            })
        );
        // ... unless the shutdown lies outside -t.
        let x_until = Window {
            until: Some(150),
            ..x
        };
        let span = h.span(&entry(&db, 100 * S), &x_until).unwrap().unwrap();
        assert_eq!(span.shutdown, None);
        // -s / -t on logins.
        let since = Window {
            since: Some(215),
            ..Window::default()
        };
        assert!(h.span(&entry(&db, 220 * S), &since).unwrap().is_some());
        assert!(h.span(&entry(&db, 110 * S), &since).unwrap().is_none());
    }
}
