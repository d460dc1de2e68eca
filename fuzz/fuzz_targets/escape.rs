//! What reaches a terminal or a JSON reader (wtmpdb::escape) on arbitrary bytes, checked
//! against each function's documented contract rather than for panics alone:
//!
//! - `decode_lossless`: valid UTF-8 comes back unchanged (and borrowed); otherwise each
//!   invalid byte becomes `\xNN`, so, for input without a backslash of its own, reading each
//!   `\xNN` back as its byte gives the input again.
//! - `for_terminal`: the output holds no character `is_unsafe_for_terminal` names, and is the
//!   input with exactly those characters replaced by `\xNN` (below 0x80) or `\u{NNNN}`.
//! - `for_terminal_cut(s, max)`: at most `max` bytes, a prefix of `for_terminal(s)` made of
//!   whole units (a character, its escape, or a stored `\xNN`), the longest such prefix.
//! - `json_string_into`: appends to what is there, the result between quotes is a JSON
//!   string that parses back to the input, and it holds no character unsafe for a terminal.
//!
//! The first two bytes (little-endian) choose the `max` of the cut (all but the lowest bit)
//! and how the rest is read (the lowest bit): as the value's bytes, or as its code points.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use wtmpdb::escape::{
    decode_lossless, for_terminal, for_terminal_cut, is_unsafe_for_terminal, json_string_into,
};

/// The escape of an unsafe character, as the module documents it.
fn escape_of(c: char) -> String {
    if (c as u32) < 0x80 {
        format!("\\x{:02x}", c as u32)
    } else {
        format!("\\u{{{:04x}}}", c as u32)
    }
}

/// `s` as `for_terminal` shows it, unit by unit: a stored `\xNN` (two hex digits) is one
/// unit, any other character another, each escaped when unsafe.
fn units(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let b = rest.as_bytes();
        if b.len() >= 4
            && b.starts_with(b"\\x")
            && b[2].is_ascii_hexdigit()
            && b[3].is_ascii_hexdigit()
        {
            out.push(rest[..4].to_string());
            rest = &rest[4..];
        } else {
            out.push(if is_unsafe_for_terminal(c) {
                escape_of(c)
            } else {
                c.to_string()
            });
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Reads each `\xNN` of a decoded value back as its byte.
fn undo_lossless(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            assert_eq!(b[i + 1], b'x', "a lone backslash in {s:?}");
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, rest) = data.split_at(2);
    let head = u16::from_le_bytes([head[0], head[1]]);
    let max = usize::from(head >> 1);
    // In the second mode the rest is code points, three bytes each, little-endian: a single
    // character the functions mishandle is then one comparison away, not a UTF-8 encoding.
    let chars: String;
    let bytes = if head & 1 == 1 {
        chars = rest
            .chunks_exact(3)
            .filter_map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], 0])))
            .collect();
        chars.as_bytes()
    } else {
        rest
    };

    // decode_lossless
    let s = decode_lossless(bytes);
    match std::str::from_utf8(bytes) {
        Ok(valid) => {
            assert!(matches!(s, Cow::Borrowed(_)));
            assert_eq!(s, valid);
        }
        Err(_) => {
            if !bytes.contains(&b'\\') {
                let hex = |d: &[u8]| {
                    d.iter()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                };
                for (i, _) in s.match_indices('\\') {
                    let b = s.as_bytes();
                    assert!(b[i..].starts_with(b"\\x") && b.get(i + 2..i + 4).is_some_and(hex));
                }
                assert_eq!(undo_lossless(&s), bytes);
            }
        }
    }

    // for_terminal
    let shown = for_terminal(&s);
    assert!(!shown.chars().any(is_unsafe_for_terminal), "{shown:?}");
    let expected: String = s
        .chars()
        .map(|c| {
            if is_unsafe_for_terminal(c) {
                escape_of(c)
            } else {
                c.to_string()
            }
        })
        .collect();
    assert_eq!(shown, expected);
    if !s.chars().any(is_unsafe_for_terminal) {
        assert!(matches!(shown, Cow::Borrowed(_)));
    }

    // for_terminal_cut: try the chosen max, scaled into the interesting range, and the edges.
    let units = units(&s);
    assert_eq!(units.concat(), shown);
    for max in [
        max,
        max % (shown.len() + 2),
        shown.len(),
        shown.len().saturating_sub(1),
    ] {
        let cut = for_terminal_cut(&s, max);
        assert!(cut.len() <= max, "{cut:?} is longer than {max}");
        assert!(!cut.chars().any(is_unsafe_for_terminal), "{cut:?}");
        let mut longest = String::new();
        for u in &units {
            if longest.len() + u.len() > max {
                break;
            }
            longest.push_str(u);
        }
        assert_eq!(cut, longest, "cut of {s:?} to {max}");
    }

    // json_string_into
    let mut out = String::from("x\"");
    json_string_into(&mut out, &s);
    let json = out.strip_prefix("x\"").expect("what was there is kept");
    assert!(!json.chars().any(is_unsafe_for_terminal), "{json:?}");
    let back: String = serde_json::from_str(&format!("\"{json}\"")).expect("a JSON string");
    assert_eq!(back, s);
});
