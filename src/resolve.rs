//! Host name translation for `last -d` and `last -i`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// `-d`: the registered name of an IP literal, or None (not a literal, or no name).
pub fn name_of_address(host: &str) -> Option<String> {
    let ip: IpAddr = host.parse().ok()?;
    crate::sys::name_of_address(SocketAddr::new(ip, 0))
}

/// `-i`: the first address a host name (or literal) resolves to, or None.
pub fn address_of_name(host: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let addr = (host, 0).to_socket_addrs().ok()?.next()?;
    Some(addr.ip().to_string())
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
