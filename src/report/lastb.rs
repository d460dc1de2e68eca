//! `wtmpdb lastb`: the failed logins in util-linux `lastb`'s layout, which is `last`'s: each
//! attempt is a line whose login and logout are its time (`- 10:29  (00:00)`, as `lastb`
//! prints a btmp record), so `-n`, `-F`, `-s`/`-t`, `-w`, `--time-format`, the user and tty
//! filters and `-j` are the `last` printers' own, byte for byte.
//!
//! The attempts are held in memory, newest first ([`Rows`]): their number is bounded by the
//! retention's count (see [`crate::storage::Retention`]).

use std::io::Write;
use std::ops::ControlFlow;

use super::{LastOptions, ReportError, Rows, last};
use crate::storage::{Entry, FailedError, Failure, FailureStore, Kind};
use crate::time::Usec;

/// A failed attempt as a row of the `last` report: a session that ended as it began.
pub fn as_entry(f: Failure) -> Entry {
    Entry {
        id: f.id,
        kind: Kind::UserProcess,
        user: f.user,
        login: f.time,
        logout: Some(f.time),
        tty: f.tty,
        host: f.host,
        service: f.service,
    }
}

/// Every attempt of `store` (none without one), newest first.
pub fn rows(store: Option<&FailureStore>) -> Result<Rows, FailedError> {
    let mut rows = Rows::new();
    if let Some(s) = store {
        s.each_between(Usec::MIN, Usec::MAX, |f| {
            rows.push(as_entry(f), None);
            ControlFlow::Continue(())
        })?;
    }
    Ok(rows)
}

/// Prints the attempts in `rows` as `lastb` does; returns how many were printed.
pub fn lastb<W: Write>(rows: &Rows, opts: &LastOptions, out: &mut W) -> Result<u64, ReportError> {
    last(rows, opts, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FailedFiles, NewFailure, failures_path};

    #[test]
    fn an_attempt_prints_as_lastb_prints_a_btmp_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = failures_path(&dir.path().join("wtmp.db"));
        let s = FailureStore::open_write(&p, &FailedFiles::default()).unwrap();
        // 2026-12-06 10:29:05 UTC
        let t = 1_796_552_945 * 1_000_000;
        s.record(&NewFailure {
            time: t,
            user: "baduser",
            tty: Some("ssh:notty"),
            host: Some("192.0.2.7"),
            service: Some("sshd"),
            pid: Some(7),
        })
        .unwrap();
        let opts = LastOptions {
            label: "btmp".into(),
            ..LastOptions::default()
        };
        let mut out = Vec::new();
        let n = lastb(&rows(Some(&s)).unwrap(), &opts, &mut out).unwrap();
        assert_eq!(n, 1);
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("baduser  ssh:notty    192.0.2.7        "),
            "{text}"
        );
        // In UTC: "baduser  ssh:notty    192.0.2.7        Sun Dec  6 10:29 - 10:29  (00:00)".
        let hm = crate::time::format_hour_minute(t);
        assert!(first.ends_with(&format!(" - {hm}  (00:00)")), "{text}");
        assert!(text.contains("\nbtmp begins "), "{text}");
    }
}
