//! `wtmpdb last`: the text and JSON listings, in upstream's exact layout.
//!
//! The rows come newest first from a [`RowSource`] (the file, or the daemon's rows); what
//! happened to each (crash, still logged in, `-x` shutdown lines, `-p`) is the history
//! model's answer ([`crate::history`]), and a printer only lays it out: [`text`] for
//! upstream's columns, [`json`] for `-j`.

mod json;
mod text;

use std::io::{self, Write};
use std::ops::ControlFlow;

use super::format::TimeFormat;
use super::{ReportError, RowSource};
use crate::history::{Ending, History, Window};
use crate::storage::{Entry, Filter, Kind};
use crate::time::{USEC_PER_SEC, Usec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HostColumn {
    /// After the tty, truncated to 16 unless `-w`.
    #[default]
    Normal,
    /// `-a`: last, untruncated.
    Last,
    /// `-R`: not shown.
    Hidden,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resolve {
    #[default]
    No,
    /// `-d`: IP literals to names.
    Dns,
    /// `-i`: names to IP addresses.
    Ip,
}

/// Everything `last` was asked for.
#[derive(Clone, Debug)]
pub struct LastOptions {
    pub host: HostColumn,
    pub resolve: Resolve,
    pub full_names: bool,
    pub json: bool,
    /// 0 = unlimited.
    pub limit: u64,
    /// Seconds since the epoch.
    pub present: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub service: bool,
    pub system: bool,
    pub login_format: TimeFormat,
    pub logout_format: TimeFormat,
    /// None: no footer (notime).
    pub footer_format: Option<TimeFormat>,
    pub matches: Vec<String>,
    /// The name in the footer: the `-f` path as given, or `wtmpdb`.
    pub label: String,
}

impl Default for LastOptions {
    fn default() -> Self {
        LastOptions {
            host: HostColumn::Normal,
            resolve: Resolve::No,
            full_names: false,
            json: false,
            limit: 0,
            present: None,
            since: None,
            until: None,
            service: false,
            system: false,
            login_format: TimeFormat::Short,
            logout_format: TimeFormat::Short,
            footer_format: Some(TimeFormat::Full),
            matches: Vec::new(),
            label: "wtmpdb".to_string(),
        }
    }
}

/// A line of `last` as the model and the options decided it. The strings are raw (as
/// stored, or as resolved): each printer escapes them for where they go.
pub(crate) struct Line<'a> {
    user: &'a str,
    tty: &'a str,
    host: &'a str,
    service: Option<&'a str>,
    login: Usec,
    ending: Ending,
}

/// One layout of `last`.
pub(crate) trait Printer {
    /// Starts the listing; false when there is nothing more to print (the text layout's
    /// "has no entries").
    fn begin(&mut self, empty: bool) -> io::Result<bool>;
    fn line(&mut self, line: &Line<'_>) -> io::Result<()>;
    /// Ends the listing after `printed` rows, with the footer's start time if any.
    fn end(&mut self, printed: u64, footer: Option<&str>) -> io::Result<()>;
    /// Ends a listing that a failed read cut short after `printed` rows: what was printed
    /// stays a whole document (JSON closes its array), without a footer.
    fn abort(&mut self, printed: u64) -> io::Result<()>;
}

fn resolve_host(host: &str, how: Resolve) -> Option<String> {
    match how {
        Resolve::No => None,
        Resolve::Dns => crate::resolve::name_of_address(host),
        Resolve::Ip => crate::resolve::address_of_name(host),
    }
}

/// Prints the report of the rows of `src` to `out` and returns how many rows were printed.
pub fn last<W: Write>(
    src: &dyn RowSource,
    opts: &LastOptions,
    out: &mut W,
) -> Result<u64, ReportError> {
    if opts.json {
        run(src, opts, &mut json::Json::new(out, opts))
    } else {
        run(src, opts, &mut text::Text::new(out, opts))
    }
}

fn run<P: Printer>(src: &dyn RowSource, opts: &LastOptions, p: &mut P) -> Result<u64, ReportError> {
    // The listing starts at its first row; whether the source holds any row is asked only
    // when it showed none (a read fewer for every listing that shows something). What is
    // printed, and when a failure is reported, is as when that was asked first.
    let mut printed = 0u64;
    let mut begun = None;
    let rows = rows(src, opts, p, &mut printed, &mut begun);
    let go_on = match begun {
        Some(go_on) => go_on,
        None => {
            let empty = src.is_empty()?;
            p.begin(empty)?
        }
    };
    if !go_on {
        return Ok(0);
    }
    let listed = rows.and_then(|reached| footer(src, opts, p, printed, reached));
    if matches!(listed, Err(ReportError::Storage(_))) {
        // A read failed part-way: close the document, then report the failure.
        p.abort(printed)?;
    }
    listed
}

/// Lists the rows, starting the listing (`begun`: whether it goes on) at the first; returns
/// the oldest Login listed when the limit cut the listing short.
fn rows<P: Printer>(
    src: &dyn RowSource,
    opts: &LastOptions,
    p: &mut P,
    printed: &mut u64,
    begun: &mut Option<bool>,
) -> Result<Option<Option<Usec>>, ReportError> {
    let filter = Filter {
        users_or_ttys: opts.matches.clone(),
        // `-t` keeps rows whose Login second is <= until: the database does that part.
        login_at_most: opts
            .until
            .and_then(|u| u.checked_add(1))
            .and_then(|u| u.checked_mul(USEC_PER_SEC))
            .map(|u| u - 1),
        // `-n N` stops at the row after the N-th printed (0: no limit, no guess).
        rows_wanted: match usize::try_from(opts.limit) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n.saturating_add(1),
        },
    };
    let window = Window {
        since: opts.since,
        until: opts.until,
        present: opts.present,
        system: opts.system,
    };
    let mut history = History::new(src);
    let mut reached_min: Option<Usec> = None;
    let mut limit_hit = false;
    src.newest_first(&filter, &mut |e| {
        let go_on = match *begun {
            Some(go_on) => go_on,
            None => {
                let started = p.begin(false);
                // Begun even when the start failed: its error ends the listing as it is.
                *begun = Some(!matches!(started, Ok(false)));
                started?
            }
        };
        if !go_on {
            return Ok(ControlFlow::Break(()));
        }
        if opts.limit > 0 && *printed >= opts.limit {
            limit_hit = true;
            return Ok(ControlFlow::Break(()));
        }
        reached_min = Some(reached_min.map_or(e.login, |m: Usec| m.min(e.login)));
        if print_entry(&mut history, &window, opts, p, e)? {
            *printed += 1;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(limit_hit.then_some(reached_min))
}

/// Ends the listing of `printed` rows with its footer: from the oldest Login listed when
/// the limit cut it short (`reached`), else from the table's first.
fn footer<P: Printer>(
    src: &dyn RowSource,
    opts: &LastOptions,
    p: &mut P,
    printed: u64,
    reached: Option<Option<Usec>>,
) -> Result<u64, ReportError> {
    let start = match reached {
        Some(reached_min) => reached_min,
        None => src.first_login()?,
    };
    let footer = opts
        .footer_format
        .map(|f| start.map(|s| f.login(s)).unwrap_or_default());
    p.end(printed, footer.as_deref())?;
    Ok(printed)
}

/// Asks the model about one row and prints it (after its shutdown line under `-x`).
/// Returns whether the row was printed.
fn print_entry<P: Printer>(
    history: &mut History<'_>,
    window: &Window,
    opts: &LastOptions,
    p: &mut P,
    e: &Entry,
) -> Result<bool, ReportError> {
    let Some(span) = history.span(e, window)? else {
        return Ok(false);
    };
    let raw_host = e.host.as_deref().unwrap_or("");
    let resolved = resolve_host(raw_host, opts.resolve);
    let host = resolved.as_deref().unwrap_or(raw_host);
    let service = opts.service.then(|| e.service.as_deref().unwrap_or(""));
    if let Some(down) = span.shutdown {
        p.line(&Line {
            user: "shutdown",
            tty: "system down",
            host,
            service,
            login: down.down,
            ending: Ending::At(down.up),
        })?;
    }
    let tty = if e.kind == Kind::BootTime {
        "system boot"
    } else {
        e.tty.as_deref().unwrap_or("?")
    };
    p.line(&Line {
        user: &e.user,
        tty,
        host,
        service,
        login: e.login,
        ending: span.ending,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::report::source::Rows;
    use crate::storage::{self, OpenRow};

    /// Rows that count how often they are asked whether they are empty, and can fail the
    /// listing before its first row.
    struct Counting {
        rows: Rows,
        asked_empty: Cell<u32>,
        listing_fails: bool,
    }

    impl RowSource for Counting {
        fn is_empty(&self) -> Result<bool, ReportError> {
            self.asked_empty.set(self.asked_empty.get() + 1);
            self.rows.is_empty()
        }
        fn first_login(&self) -> Result<Option<Usec>, ReportError> {
            self.rows.first_login()
        }
        fn boot_logins(&self) -> storage::Result<Vec<Usec>> {
            self.rows.boot_logins()
        }
        fn boot_time(&self) -> storage::Result<Option<Usec>> {
            self.rows.boot_time()
        }
        fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>, ReportError> {
            self.rows.open_since(since)
        }
        fn newest_first(
            &self,
            filter: &Filter,
            each: &mut dyn FnMut(&Entry) -> Result<ControlFlow<()>, ReportError>,
        ) -> Result<(), ReportError> {
            if self.listing_fails {
                return Err(ReportError::Storage(storage::Error::ChangedWhileUnlocked {
                    path: "w.db".into(),
                }));
            }
            self.rows.newest_first(filter, each)
        }
        fn newest_session_of(&self, user: &str) -> Result<Option<Entry>, ReportError> {
            self.rows.newest_session_of(user)
        }
        fn has_user_index(&self) -> storage::Result<bool> {
            self.rows.has_user_index()
        }
        fn newest_sessions(
            &self,
            each: &mut dyn FnMut(Entry) -> Result<(), ReportError>,
        ) -> Result<(), ReportError> {
            self.rows.newest_sessions(each)
        }
    }

    fn session(user: &str, login: Usec) -> Entry {
        Entry {
            id: login,
            kind: Kind::UserProcess,
            user: user.into(),
            login: login * USEC_PER_SEC,
            logout: Some((login + 60) * USEC_PER_SEC),
            tty: Some("pts/1".into()),
            ..Entry::default()
        }
    }

    fn listed(src: &Counting, opts: &LastOptions) -> (String, Result<u64, String>) {
        let mut out = Vec::new();
        let r = last(src, opts, &mut out).map_err(|e| e.to_string());
        (String::from_utf8(out).unwrap(), r)
    }

    /// A listing that shows a row never asks whether there is any; one that shows none asks
    /// once, and says "has no entries" only when there is none. A listing that fails
    /// before its first row fails as when that was asked first: a JSON document closed.
    #[test]
    fn emptiness_is_asked_only_of_a_listing_without_rows() {
        let rows: Rows = [session("bob", 1_700_000_100), session("eve", 1_700_000_000)]
            .into_iter()
            .map(|e| (e, None))
            .collect();
        let counting = |rows: &Rows, listing_fails| Counting {
            rows: rows.clone(),
            asked_empty: Cell::new(0),
            listing_fails,
        };
        let text = LastOptions::default();
        let json = LastOptions {
            json: true,
            ..LastOptions::default()
        };
        let some = counting(&rows, false);
        let (out, r) = listed(&some, &text);
        assert_eq!((r, some.asked_empty.get()), (Ok(2), 0), "{out}");
        assert!(
            out.starts_with("bob ") && out.contains("\nwtmpdb begins "),
            "{out}"
        );
        let one = LastOptions {
            limit: 1,
            ..LastOptions::default()
        };
        assert_eq!(listed(&some, &one).1, Ok(1));
        assert_eq!(some.asked_empty.get(), 0);
        let alice = LastOptions {
            matches: vec!["alice".into()],
            ..LastOptions::default()
        };
        let (out, r) = listed(&some, &alice);
        assert_eq!((r, some.asked_empty.get()), (Ok(0), 1));
        assert!(out.starts_with("\nwtmpdb begins "), "{out}");
        let none = counting(&Rows::new(), false);
        assert_eq!(
            listed(&none, &text),
            ("wtmpdb has no entries\n".into(), Ok(0))
        );
        assert_eq!(none.asked_empty.get(), 1);
        let (out, r) = listed(&none, &json);
        assert_eq!(
            (out.as_str(), r),
            ("{\n   \"entries\": [\n   ]\n}\n", Ok(0))
        );
        let failing = counting(&rows, true);
        let (out, r) = listed(&failing, &json);
        assert!(r.is_err(), "{r:?}");
        assert!(
            out.starts_with("{\n   \"entries\": [") && out.ends_with("}\n"),
            "{out}"
        );
        assert_eq!(failing.asked_empty.get(), 1);
        // An empty source whose listing would fail says it has no entries, as before.
        let (out, r) = listed(&counting(&Rows::new(), true), &text);
        assert_eq!((out.as_str(), r), ("wtmpdb has no entries\n", Ok(0)));
    }
}
