//! Host name translation for `last -d` and `last -i`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// `-d`: the registered name of an IP literal, or None (not a literal, or no name).
pub fn name_of_address(host: &str) -> Option<String> {
    let ip: IpAddr = host.parse().ok()?;
    let sa = raw_sockaddr(SocketAddr::new(ip, 0));
    let mut name = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a properly initialised sockaddr of the length passed, `name` is a
    // writable buffer of the length passed, and no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            name.as_mut_ptr(),
            name.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `name`.
    let c = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Some(c.to_string_lossy().into_owned())
}

/// `-i`: the first address a host name (or literal) resolves to, or None.
pub fn address_of_name(host: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let addr = (host, 0).to_socket_addrs().ok()?.next()?;
    Some(addr.ip().to_string())
}

/// A C socket address built from a std one, kept as raw storage and its length.
struct RawSockaddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawSockaddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }
    fn len(&self) -> libc::socklen_t {
        self.len
    }
}

fn raw_sockaddr(addr: SocketAddr) -> RawSockaddr {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    RawSockaddr {
        storage,
        len: len as libc::socklen_t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names() {
        assert_eq!(address_of_name("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(name_of_address("not an address"), None);
        assert_eq!(address_of_name(""), None);
        // Loopback has a name in every /etc/hosts; the exact one varies.
        assert!(name_of_address("127.0.0.1").is_some());
    }
}
