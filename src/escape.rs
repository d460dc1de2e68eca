//! Strings from the database are attacker-influenced (user, remote host, tty and service
//! come from PAM items a remote peer can choose). These helpers keep them from reaching a
//! terminal raw and keep them valid UTF-8.
//!
//! What is escaped in text output is exactly what could change what the terminal shows
//! beyond the value itself: C0 and C1 controls and DEL, and the Unicode format controls that
//! reorder or hide text (bidirectional embeddings, overrides and isolates, the marks, the
//! line and paragraph separators, zero-width and tag characters). Everything else is printed
//! as itself; a backslash in particular is printed raw, as upstream and util-linux print
//! `DOMAIN\user`.

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

/// The Unicode format controls (general category Cf) and the two separators (Zl, Zp) that
/// change how the text around them is shown: bidirectional controls reorder it, the others
/// are invisible or break the line. Listed by range from the Unicode character database.
const FORMAT_CONTROLS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F),   // zero-width space, (non-)joiner, LRM, RLM
    (0x2028, 0x2029),   // line and paragraph separators
    (0x202A, 0x202E),   // LRE, RLE, PDF, LRO, RLO
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206F),   // LRI, RLI, FSI, PDI, deprecated format controls
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),   // interlinear annotation controls
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol format controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters
];

/// True for what must not reach a terminal raw: C0 controls, DEL, C1 controls (0x9b is a
/// one-byte CSI on some terminals) and the format controls above.
pub fn is_unsafe_for_terminal(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    let v = c as u32;
    v >= 0xAD
        && FORMAT_CONTROLS
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&v))
}

/// Appends the escaped form of the unsafe character `c`: `\xNN` below 0x80, else `\u{NNNN}`.
fn push_escape(out: &mut String, c: char) {
    if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:04x}}}", c as u32);
    }
}

/// Makes a value safe to print on a terminal: control and format characters are shown as
/// `\xNN` (or `\u{NNNN}` above ASCII); everything else, a backslash included, as itself.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    // Fast path: printable ASCII (nearly every value).
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_for_terminal(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The length in bytes of the unit of `s` that starts at its beginning, for truncation: a
/// stored `\xNN` (how an invalid byte is kept, see [`decode_lossless`]) is one unit, any
/// other character is one unit.
fn stored_unit_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.len() >= 4
        && b[0] == b'\\'
        && b[1] == b'x'
        && b[2].is_ascii_hexdigit()
        && b[3].is_ascii_hexdigit()
    {
        return 4;
    }
    s.chars().next().map_or(0, char::len_utf8)
}

/// [`for_terminal`] cut to at most `max` bytes of output, never inside an escape (ours, or a
/// stored `\xNN`) and never inside a character: what would not fit whole is left out.
pub fn for_terminal_cut(s: &str, max: usize) -> Cow<'_, str> {
    let escaped = for_terminal(s);
    if escaped.len() <= max {
        return escaped;
    }
    // Fast path (a host name longer than its column, on nearly every line of `last`):
    // nothing to escape and no stored `\xNN`, so every unit is one character and the cut
    // is the longest prefix that ends on a character boundary within `max`.
    if matches!(escaped, Cow::Borrowed(_)) && !s.as_bytes().contains(&b'\\') {
        let end = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        return Cow::Borrowed(&s[..end]);
    }
    cut_by_units(s, max)
}

/// [`for_terminal_cut`] unit by unit (a character, its escape, or a stored `\xNN`).
fn cut_by_units(s: &str, max: usize) -> Cow<'_, str> {
    let mut out = String::with_capacity(max);
    let mut rest = s;
    let mut unit = String::with_capacity(12);
    while !rest.is_empty() {
        let n = stored_unit_len(rest);
        unit.clear();
        let c = rest.chars().next().unwrap_or_default();
        if n == c.len_utf8() && is_unsafe_for_terminal(c) {
            push_escape(&mut unit, c);
        } else {
            unit.push_str(&rest[..n]);
        }
        if out.len() + unit.len() > max {
            break;
        }
        out.push_str(&unit);
        rest = &rest[n..];
    }
    Cow::Owned(out)
}

/// Appends `s` as the contents of a JSON string (without the quotes), per RFC 8259. What
/// [`is_unsafe_for_terminal`] names is written as `\\uNNNN` too, so that a JSON viewer on a
/// terminal shows it escaped.
pub fn json_string_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_for_terminal(c) => {
                // Outside the BMP as a surrogate pair, as RFC 8259 spells it.
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_keeps_backslashes() {
        assert_eq!(for_terminal("alice"), "alice");
        assert_eq!(for_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        // Upstream and util-linux print an Active Directory name as it is.
        assert_eq!(for_terminal("DOMAIN\\user"), "DOMAIN\\user");
        assert_eq!(for_terminal("a\\x1b"), "a\\x1b");
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

    #[test]
    fn bidi_and_invisible_format_controls_are_escaped() {
        for (c, shown) in [
            ('\u{202a}', "\\u{202a}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200e}', "\\u{200e}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{061c}', "\\u{061c}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{e0041}', "\\u{e0041}"),
        ] {
            let s = format!("ev{c}il");
            assert_eq!(for_terminal(&s), format!("ev{shown}il"), "{:04x}", c as u32);
            let mut j = String::new();
            json_string_into(&mut j, &s);
            let back: String = serde_json::from_str(&format!("\"{j}\"")).unwrap();
            assert_eq!(back, s);
            assert!(j.is_ascii(), "{j}");
        }
        // Letters of right-to-left scripts are text, not controls.
        assert_eq!(for_terminal("שלום"), "שלום");
    }

    /// The fast path of a cut (nothing to escape, no stored `\xNN`) cuts where the walk
    /// unit by unit does.
    #[test]
    fn a_plain_cut_is_the_walks_cut() {
        for s in [
            "ws0382.corp.example.com",
            "héllo-wörld.example.org",
            "日本語のホスト名.example",
            "x\u{1f600}y\u{1f600}z\u{1f600}",
            "",
            "short",
        ] {
            for max in 0..=s.len() + 2 {
                assert_eq!(
                    for_terminal_cut(s, max),
                    cut_by_units(s, max),
                    "{s:?} {max}"
                );
            }
        }
    }

    #[test]
    fn a_cut_never_splits_an_escape_or_a_character() {
        // 8 bytes: "ab" + the 8-byte escape of U+202E does not fit, so it is left out whole.
        assert_eq!(for_terminal_cut("ab\u{202e}cd", 8), "ab");
        assert_eq!(for_terminal_cut("ab\u{202e}cd", 10), "ab\\u{202e}");
        assert_eq!(for_terminal_cut("abcdefg\x1b[2J", 8), "abcdefg");
        assert_eq!(for_terminal_cut("abcd\x1bxyz", 8), "abcd\\x1b");
        // A stored invalid byte (\xNN) is one unit too.
        assert_eq!(for_terminal_cut("abcdef\\xffgh", 8), "abcdef");
        assert_eq!(for_terminal_cut("ééééé", 8), "éééé");
        assert_eq!(for_terminal_cut("DOMAIN\\user", 8), "DOMAIN\\u");
        for n in 0..20 {
            let cut = for_terminal_cut("a\u{1}b\u{202e}c\u{9b}d\\xffe", n);
            assert!(cut.len() <= n);
            assert!(for_terminal("a\u{1}b\u{202e}c\u{9b}d\\xffe").starts_with(&*cut));
            assert!(
                !cut.ends_with('\\') && !cut.contains("\\u{")
                    || cut.matches("\\u{").count() == cut.matches('}').count()
            );
        }
    }
}
