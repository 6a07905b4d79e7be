//! API key domain types, each parsed once at the edge.
//!
//! A key is `rlk_` followed by 64 lower-case hex digits (256 random bits).
//! The recognisable prefix lets secret scanners and humans spot a leaked
//! key; the fixed format is checked before any lookup, so garbage never
//! reaches the database. Only the SHA-256 of a key is stored: with 256 bits
//! of entropy a plain hash is enough (no salt or slow hash needed, unlike
//! passwords), and it keeps lookups to one indexed equality. `Debug` of an
//! [`ApiKey`] never shows the secret.

use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;

pub const KEY_PREFIX: &str = "rlk_";
const SECRET_HEX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an API key is `rlk_` followed by 64 lower-case hex digits")]
    Malformed,
    #[error("a key name is 1 to 64 characters of a-z, 0-9, `-`, `_` or `.`")]
    Name,
    #[error("a scope is 1 to 64 characters of a-z, 0-9, `-`, `_`, `.` or `:`, got `{0}`")]
    Scope(String),
}

/// A presented or freshly made key. The secret stays inside.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn parse(value: &str) -> Result<Self, KeyError> {
        let hex = value.strip_prefix(KEY_PREFIX).ok_or(KeyError::Malformed)?;
        let ok = hex.len() == SECRET_HEX
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(value.to_string()))
            .ok_or(KeyError::Malformed)
    }

    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::rng().random();
        Self(format!("{KEY_PREFIX}{}", hex::encode(secret)))
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The first characters, safe to show in listings and logs.
    pub fn display_prefix(&self) -> String {
        self.0[..KEY_PREFIX.len() + 8].to_string()
    }

    /// The secret itself: only for printing once at creation.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

/// SHA-256 of a key. Storage holds it as hex text ([`KeyHash::hex`]);
/// the gateway's cache is keyed by the digest itself, so a key found
/// there costs no hex encoding per request (about 2,200 instructions,
/// docs/performance.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Lower-case hex, as the `key_hash` column stores it.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The operator's name for a key (unique).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyName(String);

fn is_word(s: &str, extra: &[u8]) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

impl KeyName {
    pub fn parse(value: &str) -> Result<Self, KeyError> {
        is_word(value, b"-_.")
            .then(|| Self(value.to_string()))
            .ok_or(KeyError::Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A permission a route asks for, e.g. `links:write`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub fn parse(value: &str) -> Result<Self, KeyError> {
        is_word(value, b"-_.:")
            .then(|| Self(value.to_string()))
            .ok_or_else(|| KeyError::Scope(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scopes a key carries; stored comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// `links:write,orders:write` (empty entries ignored).
    pub fn parse(list: &str) -> Result<Self, KeyError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let key = ApiKey::generate();
        let again = ApiKey::parse(key.reveal()).expect("own format");
        assert_eq!(key.hash(), again.hash());
        assert_eq!(key.hash().hex().len(), 64);
        assert_ne!(key.hash(), ApiKey::generate().hash());
        assert!(!format!("{key:?}").contains(&key.reveal()[12..]));
    }

    #[test]
    fn the_stored_hash_is_the_lower_case_hex_sha256_of_the_whole_key() {
        // Keys already in a database were stored as this text: it must
        // never change.
        let key = ApiKey::parse(&format!("rlk_{}", "0".repeat(64))).expect("format");
        assert_eq!(
            key.hash().hex(),
            "d767a14619aea4c0cc47fab1a9092c3ec076e65b266315ec7e8420718518a70a"
        );
    }

    #[test]
    fn malformed_keys_are_refused_before_lookup() {
        let good = format!("rlk_{}", "a".repeat(64));
        assert!(ApiKey::parse(&good).is_ok());
        for bad in [
            String::new(),
            "rlk_".to_string(),
            format!("rlk_{}", "a".repeat(63)),
            format!("rlk_{}", "a".repeat(65)),
            format!("rlk_{}", "A".repeat(64)),
            format!("xyz_{}", "a".repeat(64)),
            format!("rlk_{}g", "a".repeat(63)),
            format!("rlk_{}' OR 1=1", "a".repeat(57)),
        ] {
            assert_eq!(ApiKey::parse(&bad), Err(KeyError::Malformed), "{bad}");
        }
    }

    #[test]
    fn names_and_scopes() {
        assert!(KeyName::parse("ci-bot.1").is_ok());
        assert!(KeyName::parse("CI").is_err());
        assert!(KeyName::parse("").is_err());
        let scopes = Scopes::parse("orders:write, links:write,").expect("scopes");
        assert_eq!(scopes.to_stored(), "links:write,orders:write");
        assert!(scopes.contains(&Scope::parse("links:write").expect("scope")));
        assert!(Scopes::parse("links write").is_err());
    }
}
