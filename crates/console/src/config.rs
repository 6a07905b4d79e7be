//! The `[console]` configuration section.
//!
//! Where the console listens is not here: `console_listen`
//! (`RELIABLE_CONSOLE_LISTEN`) is one of the platform's fixed names.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Shortest auto-refresh period: a page that reloads faster than the SLO
/// evaluator ticks only costs work.
pub const MIN_REFRESH: Duration = Duration::from_secs(2);
/// Longest auto-refresh period.
pub const MAX_REFRESH: Duration = Duration::from_secs(3_600);

/// Configuration section `console`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the operator console on `console_listen`. On a non-loopback
    /// address every request needs an API key with the `console:read`
    /// scope.
    pub enabled: bool,
    /// How often the overview, SLO and alert pages reload themselves
    /// (2s to 1h); `?refresh=0` on a page stops it there.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            refresh: Duration::from_secs(10),
        }
    }
}

impl ConsoleConfig {
    pub fn validate(&self) -> Result<(), kit::config::ConfigError> {
        if self.refresh < MIN_REFRESH || self.refresh > MAX_REFRESH {
            return Err(kit::config::ConfigError::invalid(
                "console.refresh",
                "must be between 2s and 1h",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_name_the_key() {
        assert!(ConsoleConfig::default().validate().is_ok());
        for refresh in [Duration::from_secs(1), Duration::from_secs(3_601)] {
            let config = ConsoleConfig {
                refresh,
                ..ConsoleConfig::default()
            };
            let error = config.validate().err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("console.refresh")),
                "{error:?}"
            );
        }
    }
}
