//! Pieces of `last`'s layout shared by its printers: time formats, session lengths, and
//! printf-style padding.

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
    pub(super) fn login_width(self) -> usize {
        match self {
            TimeFormat::NoTime => 0,
            TimeFormat::Short => 16,
            TimeFormat::Full => 24,
            TimeFormat::Iso => 25,
        }
    }

    pub(super) fn logout_width(self) -> usize {
        match self {
            TimeFormat::Short => 5,
            other => other.login_width(),
        }
    }

    /// Appends a login time (or the footer time) in this format.
    pub(super) fn push_login(self, out: &mut Vec<u8>, t: Usec) {
        let Some(lt) = time::local(t) else { return };
        match self {
            TimeFormat::NoTime => {}
            TimeFormat::Short => time::push_short(out, &lt),
            TimeFormat::Full => time::push_full(out, &lt),
            TimeFormat::Iso => time::push_iso(out, &lt),
        }
    }

    /// Appends a logout time: short format shows only the hour and minute.
    pub(super) fn push_logout(self, out: &mut Vec<u8>, t: Usec) {
        match self {
            TimeFormat::Short => {
                if let Some(lt) = time::local(t) {
                    time::push_hour_minute(out, &lt);
                }
            }
            other => other.push_login(out, t),
        }
    }

    pub(super) fn login(self, t: Usec) -> String {
        let mut v = Vec::with_capacity(32);
        self.push_login(&mut v, t);
        String::from_utf8(v).unwrap_or_default()
    }
}

/// `(1+02:30)`, ` (02:34)`, ` (00:05)`. A logout before the login (clock stepped back)
/// counts as zero instead of upstream's underflow.
pub fn format_length(login: Usec, logout: Usec) -> String {
    let mut v = Vec::with_capacity(16);
    push_length(&mut v, login, logout);
    String::from_utf8(v).unwrap_or_default()
}

pub(super) fn push_length(out: &mut Vec<u8>, login: Usec, logout: Usec) {
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

/// Appends `s` left-aligned in `width` columns, cut to `precision` bytes (never inside a
/// UTF-8 character), as printf's `%-W.Ps` does with bytes.
pub(crate) fn pad(out: &mut Vec<u8>, s: &[u8], width: usize, precision: Option<usize>) {
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

/// Appends the raw value `s` escaped for a terminal, left-aligned in `width` columns and cut
/// to `precision` bytes as [`pad`] does, but never inside an escape (see
/// [`crate::escape::for_terminal_cut`]).
pub(crate) fn pad_text(out: &mut Vec<u8>, s: &str, width: usize, precision: Option<usize>) {
    let shown = match precision {
        Some(p) => crate::escape::for_terminal_cut(s, p),
        None => crate::escape::for_terminal(s),
    };
    pad(out, shown.as_bytes(), width, None);
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
