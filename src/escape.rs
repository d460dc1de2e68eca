//! Strings from the database are attacker-influenced (user, remote host, tty and service
//! come from PAM items a remote peer can choose). These helpers keep them from reaching a
//! terminal raw and keep them valid UTF-8.

use std::borrow::Cow;
use std::fmt::Write;

/// Decodes bytes stored in a TEXT column. Valid UTF-8 is kept as is; each byte of an
/// invalid sequence becomes the four characters `\xNN`, so nothing is silently replaced.
pub fn decode_lossless(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

fn is_unsafe_for_terminal(c: char) -> bool {
    // C0 controls, DEL and C1 controls (0x9b is a one-byte CSI on some terminals).
    c.is_control()
}

/// Makes a value safe to print on a terminal: control characters are shown as `\xNN`
/// (or `\u{NNNN}` for C1 controls), and a backslash that would start such a sequence is
/// doubled so the escaped form cannot be forged.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    // Fast path: printable ASCII without backslashes (nearly every value).
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
        || !s.chars().any(|c| is_unsafe_for_terminal(c) || c == '\\')
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe_for_terminal(c) {
            if (c as u32) < 0x80 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Appends `s` as the contents of a JSON string (without the quotes), per RFC 8259.
pub fn json_string_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_and_backslashes() {
        assert_eq!(for_terminal("alice"), "alice");
        assert_eq!(for_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(for_terminal("a\\x1b"), "a\\\\x1b");
        assert_eq!(for_terminal("\u{9b}31m"), "\\u{009b}31m");
        assert_eq!(for_terminal("tab\there"), "tab\\x09here");
        assert_eq!(for_terminal("héllo"), "héllo");
    }

    #[test]
    fn invalid_utf8_is_kept_visible() {
        assert_eq!(decode_lossless(b"ok"), "ok");
        assert_eq!(decode_lossless(b"a\xffb\xc3"), "a\\xffb\\xc3");
    }

    #[test]
    fn json_strings_are_valid() {
        let mut s = String::new();
        json_string_into(&mut s, "q\"b\\n\nc\u{1}\u{7f}");
        assert_eq!(s, "q\\\"b\\\\n\\nc\\u0001\\u007f");
    }
}
