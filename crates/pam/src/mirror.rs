//! The legacy utmp/wtmp mirror of a PAM session (`utmp=utmpx|utmps`), for services that do
//! not write utmp themselves. The database stays the record: a mirror failure is logged and
//! never changes the return code of the call.
//!
//! `ut_pid` is the process that calls pam_open_session (`getpid()`); it is kept in the PAM
//! handle, so a close in a forked child of that process names the same entry. A close from
//! an unrelated process (a new handle) uses its own PID: the utmp entry is then not ours and
//! stays (the mirrors only replace an entry with the same line and PID), while wtmp still
//! gets the logout record.

use std::time::{Duration, Instant};

use libc::{LOG_DEBUG, LOG_ERR, LOG_WARNING};
use wtmpdb::escape::for_terminal;
use wtmpdb::legacy::{LegacySession, LegacySink, Mirror, MirrorKind};
use wtmpdb::time::Usec;

use crate::ffi::Pam;
use crate::options::Options;

/// Bounds on one utmps exchange (one connection). A login or logout makes two (utmpd, then
/// wtmpd). Each gets half of what is left of the call's 1 s deadline, but at least
/// [`UTMPS_MIN`] (a logout is mirrored even after the database used up the deadline) and at
/// most [`UTMPS_MAX`] (a local daemon answers in well under a millisecond; waiting longer only
/// means it is stuck). A stuck daemon thus adds at most 0.5 s to a call, and a call whose
/// database wait ran out at most 0.2 s.
pub const UTMPS_MIN: Duration = Duration::from_millis(100);
pub const UTMPS_MAX: Duration = Duration::from_millis(250);

fn utmps_timeout(deadline: Instant) -> Duration {
    (deadline.saturating_duration_since(Instant::now()) / 2).clamp(UTMPS_MIN, UTMPS_MAX)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Login,
    Logout,
}

/// The session's items in their stored form (see `items`).
pub struct Items<'a> {
    pub user: &'a str,
    pub tty: &'a str,
    pub host: &'a str,
    pub service: &'a str,
}

/// Writes the legacy records of `event` at `at`, if a mirror is configured.
pub fn write(pam: &Pam, opts: &Options, it: &Items<'_>, event: Event, at: Usec, deadline: Instant) {
    if opts.utmp == MirrorKind::None {
        return;
    }
    let mirror = match Mirror::new(opts.utmp, &opts.mirror_paths(utmps_timeout(deadline))) {
        Ok(m) => m,
        Err(e) => {
            pam.syslog(LOG_ERR, &format!("{e}; no utmp/wtmp records are written"));
            return;
        }
    };
    let pid = match event {
        Event::Login => None,
        Event::Logout => pam.utmp_pid(),
    }
    .unwrap_or_else(|| std::process::id() as i32);
    let session = LegacySession::new(it.user, Some(it.tty), Some(it.host), Some(it.service), pid);
    let (what, result) = match event {
        Event::Login => ("login", mirror.login(&session, at)),
        Event::Logout => ("logout", mirror.logout(&session, at)),
    };
    let line = for_terminal(&session.line);
    match result {
        Ok(()) => {
            if opts.debug {
                pam.syslog(
                    LOG_DEBUG,
                    &format!("utmp={} {what} line={line} pid={pid}", mirror.name()),
                );
            }
        }
        Err(e) => pam.syslog(
            LOG_WARNING,
            &format!(
                "utmp={}: {what} on line '{line}' not mirrored: {}",
                mirror.name(),
                for_terminal(&e.to_string())
            ),
        ),
    }
    if event == Event::Login {
        // Even after a failure: part of the records (wtmp, say) may have been written.
        if let Err(rc) = pam.set_utmp_pid(pid) {
            pam.syslog(
                LOG_WARNING,
                &format!("Cannot keep the utmp PID in the PAM handle (error {rc})"),
            );
        }
    }
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
