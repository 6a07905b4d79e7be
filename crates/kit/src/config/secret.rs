//! Secret settings: a password in a URL, an HMAC key.
//!
//! A [`Secret`] never leaves through `Debug` or `Serialize` (both give
//! `[redacted]`), so neither a log line nor `reliable config check` can
//! print it; code that needs the value calls [`Secret::expose`]. The value
//! lives in a `secrecy` box that zeroizes its memory when dropped, so a
//! secret does not linger in freed heap pages (a core dump, a swapped-out
//! page) after the config that held it is gone.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What `Debug` and `Serialize` show instead of the value.
pub const REDACTED: &str = "[redacted]";

pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Self(SecretString::from(self.expose()))
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "x-secret": true })
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_serialize_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        let json = serde_json::to_string(&secret).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(secret.expose(), "hunter2");
        let copy: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(copy, secret.clone());
        assert_ne!(copy, Secret::new("other"));
    }
}
