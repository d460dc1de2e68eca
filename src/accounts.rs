//! The accounts of the passwd database, through NSS (files, LDAP, sssd, systemd-userdb:
//! whatever nsswitch.conf names), for `lastlog -a`.

use std::ffi::CStr;

/// The names of every account `getpwent` lists, in its order. Not safe to call from two
/// threads at once (the enumeration is process-wide state): callers are the command line.
pub fn names() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: setpwent, getpwent and endpwent have no preconditions; each entry is read
    // before the next call, which may overwrite it, and pw_name is a valid C string.
    unsafe {
        libc::setpwent();
        loop {
            let pw = libc::getpwent();
            if pw.is_null() {
                break;
            }
            let name = CStr::from_ptr((*pw).pw_name);
            out.push(crate::escape::decode_lossless(name.to_bytes()).into_owned());
        }
        libc::endpwent();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_an_account() {
        assert!(super::names().iter().any(|n| n == "root"));
    }
}
