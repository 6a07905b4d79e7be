//! Webhook targets and the SSRF guard.
//!
//! A webhook URL comes from configuration, but the platform makes the
//! request from inside the network, so a target must not reach what an
//! outsider could not: only `http`/`https`, no credentials in the URL, and
//! no private, loopback, link-local (cloud metadata at 169.254.169.254),
//! shared, multicast or unspecified addresses unless `allow_private` is
//! set. Literal addresses are checked when the URL is parsed; host names
//! are checked on every connection by the webhook client, whose resolver
//! keeps only the addresses [`kit::net::is_public`] allows (`resilience::resolve`),
//! so a name that later resolves to a private address (DNS rebinding) is
//! refused too.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("is not a valid absolute URL")]
    Unparsable,
    #[error("must be http or https")]
    NotHttp,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error(
        "points at a non-public address ({0}); set notifier.allow_private (RELIABLE_NOTIFIER_ALLOW_PRIVATE=true) to allow it"
    )]
    PrivateAddress(String),
}

/// A validated webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget(Url);

impl WebhookTarget {
    pub fn parse(value: &str, allow_private: bool) -> Result<Self, TargetError> {
        let url = Url::parse(value).map_err(|_| TargetError::Unparsable)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let host = url.host().ok_or(TargetError::NoHost)?;
        if !allow_private && kit::net::is_private_literal(&host) {
            return Err(TargetError::PrivateAddress(host.to_string()));
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_http_targets_pass() {
        for ok in [
            "https://hooks.example.com/orders",
            "http://203.0.114.7:8080/x",
            "https://[2a00:1450::1]/",
        ] {
            assert!(WebhookTarget::parse(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for bad in [
            "http://127.0.0.1/hook",
            "http://127.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "http://api.localhost/",
        ] {
            assert!(
                matches!(
                    WebhookTarget::parse(bad, false),
                    Err(TargetError::PrivateAddress(_))
                ),
                "{bad}"
            );
            assert!(
                WebhookTarget::parse(bad, true).is_ok(),
                "{bad} allowed when configured"
            );
        }
    }

    #[test]
    fn other_schemes_credentials_and_garbage_are_refused() {
        assert_eq!(
            WebhookTarget::parse("ftp://example.com/", false),
            Err(TargetError::NotHttp)
        );
        assert_eq!(
            WebhookTarget::parse("file:///etc/passwd", true),
            Err(TargetError::NotHttp)
        );
        assert_eq!(
            WebhookTarget::parse("https://user:pw@example.com/", false),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            WebhookTarget::parse("not a url", false),
            Err(TargetError::Unparsable)
        );
    }
}
