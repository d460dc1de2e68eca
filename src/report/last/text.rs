//! `last`'s text layout, upstream's columns byte for byte:
//! `%-8.8s %-12.12s %-16.16s %s - %s %s` with the variations of `-a`, `-R`, `-S`, `-w` and
//! the time formats. Strings arrive raw; control and format characters are made visible here
//! (a cut column never splits an escape), since the terminal is where they could do harm.

use std::io::{self, Write};

use super::{HostColumn, LastOptions, Line, Printer};
use crate::escape::for_terminal;
use crate::history::Ending;
use crate::report::format::{TimeFormat, pad, pad_text, push_length};

pub(super) struct Text<'w, W: Write> {
    out: &'w mut W,
    opts: &'w LastOptions,
    /// One line is assembled here, then written at once.
    buf: Vec<u8>,
    /// Scratch space for a field that needs padding.
    cell: Vec<u8>,
}

impl<'w, W: Write> Text<'w, W> {
    pub(super) fn new(out: &'w mut W, opts: &'w LastOptions) -> Self {
        Text {
            out,
            opts,
            buf: Vec::with_capacity(256),
            cell: Vec::with_capacity(64),
        }
    }
}

impl<W: Write> Printer for Text<'_, W> {
    fn begin(&mut self, empty: bool) -> io::Result<bool> {
        if empty {
            writeln!(
                self.out,
                "{} has no entries",
                for_terminal(&self.opts.label)
            )?;
        }
        Ok(!empty)
    }

    fn line(&mut self, l: &Line<'_>) -> io::Result<()> {
        let o = self.opts;
        let w = o.full_names;
        let user = if l.user == "soft-reboot" && !w {
            "s-reboot"
        } else {
            l.user
        };
        let b = &mut self.buf;
        b.clear();
        pad_text(b, user, 8, (!w).then_some(8));
        b.push(b' ');
        pad_text(b, l.tty, 12, Some(12));
        if o.host == HostColumn::Normal {
            b.push(b' ');
            pad_text(b, l.host, 16, (!w).then_some(16));
        }
        if let Some(svc) = l.service {
            b.push(b' ');
            pad_text(b, svc, 12, Some(12));
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
        let (logout, length): (&[u8], &[u8]) = match l.ending {
            Ending::At(t) => {
                o.logout_format.push_logout(c, t);
                let n = c.len();
                push_length(c, l.login, t);
                let (x, y) = c.split_at(n);
                (x, y)
            }
            Ending::Crash => (b"crash", b""),
            Ending::StillLoggedIn if short => (b"still", b"logged in"),
            Ending::StillRunning if short => (b"still", b"running"),
            Ending::StillLoggedIn => (b"still logged in", b""),
            Ending::StillRunning => (b"still running", b""),
            Ending::Unknown(k) => {
                c.extend_from_slice(format!("Unknown: {k}").as_bytes());
                (b"ERROR", &c[..])
            }
        };
        pad(b, logout, ow, Some(ow));
        b.push(b' ');
        if o.host == HostColumn::Last {
            pad(b, length, 12, Some(12));
            b.push(b' ');
            b.extend_from_slice(for_terminal(l.host).as_bytes());
        } else {
            b.extend_from_slice(length);
        }
        b.push(b'\n');
        self.out.write_all(b)
    }

    fn abort(&mut self, _printed: u64) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, _printed: u64, footer: Option<&str>) -> io::Result<()> {
        if let Some(f) = footer {
            write!(
                self.out,
                "\n{} begins {}\n",
                for_terminal(&self.opts.label),
                f
            )?;
        }
        self.out.flush()
    }
}
