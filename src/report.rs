//! `wtmpdb last`: the text and JSON listings, in upstream's exact layout.
//!
//! The rows come newest first from [`Database::entries`]; boot bookkeeping ("crash",
//! `-x` shutdown lines, `-p`) asks the boot index instead of remembering boot rows seen so
//! far, so it does not change with user, tty or time filters.

use std::io::{self, Write};

use crate::escape::{for_terminal, json_string_into};
use crate::storage::{self, BOOT_TIME, Database, Entry, Filter, USER_PROCESS};
use crate::time::{self, USEC_PER_SEC, Usec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    NoTime,
    Short,
    Full,
    Iso,
}

impl TimeFormat {
    pub fn parse(s: &str) -> Option<TimeFormat> {
        match s {
            "notime" => Some(TimeFormat::NoTime),
            "short" => Some(TimeFormat::Short),
            "full" => Some(TimeFormat::Full),
            "iso" => Some(TimeFormat::Iso),
            _ => None,
        }
    }

    /// Column width of a login time in this format.
    fn login_width(self) -> usize {
        match self {
            TimeFormat::NoTime => 0,
            TimeFormat::Short => 16,
            TimeFormat::Full => 24,
            TimeFormat::Iso => 25,
        }
    }

    fn logout_width(self) -> usize {
        match self {
            TimeFormat::Short => 5,
            other => other.login_width(),
        }
    }

    fn login(self, t: Usec) -> String {
        match self {
            TimeFormat::NoTime => String::new(),
            TimeFormat::Short => time::format_short(t),
            TimeFormat::Full => time::format_full(t),
            TimeFormat::Iso => time::format_iso(t),
        }
    }

    fn logout(self, t: Usec) -> String {
        match self {
            TimeFormat::Short => time::format_hour_minute(t),
            other => other.login(t),
        }
    }
}

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

fn secs(t: Usec) -> i64 {
    // Upstream compares whole seconds, truncating.
    t / USEC_PER_SEC
}

/// `(1+02:30)`, ` (02:34)`, ` (00:05)`. A logout before the login (clock stepped back)
/// counts as zero instead of upstream's underflow.
pub fn format_length(login: Usec, logout: Usec) -> String {
    let s = (logout.saturating_sub(login) / USEC_PER_SEC).max(0);
    let (days, hours, mins) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60);
    if days > 0 {
        format!("({days}+{hours:02}:{mins:02})")
    } else if hours > 0 {
        format!(" ({hours:02}:{mins:02})")
    } else {
        format!(" (00:{mins:02})")
    }
}

/// A line as printed: every field already escaped for its output.
struct Line<'a> {
    user: &'a str,
    tty: &'a str,
    host: &'a str,
    service: Option<&'a str>,
    login: String,
    logout: String,
    length: String,
}

/// What was computed for one row before formatting.
enum Logout {
    At(Usec),
    Crash,
    StillLoggedIn,
    StillRunning,
    Unknown(i64),
}

struct Printer<'w, W: Write> {
    out: &'w mut W,
    opts: &'w LastOptions,
    first_json: bool,
}

fn pad(out: &mut Vec<u8>, s: &str, width: usize, precision: Option<usize>) {
    let s = match precision {
        Some(p) if s.len() > p => {
            let mut end = p;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        }
        _ => s,
    };
    out.extend_from_slice(s.as_bytes());
    for _ in s.len()..width {
        out.push(b' ');
    }
}

impl<W: Write> Printer<'_, W> {
    fn text_line(&mut self, l: &Line<'_>) -> io::Result<()> {
        let o = self.opts;
        let w = o.full_names;
        let mut b = Vec::with_capacity(128);
        pad(&mut b, l.user, 8, (!w).then_some(8));
        b.push(b' ');
        pad(&mut b, l.tty, 12, Some(12));
        if o.host == HostColumn::Normal {
            b.push(b' ');
            pad(&mut b, l.host, 16, (!w).then_some(16));
        }
        if let Some(svc) = l.service {
            b.push(b' ');
            pad(&mut b, svc, 12, Some(12));
        }
        b.push(b' ');
        let (lw, ow) = (o.login_format.login_width(), o.logout_format.logout_width());
        pad(&mut b, &l.login, lw, None);
        b.extend_from_slice(b" - ");
        pad(&mut b, &l.logout, ow, Some(ow));
        b.push(b' ');
        if o.host == HostColumn::Last {
            pad(&mut b, &l.length, 12, Some(12));
            b.push(b' ');
            b.extend_from_slice(l.host.as_bytes());
        } else {
            b.extend_from_slice(l.length.as_bytes());
        }
        b.push(b'\n');
        self.out.write_all(&b)
    }

    fn json_line(&mut self, raw_user: &str, l: &Line<'_>, status: Option<&str>) -> io::Result<()> {
        let o = self.opts;
        let mut s = String::with_capacity(256);
        if !self.first_json {
            s.push_str(",\n");
        }
        self.first_json = false;
        let field = |s: &mut String, key: &str, v: &str, last: bool| {
            s.push('"');
            s.push_str(key);
            s.push_str("\": \"");
            json_string_into(s, v);
            s.push('"');
            s.push_str(if last { "\n" } else { ",\n" });
        };
        s.push_str("     { ");
        field(&mut s, "user", raw_user, false);
        s.push_str("       ");
        field(&mut s, "tty", l.tty, false);
        if o.host != HostColumn::Hidden {
            s.push_str("       ");
            field(&mut s, "hostname", l.host, false);
        }
        if o.service {
            s.push_str("       ");
            field(&mut s, "service", l.service.unwrap_or(""), false);
        }
        s.push_str("       ");
        field(&mut s, "login", &l.login, false);
        s.push_str("       ");
        match status {
            Some(st) => field(&mut s, "logout", st, true),
            None => {
                field(&mut s, "logout", &l.logout, false);
                s.push_str("       ");
                let len = l
                    .length
                    .trim_start()
                    .trim_start_matches('(')
                    .trim_end_matches(')');
                field(&mut s, "length", len, true);
            }
        }
        s.push_str("     }");
        self.out.write_all(s.as_bytes())
    }
}

fn resolve_host(host: &str, how: Resolve) -> Option<String> {
    match how {
        Resolve::No => None,
        Resolve::Dns => crate::resolve::name_of_address(host),
        Resolve::Ip => crate::resolve::address_of_name(host),
    }
}

/// Prints the report for `db` to `out` and returns how many rows were printed.
pub fn last<W: Write>(db: &Database, opts: &LastOptions, out: &mut W) -> Result<u64, ReportError> {
    let empty = db.is_empty()?;
    if opts.json {
        out.write_all(b"{\n   \"entries\": [\n")?;
    } else if empty {
        writeln!(out, "{} has no entries", for_terminal(&opts.label))?;
        return Ok(0);
    }
    let filter = Filter {
        users_or_ttys: opts.matches.clone(),
        // `-t` keeps rows whose Login second is <= until: the database does that part.
        login_at_most: opts
            .until
            .and_then(|u| u.checked_add(1))
            .and_then(|u| u.checked_mul(USEC_PER_SEC))
            .map(|u| u - 1),
    };
    let mut p = Printer {
        out,
        opts,
        first_json: true,
    };
    let mut printed = 0u64;
    let mut reached_min: Option<Usec> = None;
    let mut limit_hit = false;
    for e in db.entries(&filter) {
        let e = e?;
        if opts.limit > 0 && printed >= opts.limit {
            limit_hit = true;
            break;
        }
        reached_min = Some(reached_min.map_or(e.login, |m: Usec| m.min(e.login)));
        if print_entry(db, &mut p, &e)? {
            printed += 1;
        }
    }
    let start = if limit_hit {
        reached_min
    } else {
        db.first_login()?
    };
    let out = p.out;
    let footer = opts
        .footer_format
        .map(|f| start.map(|s| f.login(s)).unwrap_or_default());
    if opts.json {
        if printed > 0 {
            out.write_all(b"\n")?;
        }
        match (&footer, empty) {
            (Some(f), false) => {
                let mut s = String::from("   ],\n   \"start\": \"");
                json_string_into(&mut s, f);
                s.push_str("\"\n}\n");
                out.write_all(s.as_bytes())?;
            }
            _ => out.write_all(b"   ]\n}\n")?,
        }
    } else if let Some(f) = footer {
        write!(out, "\n{} begins {}\n", for_terminal(&opts.label), f)?;
    }
    out.flush()?;
    Ok(printed)
}

/// Applies the time and presence filters to one row and prints it (with its shutdown line
/// under `-x`). Returns whether the row was printed.
fn print_entry<W: Write>(
    db: &Database,
    p: &mut Printer<'_, W>,
    e: &Entry,
) -> Result<bool, ReportError> {
    let opts = p.opts;
    let is_boot = e.kind == BOOT_TIME;
    // Upstream compares a boot row's Logout with `-s` under `-x` (so the shutdown line of
    // a boot that started before the window stays); the same rule is kept here.
    let since_time = match e.logout {
        Some(out) if opts.system && is_boot => out,
        _ => e.login,
    };
    if opts.since.is_some_and(|s| s > secs(since_time)) {
        return Ok(false);
    }
    if opts.until.is_some_and(|u| u < secs(e.login)) {
        return Ok(false);
    }
    // The boot that ended this row's system run, if any: the oldest boot after its login.
    let next_boot = if e.logout.is_none() || opts.present.is_some() || (opts.system && is_boot) {
        db.next_boot_after(e.login)?
    } else {
        None
    };
    if let Some(t) = opts.present {
        let gone = match e.logout {
            Some(out) => secs(out) < t,
            None => next_boot.is_some_and(|b| secs(b) < t),
        };
        if t < secs(e.login) || gone {
            return Ok(false);
        }
    }

    let status = match e.logout {
        Some(t) => Logout::At(t),
        None if next_boot.is_some() => Logout::Crash,
        None if e.kind == USER_PROCESS => Logout::StillLoggedIn,
        None if is_boot => Logout::StillRunning,
        None => Logout::Unknown(e.kind),
    };

    let json = opts.json;
    let esc = |s: &str| -> String {
        if json {
            s.to_string()
        } else {
            for_terminal(s).into_owned()
        }
    };
    let raw_host = e.host.as_deref().unwrap_or("");
    let host = esc(&resolve_host(raw_host, opts.resolve).unwrap_or_else(|| raw_host.to_string()));
    let service = opts
        .service
        .then(|| esc(e.service.as_deref().unwrap_or("")));
    let user = if e.user == "soft-reboot" && !opts.full_names && !json {
        "s-reboot".to_string()
    } else {
        esc(&e.user)
    };

    if opts.system && is_boot {
        if let (Some(down), Some(up)) = (e.logout, next_boot) {
            let in_window = opts.since.is_none_or(|s| s <= secs(down))
                && opts.until.is_none_or(|u| u >= secs(down));
            if in_window {
                let line = Line {
                    user: "shutdown",
                    tty: "system down",
                    host: &host,
                    service: service.as_deref(),
                    login: opts.login_format.login(down),
                    logout: opts.logout_format.logout(up),
                    length: format_length(down, up),
                };
                emit(p, "shutdown", &line, None)?;
            }
        }
    }

    let tty = if is_boot {
        "system boot".to_string()
    } else {
        esc(e.tty.as_deref().unwrap_or("?"))
    };
    let short = opts.logout_format == TimeFormat::Short;
    let (logout, length, phrase): (String, String, Option<String>) = match status {
        Logout::At(t) => (
            opts.logout_format.logout(t),
            format_length(e.login, t),
            None,
        ),
        Logout::Crash => ("crash".into(), String::new(), Some("crash".into())),
        Logout::StillLoggedIn if short => (
            "still".into(),
            "logged in".into(),
            Some("still logged in".into()),
        ),
        Logout::StillRunning if short => (
            "still".into(),
            "running".into(),
            Some("still running".into()),
        ),
        Logout::StillLoggedIn => (
            "still logged in".into(),
            String::new(),
            Some("still logged in".into()),
        ),
        Logout::StillRunning => (
            "still running".into(),
            String::new(),
            Some("still running".into()),
        ),
        Logout::Unknown(k) => (
            "ERROR".into(),
            format!("Unknown: {k}"),
            Some(format!("ERROR Unknown: {k}")),
        ),
    };
    let line = Line {
        user: &user,
        tty: &tty,
        host: &host,
        service: service.as_deref(),
        login: opts.login_format.login(e.login),
        logout,
        length,
    };
    emit(p, &e.user, &line, phrase.as_deref())?;
    Ok(true)
}

fn emit<W: Write>(
    p: &mut Printer<'_, W>,
    raw_user: &str,
    line: &Line<'_>,
    phrase: Option<&str>,
) -> io::Result<()> {
    if p.opts.json {
        p.json_line(raw_user, line, phrase)
    } else {
        p.text_line(line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Storage(#[from] storage::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_upstream_and_never_underflow() {
        let m = 60 * USEC_PER_SEC;
        assert_eq!(format_length(0, 5 * m), " (00:05)");
        assert_eq!(format_length(0, 154 * m), " (02:34)");
        assert_eq!(format_length(0, (24 * 60 + 150) * m + 59), "(1+02:30)");
        assert_eq!(format_length(10 * m, 5 * m), " (00:00)");
        assert!(format_length(i64::MIN, i64::MAX).starts_with('('));
    }
}
