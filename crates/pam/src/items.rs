//! Which PAM items make up a session. What is stored from them (the normalisation: `/dev/`,
//! the 1024-byte bound, non-UTF-8 bytes) is the core's session rule,
//! `wtmpdb::session::SessionItems`; this module only picks the items, which is PAM's own.

/// The terminal item: PAM_TTY; when PAM_TTY is unset, empty or an X display (contains ':'),
/// `tty<N>` from XDG_VTNR of the PAM environment if N > 0 (upstream's rule).
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
    t.to_vec()
}

/// The remote host item and where it came from (for the debug log): PAM_RHOST, else
/// PAM_XDISPLAY, else none (stored as the empty string, as upstream does).
pub fn host(rhost: Option<Vec<u8>>, xdisplay: Option<Vec<u8>>) -> (Vec<u8>, &'static str) {
    match (rhost, xdisplay) {
        (Some(h), _) => (h, "PAM_RHOST"),
        (None, Some(d)) => (d, "PAM_XDISPLAY"),
        (None, None) => (Vec::new(), "none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_rules() {
        let stored = |t, vt| wtmpdb::session::stored_tty(Some(&tty(t, vt)));
        assert_eq!(stored(Some(b"/dev/pts/3"), Some(b"2")), "pts/3");
        assert_eq!(stored(Some(b"pts/3"), None), "pts/3");
        assert_eq!(stored(None, None), "");
        assert_eq!(stored(None, Some(b"7")), "tty7");
        assert_eq!(stored(Some(b""), Some(b"1")), "tty1");
        assert_eq!(stored(Some(b":0"), Some(b"2")), "tty2");
        assert_eq!(stored(Some(b":0"), None), ":0");
        assert_eq!(stored(Some(b":0"), Some(b"0")), ":0");
        assert_eq!(stored(Some(b":0"), Some(b"x")), ":0");
        assert_eq!(stored(Some(b"/dev/tty1"), None), "tty1");
    }

    #[test]
    fn host_sources() {
        assert_eq!(
            host(Some(b"h".to_vec()), Some(b":0".to_vec())),
            (b"h".to_vec(), "PAM_RHOST")
        );
        assert_eq!(
            host(None, Some(b":0".to_vec())),
            (b":0".to_vec(), "PAM_XDISPLAY")
        );
        assert_eq!(host(None, None), (Vec::new(), "none"));
    }
}
