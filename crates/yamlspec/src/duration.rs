//! Durations as people write them in specs (`500ms`, `60s`, `1m 30s`),
//! shared by every spec format so they all accept and describe the same
//! text.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::time::Duration;

/// `60s`, `1m`, `500ms`, `1h 30m`, `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(DurationText)
            .map_err(de::Error::custom)
    }
}

/// Parses a duration with units (`us`, `ms`, `s`, `m`, `h`, combinable).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 60s or 1m: {e}"))
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A duration with units: `500ms`, `60s`, `1m`, `1h 30m`.",
            "type": "string",
            "pattern": "^\\s*(0|([0-9]+(\\.[0-9]+)?\\s*(ns|us|ms|s|sec|m|min|h|d)\\s*)+)$"
        })
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("60").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn durations_serialize_as_text() {
        let text = serde_json::to_string(&DurationText(Duration::from_secs(90))).unwrap();
        assert_eq!(text, "\"1m 30s\"");
    }
}
