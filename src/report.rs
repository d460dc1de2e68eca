//! `wtmpdb last`: the text and JSON listings, in upstream's exact layout.
//!
//! The rows come newest first from [`Database::entries`]; boot bookkeeping ("crash",
//! `-x` shutdown lines, `-p`) asks the boot index instead of remembering boot rows seen so
//! far, so it does not change with user, tty or time filters.

use std::io::{self, Write};

use crate::escape::{for_terminal, json_string_into};
use crate::storage::{self, Database, Entry, Filter, Kind};
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

    /// Appends a login time (or the footer time) in this format.
    fn push_login(self, out: &mut Vec<u8>, t: Usec) {
        let Some(lt) = time::local(t) else { return };
        match self {
            TimeFormat::NoTime => {}
            TimeFormat::Short => time::push_short(out, &lt),
            TimeFormat::Full => time::push_full(out, &lt),
            TimeFormat::Iso => time::push_iso(out, &lt),
        }
    }

    /// Appends a logout time: short format shows only the hour and minute.
    fn push_logout(self, out: &mut Vec<u8>, t: Usec) {
        match self {
            TimeFormat::Short => {
                if let Some(lt) = time::local(t) {
                    time::push_hour_minute(out, &lt);
                }
            }
            other => other.push_login(out, t),
        }
    }

    fn login(self, t: Usec) -> String {
        let mut v = Vec::with_capacity(32);
        self.push_login(&mut v, t);
        String::from_utf8(v).unwrap_or_default()
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
    let mut v = Vec::with_capacity(16);
    push_length(&mut v, login, logout);
    String::from_utf8(v).unwrap_or_default()
}

fn push_length(out: &mut Vec<u8>, login: Usec, logout: Usec) {
    let s = (logout.saturating_sub(login) / USEC_PER_SEC).max(0);
    let (days, hours, mins) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60);
    let two = |out: &mut Vec<u8>, v: i64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    if days > 0 {
        out.push(b'(');
        out.extend_from_slice(days.to_string().as_bytes());
        out.push(b'+');
    } else {
        out.extend_from_slice(b" (");
    }
    two(out, hours);
    out.push(b':');
    two(out, mins);
    out.push(b')');
}

/// A line as printed: text fields already escaped for the output they go to.
struct Line<'a> {
    user: &'a str,
    tty: &'a str,
    host: &'a str,
    service: Option<&'a str>,
    login: Usec,
    logout: Logout,
}

/// The logout column and what follows it.
#[derive(Clone, Copy)]
enum Logout {
    At(Usec),
    Crash,
    StillLoggedIn,
    StillRunning,
    Unknown(i64),
}

impl Logout {
    /// The whole phrase for JSON (and its single "logout" member).
    fn phrase(self) -> Option<String> {
        match self {
            Logout::At(_) => None,
            Logout::Crash => Some("crash".into()),
            Logout::StillLoggedIn => Some("still logged in".into()),
            Logout::StillRunning => Some("still running".into()),
            Logout::Unknown(k) => Some(format!("ERROR Unknown: {k}")),
        }
    }
}

struct Printer<'w, W: Write> {
    out: &'w mut W,
    opts: &'w LastOptions,
    first_json: bool,
    /// One line is assembled here, then written at once.
    buf: Vec<u8>,
    /// Scratch space for a field that needs padding.
    cell: Vec<u8>,
    /// One JSON entry is assembled here.
    json: String,
}

/// Appends `s` left-aligned in `width` columns, cut to `precision` bytes (never inside a
/// UTF-8 character), as printf's `%-W.Ps` does with bytes.
fn pad(out: &mut Vec<u8>, s: &[u8], width: usize, precision: Option<usize>) {
    let s = match precision {
        Some(p) if s.len() > p => {
            let mut end = p;
            // Back off continuation bytes so a multibyte character is never split.
            while end > 0 && (s[end] & 0xC0) == 0x80 {
                end -= 1;
            }
            &s[..end]
        }
        _ => s,
    };
    out.extend_from_slice(s);
    out.resize(out.len() + width.saturating_sub(s.len()), b' ');
}

impl<W: Write> Printer<'_, W> {
    fn text_line(&mut self, l: &Line<'_>) -> io::Result<()> {
        let o = self.opts;
        let w = o.full_names;
        let b = &mut self.buf;
        b.clear();
        pad(b, l.user.as_bytes(), 8, (!w).then_some(8));
        b.push(b' ');
        pad(b, l.tty.as_bytes(), 12, Some(12));
        if o.host == HostColumn::Normal {
            b.push(b' ');
            pad(b, l.host.as_bytes(), 16, (!w).then_some(16));
        }
        if let Some(svc) = l.service {
            b.push(b' ');
            pad(b, svc.as_bytes(), 12, Some(12));
        }
        b.push(b' ');
        let start = b.len();
        o.login_format.push_login(b, l.login);
        let lw = o.login_format.login_width();
        b.resize(b.len().max(start + lw), b' ');
        b.extend_from_slice(b" - ");
        let ow = o.logout_format.logout_width();
        let short = o.logout_format == TimeFormat::Short;
        // In the short format the status words spill into the length column
        // ("still" + "logged in"), as upstream lays them out.
        let c = &mut self.cell;
        c.clear();
        let (logout, length): (&[u8], &[u8]) = match l.logout {
            Logout::At(t) => {
                o.logout_format.push_logout(c, t);
                let n = c.len();
                push_length(c, l.login, t);
                let (x, y) = c.split_at(n);
                (x, y)
            }
            Logout::Crash => (b"crash", b""),
            Logout::StillLoggedIn if short => (b"still", b"logged in"),
            Logout::StillRunning if short => (b"still", b"running"),
            Logout::StillLoggedIn => (b"still logged in", b""),
            Logout::StillRunning => (b"still running", b""),
            Logout::Unknown(k) => {
                c.extend_from_slice(format!("Unknown: {k}").as_bytes());
                (b"ERROR", &c[..])
            }
        };
        pad(b, logout, ow, Some(ow));
        b.push(b' ');
        if o.host == HostColumn::Last {
            pad(b, length, 12, Some(12));
            b.push(b' ');
            b.extend_from_slice(l.host.as_bytes());
        } else {
            b.extend_from_slice(length);
        }
        b.push(b'\n');
        self.out.write_all(b)
    }

    fn json_line(&mut self, raw_user: &str, l: &Line<'_>) -> io::Result<()> {
        let o = self.opts;
        let mut s = std::mem::take(&mut self.json);
        s.clear();
        if !self.first_json {
            s.push_str(",\n");
        }
        self.first_json = false;
        let field = |s: &mut String, key: &str, v: &str, last: bool| {
            s.push_str(key);
            s.push_str("\": \"");
            json_string_into(s, v);
            s.push('"');
            s.push_str(if last { "\n" } else { ",\n       \"" });
        };
        // Times and lengths are ASCII built in `cell`; they need no escaping.
        let ascii = |b: &[u8]| std::str::from_utf8(b).unwrap_or_default().to_owned();
        s.push_str("     { \"");
        field(&mut s, "user", raw_user, false);
        field(&mut s, "tty", l.tty, false);
        if o.host != HostColumn::Hidden {
            field(&mut s, "hostname", l.host, false);
        }
        if o.service {
            field(&mut s, "service", l.service.unwrap_or(""), false);
        }
        let c = &mut self.cell;
        c.clear();
        o.login_format.push_login(c, l.login);
        field(&mut s, "login", &ascii(c), false);
        match l.logout {
            Logout::At(t) => {
                c.clear();
                o.logout_format.push_logout(c, t);
                field(&mut s, "logout", &ascii(c), false);
                c.clear();
                push_length(c, l.login, t);
                let len = std::str::from_utf8(c).unwrap_or_default();
                let len = len
                    .trim_start()
                    .trim_start_matches('(')
                    .trim_end_matches(')');
                field(&mut s, "length", len, true);
            }
            other => field(&mut s, "logout", &other.phrase().unwrap_or_default(), true),
        }
        s.push_str("     }");
        let r = self.out.write_all(s.as_bytes());
        self.json = s;
        r
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
        buf: Vec::with_capacity(256),
        cell: Vec::with_capacity(64),
        json: String::with_capacity(256),
    };
    let mut printed = 0u64;
    let mut reached_min: Option<Usec> = None;
    let mut limit_hit = false;
    // Reading rows and formatting them each take about half the time of a long listing:
    // a second connection reads ahead on another thread while this one prints.
    let reader = db.reopen_read_only()?;
    let mut boots = Boots::default();
    std::thread::scope(|scope| -> Result<(), ReportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<storage::Result<Vec<Entry>>>(4);
        // Printed rows go back to the reader, which refills their buffers.
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<Entry>>();
        scope.spawn(move || {
            let mut rows = reader.entries(&filter);
            loop {
                while let Ok(used) = back_rx.try_recv() {
                    rows.recycle(used);
                }
                let Some(batch) = rows.next_batch() else {
                    return;
                };
                let failed = batch.is_err();
                // A closed channel means the printer stopped (limit reached or an error).
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        'rows: for batch in rx {
            let batch = batch?;
            for e in &batch {
                if opts.limit > 0 && printed >= opts.limit {
                    limit_hit = true;
                    break 'rows;
                }
                reached_min = Some(reached_min.map_or(e.login, |m: Usec| m.min(e.login)));
                if print_entry(db, &mut boots, &mut p, e)? {
                    printed += 1;
                }
            }
            let _ = back_tx.send(batch);
        }
        Ok(())
    })?;
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
/// Boot times, read on first use (most listings of closed sessions never need them).
#[derive(Default)]
struct Boots(Option<Vec<Usec>>);

impl Boots {
    /// The oldest boot strictly after `t`.
    fn next_after(&mut self, db: &Database, t: Usec) -> Result<Option<Usec>, ReportError> {
        if self.0.is_none() {
            self.0 = Some(db.boot_logins()?);
        }
        let boots = self.0.as_deref().unwrap_or_default();
        Ok(boots.get(boots.partition_point(|&b| b <= t)).copied())
    }
}

fn print_entry<W: Write>(
    db: &Database,
    boots: &mut Boots,
    p: &mut Printer<'_, W>,
    e: &Entry,
) -> Result<bool, ReportError> {
    let opts = p.opts;
    let is_boot = e.kind == Kind::BootTime;
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
        boots.next_after(db, e.login)?
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
        None if e.kind == Kind::UserProcess => Logout::StillLoggedIn,
        None if is_boot => Logout::StillRunning,
        None => Logout::Unknown(e.kind.as_i64()),
    };

    let json = opts.json;
    // JSON escapes on its own; the terminal gets control characters made visible.
    fn esc(json: bool, s: &str) -> std::borrow::Cow<'_, str> {
        if json {
            std::borrow::Cow::Borrowed(s)
        } else {
            for_terminal(s)
        }
    }
    let raw_host = e.host.as_deref().unwrap_or("");
    let resolved = resolve_host(raw_host, opts.resolve);
    let host = esc(json, resolved.as_deref().unwrap_or(raw_host));
    let service = opts
        .service
        .then(|| esc(json, e.service.as_deref().unwrap_or("")));
    let user = if e.user == "soft-reboot" && !opts.full_names && !json {
        std::borrow::Cow::Borrowed("s-reboot")
    } else {
        esc(json, &e.user)
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
                    login: down,
                    logout: Logout::At(up),
                };
                emit(p, "shutdown", &line)?;
            }
        }
    }

    let tty = if is_boot {
        std::borrow::Cow::Borrowed("system boot")
    } else {
        esc(json, e.tty.as_deref().unwrap_or("?"))
    };
    let line = Line {
        user: &user,
        tty: &tty,
        host: &host,
        service: service.as_deref(),
        login: e.login,
        logout: status,
    };
    emit(p, &e.user, &line)?;
    Ok(true)
}

fn emit<W: Write>(p: &mut Printer<'_, W>, raw_user: &str, line: &Line<'_>) -> io::Result<()> {
    if p.opts.json {
        p.json_line(raw_user, line)
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
