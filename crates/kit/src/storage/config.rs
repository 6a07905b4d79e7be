//! The `[<module>.database]` section: how big a module's connection pool
//! is and how long a request waits for a connection.
//!
//! Every module carries one, so an operator sizes each module's pool on its
//! own (a busy shortener next to a quiet notifier) with the same keys.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Connection pool settings of one module's database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Most connections this module opens to PostgreSQL, per replica. The
    /// server's `max_connections` must cover the sum over every module and
    /// replica sharing it.
    pub max_connections: u32,
    /// Most connections to this module's SQLite file (`reliable up`).
    /// SQLite lets one writer in at a time, so more connections only help
    /// readers. The shortener's visit writer has one more, of its own.
    pub sqlite_max_connections: u32,
    /// How long a request waits for a free connection (or for a new one to
    /// open) before it fails with 503 "database unavailable", e.g. `5s`.
    #[schemars(with = "crate::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// How long a SQLite write waits for another writer to finish before it
    /// fails, e.g. `5s`.
    #[schemars(with = "crate::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub sqlite_busy_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            sqlite_max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    /// The defaults with a module's own PostgreSQL pool size.
    pub fn with_max_connections(max_connections: u32) -> Self {
        Self {
            max_connections,
            ..Self::default()
        }
    }

    /// Checks the ranges; `key_prefix` is the section's key, e.g.
    /// `shortener.database`, so errors name the full key.
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{key_prefix}.{name}");
        if !(1..=1000).contains(&self.max_connections) {
            return Err(ConfigError::invalid(
                &key("max_connections"),
                "must be between 1 and 1000",
            ));
        }
        if !(1..=1000).contains(&self.sqlite_max_connections) {
            return Err(ConfigError::invalid(
                &key("sqlite_max_connections"),
                "must be between 1 and 1000",
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(ConfigError::invalid(
                &key("acquire_timeout"),
                "must be above zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(PoolConfig::default().validate("m.database").is_ok());
        assert_eq!(PoolConfig::with_max_connections(8).max_connections, 8);
    }

    #[test]
    fn errors_name_the_full_key() {
        let zero = PoolConfig {
            max_connections: 0,
            ..PoolConfig::default()
        };
        let error = zero.validate("orders.database").expect_err("zero");
        assert!(
            error
                .to_string()
                .contains("orders.database.max_connections"),
            "{error}"
        );
        let no_wait = PoolConfig {
            acquire_timeout: Duration::ZERO,
            ..PoolConfig::default()
        };
        let error = no_wait.validate("gateway.database").expect_err("zero");
        assert!(error
            .to_string()
            .contains("gateway.database.acquire_timeout"));
    }

    #[test]
    fn reads_humantime_and_refuses_unknown_keys() {
        let parsed: PoolConfig =
            serde_json::from_str(r#"{"max_connections": 3, "acquire_timeout": "250ms"}"#)
                .expect("parse");
        assert_eq!(parsed.max_connections, 3);
        assert_eq!(parsed.acquire_timeout, Duration::from_millis(250));
        assert_eq!(parsed.sqlite_max_connections, 4);
        let unknown = serde_json::from_str::<PoolConfig>(r#"{"max_conections": 3}"#);
        assert!(unknown.is_err());
        let bad = serde_json::from_str::<PoolConfig>(r#"{"acquire_timeout": "soon"}"#);
        assert!(bad.is_err());
    }
}
