//! What is stored from the PAM items. The items are bytes a remote peer may choose (rhost,
//! sometimes the user name), so they are normalised before they reach the database:
//!
//! * valid UTF-8 is kept as is; each byte of an invalid sequence becomes the four characters
//!   `\xNN` (the same encoding as `wtmpdb::escape::decode_lossless`, which readers use), so the
//!   TEXT column always holds valid UTF-8 and nothing is silently replaced;
//! * the result is cut to at most [`MAX_ITEM_BYTES`] bytes, never inside a character or a
//!   `\xNN` escape.
//!
//! Control characters are stored unchanged (as upstream does); readers escape them for output.
//! open_session and close_session apply the same rule, so the logout fallback matches.

use std::fmt::Write;

/// Longest stored user, tty, remote host or service, in bytes. NI_MAXHOST (1025 with the NUL)
/// fits, so any real host name is kept whole.
pub const MAX_ITEM_BYTES: usize = 1024;

/// The stored form of an item (see the module documentation).
pub fn stored(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(MAX_ITEM_BYTES));
    'outer: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if out.len() + c.len_utf8() > MAX_ITEM_BYTES {
                break 'outer;
            }
            out.push(c);
        }
        for b in chunk.invalid() {
            if out.len() + 4 > MAX_ITEM_BYTES {
                break 'outer;
            }
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The terminal line: PAM_TTY without a leading `/dev/`; when PAM_TTY is unset, empty or an X
/// display (contains ':'), `tty<N>` from XDG_VTNR of the PAM environment if N > 0.
pub fn tty(pam_tty: Option<&[u8]>, xdg_vtnr: Option<&[u8]>) -> Vec<u8> {
    let t = pam_tty.unwrap_or_default();
    if t.is_empty() || t.contains(&b':') {
        let vt = xdg_vtnr
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&n| n > 0);
        if let Some(n) = vt {
            return format!("tty{n}").into_bytes();
        }
    }
    t.strip_prefix(b"/dev/").unwrap_or(t).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_rules() {
        assert_eq!(tty(Some(b"/dev/pts/3"), Some(b"2")), b"pts/3");
        assert_eq!(tty(Some(b"pts/3"), None), b"pts/3");
        assert_eq!(tty(None, None), b"");
        assert_eq!(tty(None, Some(b"7")), b"tty7");
        assert_eq!(tty(Some(b""), Some(b"1")), b"tty1");
        assert_eq!(tty(Some(b":0"), Some(b"2")), b"tty2");
        assert_eq!(tty(Some(b":0"), None), b":0");
        assert_eq!(tty(Some(b":0"), Some(b"0")), b":0");
        assert_eq!(tty(Some(b":0"), Some(b"x")), b":0");
        assert_eq!(tty(Some(b"/dev/tty1"), None), b"tty1");
    }

    #[test]
    fn utf8_is_kept_invalid_bytes_are_visible() {
        assert_eq!(stored(b"alice"), "alice");
        assert_eq!(stored("héllo".as_bytes()), "héllo");
        assert_eq!(stored(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(stored(b"tab\tesc\x1b"), "tab\tesc\x1b");
        for s in [
            &b"x\xfe\xff"[..],
            b"plain",
            "ü\u{1F600}".as_bytes(),
            b"\xc3\x28",
        ] {
            assert_eq!(stored(s), wtmpdb::escape::decode_lossless(s));
        }
    }

    #[test]
    fn long_items_are_bounded_on_boundaries() {
        assert_eq!(stored(&[b'a'; 5000]).len(), MAX_ITEM_BYTES);
        // 341 three-byte characters fill 1023 bytes; the next one does not fit.
        let euro = "€".repeat(400);
        let s = stored(euro.as_bytes());
        assert_eq!(s.len(), 1023);
        assert!(s.chars().all(|c| c == '€'));
        // 256 escapes of 4 bytes fill the limit exactly; no escape is cut.
        let s = stored(&[0xff; 300]);
        assert_eq!(s.len(), MAX_ITEM_BYTES);
        assert!(s.ends_with("\\xff"));
        let mut mixed = vec![b'a'; 1022];
        mixed.push(0xff);
        assert_eq!(stored(&mixed), "a".repeat(1022));
    }
}
