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
    let empty = src.is_empty()?;
    if !p.begin(empty)? {
        return Ok(0);
    }
    let mut printed = 0u64;
    let listed = list(src, opts, p, &mut printed);
    if matches!(listed, Err(ReportError::Storage(_))) {
        // A read failed part-way: close the document, then report the failure.
        p.abort(printed)?;
    }
    listed
}

fn list<P: Printer>(
    src: &dyn RowSource,
    opts: &LastOptions,
    p: &mut P,
    printed: &mut u64,
) -> Result<u64, ReportError> {
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
    let start = if limit_hit {
        reached_min
    } else {
        src.first_login()?
    };
    let footer = opts
        .footer_format
        .map(|f| start.map(|s| f.login(s)).unwrap_or_default());
    p.end(*printed, footer.as_deref())?;
    Ok(*printed)
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
