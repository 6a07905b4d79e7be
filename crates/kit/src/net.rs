//! Which addresses count as public, for every guard that must not let a
//! user-supplied URL reach inside the network: the notifier's SSRF guard
//! (checked on every connection, after resolution) and the shortener's
//! optional refusal of private targets (checked on the literal host only).
//!
//! Kept in one place so both refuse the same ranges: private, loopback,
//! link-local (cloud metadata at 169.254.169.254), shared (CGNAT),
//! documentation, benchmarking, multicast, broadcast, reserved and
//! unspecified addresses, in IPv4, IPv6 and IPv4-mapped IPv6.
//!
//! Also [`ip_text`]: a client address as text, which the data path writes
//! once per request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::Host;

/// True for addresses reachable on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// `ip` as text, exactly as its `Display` writes it, without the
/// formatting machinery: the gateway writes the client's address into
/// `X-Forwarded-For` and the shortener into each visit's row, per request,
/// and `to_string()` (four `u8` through `fmt::write`, then padding) cost
/// about 1,300 instructions of it (scripts/bench-instructions).
pub fn ip_text(ip: IpAddr) -> String {
    let mut text = String::with_capacity(15);
    push_ip_text(&mut text, ip);
    text
}

/// [`ip_text`], appended to `out` (no allocation of its own).
pub fn push_ip_text(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        use std::fmt::Write;
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// True when a URL's host is known to be non-public without resolving it:
/// a literal address [`is_public`] refuses, or `localhost` and its
/// subdomains (RFC 6761: they always resolve to loopback). Any other name
/// is false here: what it resolves to is only known at connection time.
pub fn is_private_literal(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => !is_public(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => !is_public(IpAddr::V6(*ip)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_writes_what_display_writes() {
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 9, 10),
                Ipv4Addr::new(99, octet, 100, 255),
                Ipv4Addr::new(1, 2, octet, octet),
            ] {
                assert_eq!(ip_text(IpAddr::V4(ip)), ip.to_string());
            }
        }
        for ip in [
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    fn private(url: &str) -> bool {
        let url = url::Url::parse(url).expect("valid url");
        is_private_literal(&url.host().expect("has a host"))
    }

    #[test]
    fn public_addresses_and_names_pass() {
        for ok in [
            "https://hooks.example.com/orders",
            "http://203.0.114.7:8080/x",
            "https://[2a00:1450::1]/",
            "https://8.8.8.8/",
            "https://localhost.example.com/",
        ] {
            assert!(!private(ok), "{ok}");
        }
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for bad in [
            "http://127.0.0.1/hook",
            "http://127.1.2.3/",
            "http://2130706433/", // 127.0.0.1 as one decimal number
            "http://0x7f.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://198.18.0.1/",
            "http://192.0.0.8/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[2001:db8::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(private(bad), "{bad}");
        }
    }

    #[test]
    fn mapped_and_plain_ipv4_agree() {
        for v4 in ["8.8.8.8", "10.1.2.3", "127.0.0.1", "100.100.0.1"] {
            let ip: Ipv4Addr = v4.parse().expect("ip");
            assert_eq!(
                is_public(IpAddr::V4(ip)),
                is_public(IpAddr::V6(ip.to_ipv6_mapped())),
                "{v4}"
            );
        }
    }
}
