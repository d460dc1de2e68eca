//! The stored form of a session's items, the one normalisation every writer applies (the
//! PAM module, the library API for servers, later the daemon and the C library), so that a
//! row written by one is found again by another (the logout fallback matches on user, tty
//! and service):
//!
//! * valid UTF-8 is kept as is; each byte of an invalid sequence becomes the four characters
//!   `\xNN` (the encoding of [`crate::escape::decode_lossless`], which readers use), so the
//!   TEXT column always holds valid UTF-8 and nothing is silently replaced;
//! * each item is cut to at most [`MAX_ITEM_BYTES`] bytes, never inside a character or a
//!   `\xNN` escape;
//! * the terminal loses a leading `/dev/`; a session without a terminal stores the empty
//!   string, as upstream's module does (never NULL: a NULL TTY matches no lookup);
//! * control characters are stored unchanged, as upstream does; readers escape them.

use std::fmt::Write;

/// Longest stored user, tty, remote host or service, in bytes. NI_MAXHOST (1025 with the NUL)
/// fits, so any real host name is kept whole.
pub const MAX_ITEM_BYTES: usize = 1024;

/// The stored form of one item (see the module documentation).
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

/// The stored form of a terminal: no `/dev/` prefix, `""` when there is none.
pub fn stored_tty(tty: Option<&[u8]>) -> String {
    let t = tty.unwrap_or_default();
    stored(t.strip_prefix(b"/dev/").unwrap_or(t))
}

/// A session's items in their stored form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionItems {
    pub user: String,
    pub tty: String,
    pub host: Option<String>,
    pub service: Option<String>,
}

impl SessionItems {
    /// Applies the rule to raw items (bytes as a peer or PAM gave them).
    pub fn from_bytes(
        user: &[u8],
        tty: Option<&[u8]>,
        host: Option<&[u8]>,
        service: Option<&[u8]>,
    ) -> SessionItems {
        SessionItems {
            user: stored(user),
            tty: stored_tty(tty),
            host: host.map(stored),
            service: service.map(stored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(stored(s), crate::escape::decode_lossless(s));
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

    #[test]
    fn terminals_lose_dev_and_none_is_empty() {
        assert_eq!(stored_tty(Some(b"/dev/pts/3")), "pts/3");
        assert_eq!(stored_tty(Some(b"pts/3")), "pts/3");
        assert_eq!(stored_tty(Some(b"/dev/")), "");
        assert_eq!(stored_tty(Some(b"")), "");
        assert_eq!(stored_tty(None), "");
        let long = [b"/dev/".as_slice(), &[b't'; 2000]].concat();
        assert_eq!(stored_tty(Some(&long)).len(), MAX_ITEM_BYTES);
    }
}
