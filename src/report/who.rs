//! `wtmpdb who` and `wtmpdb users`: who is logged in now.
//!
//! A session is logged in now when its row belongs to the running boot (its Login is at or
//! after the boot began), has no logout, and its process is still the one recorded at login
//! (same PID, same start time in `/proc`, see [`crate::process`]). A row without a recorded
//! process (written by upstream, Teleport or an older version) cannot be checked: it is shown
//! and marked unverified. Sessions of earlier boots are never logged in now, whatever their
//! rows say. Where logind runs, its sessions are merged in (see [`super::logind`]): a row and
//! a logind session with the same leader process are one session, and each line says where
//! it came from.
//!
//! The text layout is coreutils `who`'s: `NAME LINE TIME COMMENT`, with `-u` adding IDLE and
//! PID, `-H` a heading and `-q` the names and a count; a source tag ends each line.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::pad_text;
use super::logind::{self, Logind, LogindSession};
use super::{ReportError, RowSource};
use crate::escape::{for_terminal, json_string_into};
use crate::process::{self, Liveness};
use crate::time::{self, USEC_PER_SEC, Usec};

/// Where a line of `who` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A wtmpdb row whose recorded process is alive.
    Wtmpdb,
    /// A wtmpdb row without a recorded process, or whose process `/proc` cannot show: not
    /// checked.
    Unverified,
    /// A wtmpdb row that logind also knows (same leader process, or same user, tty and start).
    Both,
    /// A logind session with no row (e.g. a login through a stack without pam_wtmpdb).
    Logind,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Wtmpdb => "wtmpdb",
            Source::Unverified => "wtmpdb, unverified",
            Source::Both => "wtmpdb+logind",
            Source::Logind => "logind",
        }
    }

    fn verified(self) -> bool {
        self != Source::Unverified
    }
}

/// One session logged in now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Present {
    pub user: String,
    /// Without `/dev/`; empty when the session has none.
    pub tty: String,
    pub host: Option<String>,
    pub service: Option<String>,
    pub login: Usec,
    /// The wtmpdb row, if any.
    pub id: Option<i64>,
    pub pid: Option<i32>,
    /// The logind session, if any.
    pub logind_id: Option<String>,
    pub source: Source,
}

/// How the current boot and the liveness of processes are found; the defaults are the
/// running system's.
#[derive(Clone, Debug)]
pub struct System {
    /// When the running boot began.
    pub boot: Usec,
    pub now: Usec,
    /// The proc file system.
    pub proc: PathBuf,
    /// logind's session directory; None: logind is not asked.
    pub logind: Option<PathBuf>,
    /// Where terminals are (for `-u`'s idle time).
    pub dev: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            boot: time::boot_time(),
            now: time::now(),
            proc: PathBuf::from("/proc"),
            logind: logind::systemd_booted().then(|| PathBuf::from(logind::SESSIONS_DIR)),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// The computed boot time moves when the clock is stepped; the boot row written at boot
/// is taken instead when it lies this close.
const BOOT_ROW_SLACK: Usec = 600 * USEC_PER_SEC;

/// The oldest login a report of who is logged in on `sys` looks at: the rows before it,
/// boot rows included, play no part in it (a boot row further from the running boot's
/// computed start than the slack is not taken for it), so rows read through the daemon
/// are needed only from here on.
pub fn oldest_row_needed(sys: &System) -> Usec {
    sys.boot.saturating_sub(BOOT_ROW_SLACK)
}

/// Where the running boot began: the kernel's boot time, or the boot row recorded for it
/// when there is one close by (a clock step since boot moves the computed time).
fn boot_start(src: &dyn RowSource, sys: &System) -> Result<Usec, ReportError> {
    let computed = sys.boot;
    Ok(match src.boot_time()? {
        Some(b) if b.abs_diff(computed) <= BOOT_ROW_SLACK.unsigned_abs() => b.min(computed),
        _ => computed,
    })
}

/// Whether a logind session and a row are the same session: the same leader process, or
/// (when either process is unknown) the same user and tty beginning within a few seconds.
fn same_session(l: &LogindSession, p: &Present) -> bool {
    if l.user != p.user {
        return false;
    }
    match (l.leader, p.pid) {
        (Some(a), Some(b)) => a == b,
        _ => {
            let close = l
                .realtime
                .is_some_and(|t| t.abs_diff(p.login) <= 5 * USEC_PER_SEC as u64);
            close && (l.tty == p.tty || l.tty.is_empty() || p.tty.is_empty())
        }
    }
}

/// The sessions logged in now, oldest first.
pub fn present(src: &dyn RowSource, sys: &System) -> Result<(Vec<Present>, Logind), ReportError> {
    let since = boot_start(src, sys)?;
    let mut out = Vec::new();
    for row in src.open_since(since)? {
        let e = row.entry;
        let source = match &row.process {
            None => Source::Unverified,
            Some(p) => match process::liveness(&sys.proc, p) {
                Liveness::Alive => Source::Wtmpdb,
                Liveness::Gone => continue,
                Liveness::Unknown => Source::Unverified,
            },
        };
        out.push(Present {
            user: e.user,
            tty: e.tty.unwrap_or_default(),
            host: e.host.filter(|h| !h.is_empty()),
            service: e.service,
            login: e.login,
            id: Some(e.id),
            pid: row.process.map(|p| p.pid),
            logind_id: None,
            source,
        });
    }
    let logind = match &sys.logind {
        Some(dir) => logind::sessions(dir),
        None => Logind::Unavailable,
    };
    if let Logind::Sessions(sessions) = &logind {
        for l in sessions {
            if let Some(p) = out
                .iter_mut()
                .find(|p| p.logind_id.is_none() && same_session(l, p))
            {
                p.logind_id = Some(l.id.clone());
                p.source = Source::Both;
                if p.pid.is_none() {
                    p.pid = l.leader;
                }
                continue;
            }
            out.push(Present {
                user: l.user.clone(),
                tty: l.tty.clone(),
                host: l.remote_host.clone().filter(|h| !h.is_empty()),
                service: l.service.clone(),
                login: l.realtime.unwrap_or(0),
                id: None,
                pid: l.leader,
                logind_id: Some(l.id.clone()),
                source: Source::Logind,
            });
        }
        out.sort_by_key(|p| (p.login, p.id));
    }
    Ok((out, logind))
}

/// coreutils' time column: `%Y-%m-%d %H:%M` except in the C or POSIX locale, where it is
/// `%b %e %H:%M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Iso,
    Traditional,
}

impl Clock {
    /// As coreutils decides it: from LC_ALL, else LC_TIME, else LANG.
    pub fn from_env() -> Clock {
        let locale = ["LC_ALL", "LC_TIME", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.is_empty() || locale == "C" || locale == "POSIX" {
            Clock::Traditional
        } else {
            Clock::Iso
        }
    }

    fn push(self, out: &mut Vec<u8>, t: Usec) {
        let width = match self {
            Clock::Iso => 16,
            Clock::Traditional => 12,
        };
        let start = out.len();
        if let Some(lt) = time::local(t) {
            match self {
                Clock::Iso => time::push_date_time(out, &lt),
                Clock::Traditional => time::push_month_day_time(out, &lt),
            }
        }
        out.resize(out.len().max(start + width), b' ');
    }
}

/// What `who` was asked for.
#[derive(Clone, Debug)]
pub struct WhoOptions {
    pub heading: bool,
    /// `-q`: names and a count.
    pub count: bool,
    /// `-u`: idle time and PID.
    pub idle: bool,
    pub json: bool,
    pub clock: Clock,
}

/// `-u`'s idle column for a terminal: `  .  ` if used in the last minute, `HH:MM` within a
/// day, ` old ` beyond, `  ?` when there is no terminal to ask (as coreutils prints them).
fn idle(sys: &System, tty: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    if tty.is_empty() || tty.contains("..") {
        return "  ?".into();
    }
    let Ok(meta) = std::fs::metadata(sys.dev.join(tty)) else {
        return "  ?".into();
    };
    if !std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()) {
        return "  ?".into();
    }
    let used = meta.atime().saturating_mul(USEC_PER_SEC);
    let secs = (sys.now - used) / USEC_PER_SEC;
    if used <= sys.boot || used > sys.now || secs >= 86_400 {
        " old ".into()
    } else if secs < 60 {
        "  .  ".into()
    } else {
        format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
    }
}

/// One line in coreutils `print_line`'s layout: `%-8s` name, ` %-12s` line, ` %-W` time,
/// ` %-6s` idle and ` %10s` PID with `-u`, ` %-8s` comment, trailing blanks removed; then
/// the source tag.
#[allow(clippy::too_many_arguments)]
fn line(
    b: &mut Vec<u8>,
    name: &str,
    tty: &str,
    time: &[u8],
    idle: Option<(&str, &str)>,
    comment: &str,
    tag: &str,
) {
    pad_text(b, name, 8, None);
    b.push(b' ');
    pad_text(b, tty, 12, None);
    b.push(b' ');
    b.extend_from_slice(time);
    if let Some((idle, pid)) = idle {
        b.extend_from_slice(format!(" {idle:<6} {pid:>10}").as_bytes());
    }
    b.push(b' ');
    pad_text(b, comment, 8, None);
    while b.last() == Some(&b' ') {
        b.pop();
    }
    if !tag.is_empty() {
        b.push(b' ');
        b.extend_from_slice(tag.as_bytes());
    }
    b.push(b'\n');
}

/// Prints `who` for the rows of `src` on the running system.
pub fn who<W: Write>(
    src: &dyn RowSource,
    opts: &WhoOptions,
    out: &mut W,
) -> Result<usize, ReportError> {
    who_on(src, &System::default(), opts, out)
}

/// [`who`] with the system described by `sys` (tests give their own /proc, logind and
/// boot).
pub fn who_on<W: Write>(
    src: &dyn RowSource,
    sys: &System,
    opts: &WhoOptions,
    out: &mut W,
) -> Result<usize, ReportError> {
    if opts.json {
        // The document is opened before the read, and closed whatever the read did.
        out.write_all(b"{\n   \"sessions\": [\n")?;
        let read = present(src, sys);
        let (list, logind) = match &read {
            Ok((l, g)) => (&l[..], Some(g)),
            Err(_) => (&[][..], None),
        };
        for (i, p) in list.iter().enumerate() {
            let mut s = String::new();
            if i > 0 {
                s.push_str(",\n");
            }
            json_session(&mut s, sys, p, opts.idle);
            out.write_all(s.as_bytes())?;
        }
        if !list.is_empty() {
            out.write_all(b"\n")?;
        }
        let logind = match logind {
            Some(Logind::Sessions(_)) => "\"available\"",
            Some(Logind::Unavailable) => "\"unavailable\"",
            None => "null",
        };
        write!(out, "   ],\n   \"logind\": {logind}\n}}\n")?;
        out.flush()?;
        return read.map(|(l, _)| l.len());
    }
    let (list, _) = present(src, sys)?;
    if opts.count {
        let names: Vec<String> = list
            .iter()
            .map(|p| for_terminal(&p.user).into_owned())
            .collect();
        writeln!(out, "{}", names.join(" "))?;
        writeln!(out, "# users={}", list.len())?;
        out.flush()?;
        return Ok(list.len());
    }
    let mut b = Vec::with_capacity(4096);
    if opts.heading {
        let mut t = b"TIME".to_vec();
        let w = if opts.clock == Clock::Iso { 16 } else { 12 };
        t.resize(w, b' ');
        line(
            &mut b,
            "NAME",
            "LINE",
            &t,
            opts.idle.then_some(("IDLE", "PID")),
            "COMMENT",
            "SOURCE",
        );
    }
    for p in &list {
        let mut t = Vec::with_capacity(16);
        opts.clock.push(&mut t, p.login);
        let idle_s = if opts.idle {
            idle(sys, &p.tty)
        } else {
            String::new()
        };
        let pid = p.pid.map_or_else(|| "?".to_string(), |v| v.to_string());
        let comment = p
            .host
            .as_ref()
            .map(|h| format!("({h})"))
            .unwrap_or_default();
        let tag = format!("[{}]", p.source.name());
        line(
            &mut b,
            &p.user,
            if p.tty.is_empty() { "?" } else { &p.tty },
            &t,
            opts.idle.then_some((idle_s.as_str(), pid.as_str())),
            &comment,
            &tag,
        );
    }
    out.write_all(&b)?;
    out.flush()?;
    Ok(list.len())
}

fn json_session(s: &mut String, sys: &System, p: &Present, with_idle: bool) {
    let text = |s: &mut String, key: &str, v: &str| {
        s.push_str(&format!("\"{key}\": \""));
        json_string_into(s, v);
        s.push_str("\", ");
    };
    s.push_str("     { ");
    text(s, "user", &p.user);
    text(s, "tty", &p.tty);
    text(s, "hostname", p.host.as_deref().unwrap_or(""));
    text(s, "service", p.service.as_deref().unwrap_or(""));
    text(s, "login", &time::format_iso(p.login));
    s.push_str(&format!("\"login_usec\": {}, ", p.login));
    match p.pid {
        Some(pid) => s.push_str(&format!("\"pid\": {pid}, ")),
        None => s.push_str("\"pid\": null, "),
    }
    match p.id {
        Some(id) => s.push_str(&format!("\"id\": {id}, ")),
        None => s.push_str("\"id\": null, "),
    }
    match &p.logind_id {
        Some(l) => text(s, "logind_session", l),
        None => s.push_str("\"logind_session\": null, "),
    }
    if with_idle {
        text(s, "idle", idle(sys, &p.tty).trim());
    }
    s.push_str(&format!("\"verified\": {}, ", p.source.verified()));
    let src = match p.source {
        Source::Wtmpdb | Source::Unverified => "wtmpdb",
        Source::Both => "wtmpdb+logind",
        Source::Logind => "logind",
    };
    s.push_str(&format!("\"source\": \"{src}\" }}"));
}

/// `wtmpdb users`: the names of the sessions logged in now, sorted, on one line (nothing
/// when nobody is), as coreutils `users` prints them.
pub fn users<W: Write>(
    src: &dyn RowSource,
    sys: &System,
    out: &mut W,
) -> Result<usize, ReportError> {
    let (list, _) = present(src, sys)?;
    let mut names: Vec<String> = list
        .iter()
        .map(|p| for_terminal(&p.user).into_owned())
        .collect();
    names.sort();
    if !names.is_empty() {
        writeln!(out, "{}", names.join(" "))?;
    }
    out.flush()?;
    Ok(names.len())
}

/// A path for tests and callers that want the system's defaults but another logind.
pub fn system_with_logind(dir: Option<&Path>) -> System {
    System {
        logind: dir.map(Path::to_path_buf),
        ..System::default()
    }
}
