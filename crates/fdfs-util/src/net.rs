//! Address text as the tools, conf files and logs write it.

/// `host:port`, an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(super::host_port("10.0.0.1", 22122), "10.0.0.1:22122");
        assert_eq!(super::host_port("::1", 22122), "[::1]:22122");
        assert_eq!(super::host_port("tracker", 1), "tracker:1");
    }
}
