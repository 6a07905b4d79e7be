//! Which valid targets this shortener agrees to redirect to.
//!
//! A [`TargetUrl`] is a well-formed http(s) URL; this policy adds what
//! depends on where the shortener runs:
//!
//! - **No redirect loops.** A target on the shortener's own short domain
//!   (the host of `shortener.base_url`, or of the public URL when unset)
//!   would send browsers in a circle, or chain links so that a refused
//!   target hides behind an accepted short URL. Hosts compare
//!   case-insensitively and without a trailing dot; ports compare as
//!   written, with the http and https defaults (80, 443) equal, because a
//!   public short domain answers on both. The same host on another explicit
//!   port is another service (local setups run several on 127.0.0.1).
//!   When the short host is a loopback or unspecified address or
//!   `localhost` (the default base URL is the listen address), every
//!   loopback spelling is that host: `localhost:8080` loops on a shortener
//!   at `127.0.0.1:8080`.
//! - **Optionally, no private targets** (`allow_private_targets = false`):
//!   literal loopback, private, link-local and other non-public addresses
//!   and `localhost` are refused ([`kit::net`], the same ranges as the
//!   notifier's SSRF guard). Names are not resolved: the shortener never
//!   fetches a target, the visitor's browser does, so this protects
//!   visitors from being sent into their own network by a public
//!   shortener, and a name that resolves to a private address passes.

use super::TargetUrl;
use url::{Host, Url};

/// Why a valid target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error("points back at this shortener ({0}): the link would redirect to itself")]
    RedirectLoop(String),
    #[error(
        "points at a non-public address ({0}); this shortener refuses private targets \
         (shortener.allow_private_targets = false)"
    )]
    PrivateAddress(String),
}

/// `shortener.base_url` (or the public URL) could not be read as a URL
/// with a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("base URL `{0}` is not an absolute http(s) URL with a host")]
pub struct BaseUrlError(String);

/// The shortener's own host and port, and whether private targets pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    short_host: Host<String>,
    /// `None` when the base URL uses its scheme's default port.
    short_port: Option<u16>,
    allow_private: bool,
}

impl TargetPolicy {
    pub fn new(base_url: &str, allow_private: bool) -> Result<Self, BaseUrlError> {
        let invalid = || BaseUrlError(base_url.to_string());
        let url = Url::parse(base_url).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid());
        }
        let host = url.host().ok_or_else(invalid)?;
        Ok(Self {
            short_host: normalized(&host),
            short_port: url.port(),
            allow_private,
        })
    }

    pub fn check(&self, target: &TargetUrl) -> Result<(), TargetRefusal> {
        let url = target.url();
        // TargetUrl guarantees a host; a URL without one cannot loop.
        let Some(host) = url.host() else {
            return Ok(());
        };
        let same_host = normalized(&host) == self.short_host
            || (is_local(&self.short_host) && is_local(&normalized(&host)));
        if same_host && url.port() == self.short_port {
            return Err(TargetRefusal::RedirectLoop(authority(url)));
        }
        if !self.allow_private && kit::net::is_private_literal(&host) {
            return Err(TargetRefusal::PrivateAddress(host.to_string()));
        }
        Ok(())
    }
}

/// Lowercase, without a trailing dot (`Sho.RT.` and `sho.rt` are one
/// host). The `url` crate already lowercases and punycodes http(s) hosts;
/// lowercasing again keeps this right for any caller.
fn normalized(host: &Host<&str>) -> Host<String> {
    match host {
        Host::Domain(name) => Host::Domain(name.trim_end_matches('.').to_ascii_lowercase()),
        Host::Ipv4(ip) => Host::Ipv4(*ip),
        Host::Ipv6(ip) => Host::Ipv6(*ip),
    }
}

/// This machine, however it is written: loopback and unspecified
/// addresses (IPv4-mapped too) and `localhost` with its subdomains.
fn is_local(host: &Host<String>) -> bool {
    let local_ip = |ip: std::net::IpAddr| {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip.is_unspecified()
    };
    match host {
        Host::Ipv4(ip) => local_ip((*ip).into()),
        Host::Ipv6(ip) => local_ip((*ip).into()),
        Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
    }
}

fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base: &str, allow_private: bool, target: &str) -> Result<(), TargetRefusal> {
        TargetPolicy::new(base, allow_private)
            .expect("base url")
            .check(&TargetUrl::parse(target).expect("target url"))
    }

    fn loops(base: &str, target: &str) -> bool {
        matches!(
            check(base, true, target),
            Err(TargetRefusal::RedirectLoop(_))
        )
    }

    #[test]
    fn targets_on_the_short_domain_are_loops() {
        for target in [
            "https://sho.rt/abc",
            "https://SHO.RT/abc",
            "https://sho.rt./abc",
            "https://Sho.Rt.:443/abc",
            "http://sho.rt/abc",
            "http://sho.rt:80/",
            "https://sho.rt",
        ] {
            assert!(loops("https://sho.rt", target), "{target}");
            assert!(
                loops("https://SHO.rt./", target),
                "{target} (base with dot)"
            );
        }
        assert!(loops("http://127.0.0.1:8080", "http://127.0.0.1:8080/x"));
        for local in [
            "http://localhost:8080/x",
            "http://LOCALHOST.:8080/x",
            "http://127.0.0.2:8080/x",
            "http://[::1]:8080/x",
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://0.0.0.0:8080/x",
        ] {
            assert!(loops("http://127.0.0.1:8080", local), "{local}");
            assert!(loops("http://0.0.0.0:8080", local), "{local} on 0.0.0.0");
            assert!(
                loops("http://localhost:8080", local),
                "{local} on localhost"
            );
        }
        assert!(loops("http://[::1]:8080", "http://[0:0::1]:8080/x"));
        assert!(loops("https://sho.rt:8443", "https://SHO.rt.:8443/x"));
    }

    #[test]
    fn other_hosts_and_other_ports_are_not_loops() {
        for (base, target) in [
            ("https://sho.rt", "https://example.com/"),
            ("https://sho.rt", "https://www.sho.rt/"),
            ("https://sho.rt", "https://sho.rt.example/"),
            ("https://sho.rt", "https://sho.rt:8443/"),
            ("https://sho.rt:8443", "https://sho.rt/"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:9090/"),
            ("http://127.0.0.1:8080", "http://127.0.0.1/"),
            ("http://127.0.0.1:8080", "http://localhost:9090/"),
            ("http://127.0.0.1:8080", "http://10.0.0.1:8080/"),
            ("https://sho.rt", "https://localhost/"),
        ] {
            assert_eq!(check(base, true, target), Ok(()), "{base} {target}");
        }
    }

    #[test]
    fn private_targets_pass_unless_refused() {
        for target in [
            "http://127.0.0.1:9000/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9000/",
            "http://[fd00::1]/",
            "http://localhost:3000/",
            "http://LOCALHOST./",
            "http://app.localhost/",
            "http://2130706433/",
        ] {
            assert_eq!(check("https://sho.rt", true, target), Ok(()), "{target}");
            assert!(
                matches!(
                    check("https://sho.rt", false, target),
                    Err(TargetRefusal::PrivateAddress(_))
                ),
                "{target}"
            );
        }
        // Names are not resolved: only literals and localhost are known.
        assert_eq!(
            check("https://sho.rt", false, "https://intranet.example/"),
            Ok(())
        );
        assert_eq!(
            check("https://sho.rt", false, "https://93.184.215.14/"),
            Ok(())
        );
    }

    #[test]
    fn a_base_url_without_a_host_is_an_error() {
        for bad in ["", "sho.rt", "mailto:a@sho.rt", "ftp://sho.rt", "/relative"] {
            assert!(TargetPolicy::new(bad, true).is_err(), "{bad}");
        }
    }
}
