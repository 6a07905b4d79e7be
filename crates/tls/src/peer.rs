//! Who is calling: the identity in the peer's verified certificate, and
//! which identities may call which path prefixes.
//!
//! The identity is the leaf's first `spiffe://` URI SAN, read with an
//! X.509 parser from the certificate rustls already verified against the
//! platform CA; nothing here re-verifies or matches strings in PEM text.

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The verified identity of the peer of a connection, put in each
/// request's extensions (absent: no client certificate).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity(Arc<str>);

impl PeerIdentity {
    /// The identity of a verified leaf certificate: its first `spiffe://`
    /// URI SAN, else its first URI SAN; `None` when it has none.
    pub fn of_certificate(leaf: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let sans = cert.subject_alternative_name().ok()??;
        let uris: Vec<&str> = sans
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        uris.iter()
            .find(|uri| uri.starts_with("spiffe://"))
            .or(uris.first())
            .map(|uri| Self(Arc::from(*uri)))
    }

    /// For tests and in-process callers that were authenticated otherwise.
    pub fn new(identity: &str) -> Self {
        Self(Arc::from(identity))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identities allowed on a path prefix (`[[tls.allow]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Path prefix, matched on whole segments: `/api/v1/orders` covers
    /// `/api/v1/orders` and `/api/v1/orders/42`, not `/api/v1/ordersx`.
    pub prefix: String,
    /// Peer identities (URI SANs, `spiffe://reliable/<service>`) allowed on
    /// it; a request with any other identity, or none, gets 403.
    pub identities: Vec<String>,
}

/// The allow-list: a request on a listed prefix (the longest listed prefix
/// of its path decides) needs one of its identities; other paths are
/// open to whatever the handshake let in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The listed prefix that applies.
    pub prefix: String,
}

fn covers(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl AllowList {
    pub fn new(rules: Vec<AllowRule>) -> Self {
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `peer` may call `path`.
    pub fn check(&self, path: &str, peer: Option<&PeerIdentity>) -> Result<(), Refusal> {
        let rule = self
            .rules
            .iter()
            .filter(|rule| covers(&rule.prefix, path))
            .max_by_key(|rule| rule.prefix.trim_end_matches('/').len());
        let Some(rule) = rule else {
            return Ok(());
        };
        let allowed = peer.is_some_and(|peer| rule.identities.iter().any(|id| id == peer.as_str()));
        if allowed {
            Ok(())
        } else {
            Err(Refusal {
                prefix: rule.prefix.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, ids: &[&str]) -> AllowRule {
        AllowRule {
            prefix: prefix.to_string(),
            identities: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_longest_listed_prefix_decides_on_whole_segments() {
        let gateway = PeerIdentity::new("spiffe://reliable/gateway");
        let orders = PeerIdentity::new("spiffe://reliable/orders");
        let list = AllowList::new(vec![
            rule("/api/v1", &["spiffe://reliable/gateway"]),
            rule("/api/v1/orders/", &["spiffe://reliable/orders"]),
        ]);
        assert!(list.check("/api/v1/links", Some(&gateway)).is_ok());
        assert!(list.check("/api/v1/links", Some(&orders)).is_err());
        assert!(list.check("/api/v1/orders/7", Some(&orders)).is_ok());
        assert!(list.check("/api/v1/orders", Some(&gateway)).is_err());
        // Not a segment boundary: the shorter prefix applies.
        assert!(list.check("/api/v1/ordersx", Some(&gateway)).is_ok());
        assert_eq!(
            list.check("/api/v1", None),
            Err(Refusal {
                prefix: "/api/v1".to_string()
            })
        );
        assert!(list.check("/healthz", None).is_ok());
        assert!(list.check("/api/v10", None).is_ok());
    }
}
