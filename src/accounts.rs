//! The accounts of the passwd database, through NSS (files, LDAP, sssd, systemd-userdb:
//! whatever nsswitch.conf names), for `lastlog -a`.

/// The names of every account `getpwent` lists, in its order. Not safe to call from two
/// threads at once (the enumeration is process-wide state): callers are the command line.
pub fn names() -> Vec<String> {
    let mut out = Vec::new();
    crate::sys::for_each_passwd_name(|name| {
        out.push(crate::escape::decode_lossless(name).into_owned());
    });
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_an_account() {
        assert!(super::names().iter().any(|n| n == "root"));
    }
}
