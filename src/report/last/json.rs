//! `last -j`: upstream's JSON layout (same keys, same order, same indentation), but always
//! valid: strings escaped, no padding inside values, a closed document for an empty
//! database.

use std::io::{self, Write};

use super::{HostColumn, LastOptions, Line, Printer};
use crate::escape::json_string_into;
use crate::history::Ending;
use crate::report::format::push_length;

pub(super) struct Json<'w, W: Write> {
    out: &'w mut W,
    opts: &'w LastOptions,
    first: bool,
    empty: bool,
    /// One entry is assembled here.
    json: String,
    /// Times and lengths, ASCII.
    cell: Vec<u8>,
}

impl<'w, W: Write> Json<'w, W> {
    pub(super) fn new(out: &'w mut W, opts: &'w LastOptions) -> Self {
        Json {
            out,
            opts,
            first: true,
            empty: false,
            json: String::with_capacity(256),
            cell: Vec::with_capacity(64),
        }
    }
}

/// The one-phrase `logout` value of a row without a logout time.
fn phrase(e: Ending) -> String {
    match e {
        Ending::At(_) => String::new(),
        Ending::Crash => "crash".into(),
        Ending::StillLoggedIn => "still logged in".into(),
        Ending::StillRunning => "still running".into(),
        Ending::Unknown(k) => format!("ERROR Unknown: {k}"),
    }
}

impl<W: Write> Printer for Json<'_, W> {
    fn begin(&mut self, empty: bool) -> io::Result<bool> {
        self.empty = empty;
        self.out.write_all(b"{\n   \"entries\": [\n")?;
        Ok(true)
    }

    fn line(&mut self, l: &Line<'_>) -> io::Result<()> {
        let o = self.opts;
        let mut s = std::mem::take(&mut self.json);
        s.clear();
        if !self.first {
            s.push_str(",\n");
        }
        self.first = false;
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
        field(&mut s, "user", l.user, false);
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
        match l.ending {
            Ending::At(t) => {
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
            other => field(&mut s, "logout", &phrase(other), true),
        }
        s.push_str("     }");
        let r = self.out.write_all(s.as_bytes());
        self.json = s;
        r
    }

    fn abort(&mut self, printed: u64) -> io::Result<()> {
        if printed > 0 {
            self.out.write_all(b"\n")?;
        }
        self.out.write_all(b"   ]\n}\n")?;
        self.out.flush()
    }

    fn end(&mut self, printed: u64, footer: Option<&str>) -> io::Result<()> {
        if printed > 0 {
            self.out.write_all(b"\n")?;
        }
        match footer {
            Some(f) if !self.empty => {
                let mut s = String::from("   ],\n   \"start\": \"");
                json_string_into(&mut s, f);
                s.push_str("\"\n}\n");
                self.out.write_all(s.as_bytes())?;
            }
            _ => self.out.write_all(b"   ]\n}\n")?,
        }
        self.out.flush()
    }
}
