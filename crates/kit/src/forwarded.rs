//! Who the client is when proxies stand in between.
//!
//! A service behind a proxy sees the proxy as its TCP peer; the client's
//! address travels in `X-Forwarded-For`. Anyone can write that header, so
//! it is believed only when the peer is a configured trusted proxy, and
//! then only as far as trusted hops vouch for it: walking the list from the
//! right and skipping trusted hops gives the rightmost address no trusted
//! proxy would have written, which is the client. One implementation for
//! the gateway (which sets the header) and the modules behind it (which
//! read it).

use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::IpAddr;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The proxies whose forwarding headers are believed (none by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR (e.g. 10.0.0.0/8)")]
pub struct BadCidr(pub String);

impl TrustedProxies {
    /// CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
    pub fn parse(cidrs: &[String]) -> Result<Self, BadCidr> {
        cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadCidr(c.clone()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer itself unless the peer is trusted,
    /// else the rightmost `X-Forwarded-For` entry that is not trusted.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage in the chain: stop at the last address we trust.
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(trusted.client_ip(peer, &xff("1.2.3.4")), peer);
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_ip(peer, &xff("1.2.3.4")), peer);
    }

    #[test]
    fn trusted_peers_are_walked_from_the_right() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let h = xff("6.6.6.6, 198.51.100.7, 10.2.2.2");
        assert_eq!(
            trusted.client_ip(peer, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(trusted.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(trusted.client_ip(peer, &xff("nonsense")), peer);
    }

    #[test]
    fn bad_cidrs_are_named() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/99".into()]).unwrap_err(),
            BadCidr("10.0.0.0/99".into())
        );
    }
}
