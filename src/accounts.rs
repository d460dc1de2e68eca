//! The accounts of the passwd database, through NSS (files, LDAP, sssd, systemd-userdb:
//! whatever nsswitch.conf names), for `lastlog -a`, and groups by name.

/// The names of every account `getpwent` lists, in its order. Not safe to call from two
/// threads at once (the enumeration is process-wide state): callers are the command line.
pub fn names() -> Vec<String> {
    let mut out = Vec::new();
    crate::sys::for_each_passwd_name(|name| {
        out.push(crate::escape::decode_lossless(name).into_owned());
    });
    out
}

/// The numeric ID of the group `name` through NSS, or `name` itself when it is a number.
pub fn group_id(name: &str) -> Option<u32> {
    crate::sys::group_id(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_an_account() {
        assert!(super::names().iter().any(|n| n == "root"));
    }

    #[test]
    fn groups_by_name_and_number() {
        assert_eq!(super::group_id("root"), Some(0));
        assert_eq!(super::group_id("42"), Some(42));
        assert_eq!(super::group_id("no such group, surely"), None);
    }
}
