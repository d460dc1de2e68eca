//! `wtmpdb lastlog`: each user's newest login, in lastlog2's layout
//! (`Username Port From Latest`).
//!
//! In the file, the newest login of a user is one descent of the User index (`User = ? AND
//! Type = 3 ORDER BY Login DESC LIMIT 1`), and the users are found by a loose scan of the
//! same index (the next name after the previous one): the work grows with the number of
//! users, not of rows. Rows without that index (an upstream file read-only, the daemon's
//! rows in memory) are read in one pass. With `-a` the users are the accounts of the passwd database, and those
//! without a login get lastlog's "**Never logged in**" line. `--lastlog2 FILE` reads
//! util-linux's lastlog2 database instead, for comparing or migrating.

use std::io::Write;

use super::format::pad_text;
use super::{ReportError, RowSource};
use crate::escape::json_string_into;
use crate::storage::{self, Lastlog2, Latest};
use crate::time::{self, USEC_PER_SEC, Usec};

/// Where the newest logins come from.
pub enum Records<'a> {
    /// wtmpdb rows: the file, or the daemon's rows.
    Wtmpdb(&'a dyn RowSource),
    Lastlog2(&'a Lastlog2),
    /// wtmpdb rows without a User index (a file of upstream's opened read-only, or rows in
    /// memory): every user's newest login read in one pass up front, instead of a pass per
    /// user.
    Scanned(std::collections::BTreeMap<String, Latest>),
}

impl<'a> Records<'a> {
    /// The records of `src` for every user: through its User index, or one pass when it has
    /// none.
    pub fn of_rows(src: &'a dyn RowSource) -> Result<Records<'a>, ReportError> {
        if src.has_user_index()? {
            return Ok(Records::Wtmpdb(src));
        }
        let mut newest = std::collections::BTreeMap::new();
        src.newest_sessions(&mut |e| {
            newest.insert(e.user.clone(), latest_of(e));
            Ok(())
        })?;
        Ok(Records::Scanned(newest))
    }
}

fn latest_of(e: storage::Entry) -> Latest {
    Latest {
        user: e.user,
        tty: e.tty,
        host: e.host,
        service: e.service,
        login: Some(e.login),
    }
}

/// What `lastlog` was asked for.
#[derive(Clone, Debug, Default)]
pub struct LastlogOptions {
    /// `-u USER`: only this user.
    pub user: Option<String>,
    /// `-b DAYS`: only logins older than DAYS days (and never logged in).
    pub before_days: Option<u32>,
    /// `-t DAYS`: only logins within the last DAYS days.
    pub time_days: Option<u32>,
    /// `-a`: every account of the passwd database, with "Never logged in" lines.
    pub all_accounts: bool,
    pub json: bool,
}

const NEVER: &str = "**Never logged in**";

impl Records<'_> {
    fn of(&self, user: &str) -> Result<Option<Latest>, ReportError> {
        match self {
            Records::Wtmpdb(src) => Ok(src.newest_session_of(user)?.map(latest_of)),
            Records::Lastlog2(l) => Ok(l.user(user)?),
            Records::Scanned(m) => Ok(m.get(user).cloned()),
        }
    }
}

/// Calls `f` with each user's newest login, in name order (passwd order with `-a`).
fn each(
    rec: &Records<'_>,
    opts: &LastlogOptions,
    accounts: &dyn Fn() -> Vec<String>,
    f: &mut dyn FnMut(&Latest) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let never = |user: &str| Latest {
        user: user.to_string(),
        ..Latest::default()
    };
    if let Some(u) = &opts.user {
        let l = rec.of(u)?.unwrap_or_else(|| never(u));
        return f(&l);
    }
    if opts.all_accounts {
        for name in accounts() {
            let l = rec.of(&name)?.unwrap_or_else(|| never(&name));
            f(&l)?;
        }
        return Ok(());
    }
    match rec {
        Records::Wtmpdb(src) => src.newest_sessions(&mut |e| f(&latest_of(e))),
        Records::Lastlog2(l) => {
            for e in l.all()? {
                f(&e)?;
            }
            Ok(())
        }
        Records::Scanned(m) => {
            for e in m.values() {
                f(e)?;
            }
            Ok(())
        }
    }
}

fn keep(opts: &LastlogOptions, now: Usec, l: &Latest) -> bool {
    let days = |d: u32| now - i64::from(d) * 86_400 * USEC_PER_SEC;
    if let Some(t) = opts.time_days {
        match l.login {
            Some(login) if login >= days(t) => {}
            _ => return false,
        }
    }
    if let (Some(b), Some(login)) = (opts.before_days, l.login) {
        if login >= days(b) {
            return false;
        }
    }
    true
}

fn text_line(b: &mut Vec<u8>, l: &Latest) {
    b.clear();
    pad_text(b, &l.user, 16, None);
    b.push(b' ');
    pad_text(b, l.tty.as_deref().unwrap_or(""), 8, Some(8));
    b.push(b' ');
    pad_text(b, l.host.as_deref().unwrap_or(""), 16, Some(16));
    b.push(b' ');
    match l.login.and_then(time::local) {
        Some(lt) if l.login.is_some() => time::push_lastlog(b, &lt),
        _ => b.extend_from_slice(NEVER.as_bytes()),
    }
    b.push(b'\n');
}

fn json_entry(s: &mut String, l: &Latest) {
    let text = |s: &mut String, key: &str, v: &str| {
        s.push_str(&format!("\"{key}\": \""));
        json_string_into(s, v);
        s.push_str("\", ");
    };
    s.push_str("     { ");
    text(s, "user", &l.user);
    text(s, "tty", l.tty.as_deref().unwrap_or(""));
    text(s, "hostname", l.host.as_deref().unwrap_or(""));
    text(s, "service", l.service.as_deref().unwrap_or(""));
    match l.login {
        Some(t) => {
            text(s, "latest", &time::format_iso(t));
            s.push_str(&format!("\"latest_usec\": {t} }}"));
        }
        None => s.push_str("\"latest\": null, \"latest_usec\": null }"),
    }
}

/// Prints `lastlog` and returns how many lines it printed. The JSON document is closed
/// also when a read fails part-way (the error is then returned).
pub fn lastlog<W: Write>(
    rec: &Records<'_>,
    opts: &LastlogOptions,
    out: &mut W,
) -> Result<u64, ReportError> {
    lastlog_with(rec, opts, &crate::accounts::names, time::now(), out)
}

/// [`lastlog`] with the accounts and the time given (for tests).
pub fn lastlog_with<W: Write>(
    rec: &Records<'_>,
    opts: &LastlogOptions,
    accounts: &dyn Fn() -> Vec<String>,
    now: Usec,
    out: &mut W,
) -> Result<u64, ReportError> {
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(128);
    if opts.json {
        out.write_all(b"{\n   \"lastlog\": [\n")?;
        let mut s = String::new();
        let read = each(rec, opts, accounts, &mut |l| {
            if !keep(opts, now, l) {
                return Ok(());
            }
            s.clear();
            if n > 0 {
                s.push_str(",\n");
            }
            json_entry(&mut s, l);
            out.write_all(s.as_bytes())?;
            n += 1;
            Ok(())
        });
        if n > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(b"   ]\n}\n")?;
        out.flush()?;
        return read.map(|()| n);
    }
    let mut header = Vec::new();
    pad_text(&mut header, "Username", 16, None);
    header.extend_from_slice(b" Port     From             Latest\n");
    let mut headed = false;
    let read = each(rec, opts, accounts, &mut |l| {
        if !keep(opts, now, l) {
            return Ok(());
        }
        if !headed {
            out.write_all(&header)?;
            headed = true;
        }
        text_line(&mut buf, l);
        out.write_all(&buf)?;
        n += 1;
        Ok(())
    });
    out.flush()?;
    read.map(|()| n)
}
