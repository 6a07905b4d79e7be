//! The `[changes]` section: how much of the timeline is kept.
//!
//! Both bounds hold at once (whichever removes more wins), so the store
//! stays small on a busy platform (count) and forgets old history on a
//! quiet one (age). The `///` docs are the user documentation
//! (`reliable config defaults`).

use kit::config::ConfigError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// Seconds in a day: `max_age` is written in days when it is whole days.
const DAY_SECS: u64 = 86_400;

/// Retention of the change timeline (the console's Changes page,
/// `reliable changes list`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// Most events kept; the oldest beyond it are pruned.
    pub max_events: u64,
    /// Events older than this are pruned, e.g. `90d` or `12h`.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "days")]
    pub max_age: Duration,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        Self {
            max_events: 100_000,
            max_age: Duration::from_secs(90 * DAY_SECS),
        }
    }
}

impl ChangesConfig {
    /// Zero for either bound would keep nothing: refused, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_events == 0 {
            return Err(ConfigError::invalid(
                "changes.max_events",
                "must be above zero",
            ));
        }
        if i64::try_from(self.max_events).is_err() {
            return Err(ConfigError::invalid("changes.max_events", "is too large"));
        }
        if self.max_age.is_zero() {
            return Err(ConfigError::invalid(
                "changes.max_age",
                "must be above zero",
            ));
        }
        if chrono::Duration::from_std(self.max_age).is_err() {
            return Err(ConfigError::invalid("changes.max_age", "is too long"));
        }
        Ok(())
    }
}

/// humantime, but whole days written as `90d` (humantime would write
/// `2months 29days 2h 52m 48s`, its months being 30.44 days).
mod days {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = value.as_secs();
        if secs > 0 && secs.is_multiple_of(super::DAY_SECS) && value.subsec_nanos() == 0 {
            serializer.serialize_str(&format!("{}d", secs / super::DAY_SECS))
        } else {
            serializer.serialize_str(&humantime::format_duration(*value).to_string())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_written_in_days() {
        let defaults = ChangesConfig::default();
        assert!(defaults.validate().is_ok());
        let json = serde_json::to_value(&defaults).expect("json");
        assert_eq!(json["max_age"], "90d");
        assert_eq!(json["max_events"], 100_000);
    }

    #[test]
    fn reads_durations_and_refuses_unknown_keys() {
        let parsed: ChangesConfig = serde_json::from_str(r#"{"max_age": "12h"}"#).expect("parse");
        assert_eq!(parsed.max_age, Duration::from_secs(12 * 3600));
        assert_eq!(parsed.max_events, 100_000);
        let back = serde_json::to_value(&parsed).expect("json");
        assert_eq!(back["max_age"], "12h");
        assert!(serde_json::from_str::<ChangesConfig>(r#"{"max_evnts": 1}"#).is_err());
        assert!(serde_json::from_str::<ChangesConfig>(r#"{"max_age": "soon"}"#).is_err());
    }

    #[test]
    fn zero_bounds_name_their_key() {
        let none = ChangesConfig {
            max_events: 0,
            ..ChangesConfig::default()
        };
        let error = none.validate().expect_err("zero events");
        assert!(error.to_string().contains("changes.max_events"), "{error}");
        let instant = ChangesConfig {
            max_age: Duration::ZERO,
            ..ChangesConfig::default()
        };
        let error = instant.validate().expect_err("zero age");
        assert!(error.to_string().contains("changes.max_age"), "{error}");
    }
}
