//! Layered configuration: defaults < TOML file < `RELIABLE_*` environment <
//! CLI flags.
//!
//! The binary owns one config struct (with `Default` and serde derives) and
//! calls [`load`]. Nested keys come from the environment with a double
//! underscore (`RELIABLE_SHORTENER__CACHE_CAPACITY`). Environment variables
//! whose first segment is not a known top-level key are ignored (so
//! `RELIABLE_TEST_*` helpers do not break start-up), while an unknown key in
//! the file is an error: config structs use `deny_unknown_fields`, and the
//! error names the key and where it came from.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type or an unknown key was given; the message
    /// names the key and its source (file or environment variable).
    #[error("invalid configuration: {}", describe(.0))]
    Source(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    /// A value parsed but is out of range.
    #[error("invalid configuration: key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// One line per error: "key `a.b` (from SOURCE): what is wrong".
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(path)) => format!("file {}", path.display()),
                    _ if m.name.contains("environment") => {
                        format!(
                            "environment variable RELIABLE_{}",
                            e.path.join("__").to_ascii_uppercase()
                        )
                    }
                    _ => m.name.to_string(),
                })
                .unwrap_or_else(|| "defaults".to_string());
            if key.is_empty() {
                format!("{} (from {source})", e.kind)
            } else {
                format!("key `{key}` (from {source}): {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Loads `T` from its defaults, an optional TOML file, the `RELIABLE_*`
/// environment and `overrides` (CLI flags; `None` fields are skipped when
/// serialized with `skip_serializing_if`).
pub fn load<T, O>(file: Option<&Path>, overrides: &O) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    O: Serialize,
{
    let defaults = Serialized::defaults(T::default());
    let known: BTreeSet<String> = defaults
        .data()
        .map_err(Box::new)?
        .values()
        .flat_map(|dict| dict.keys().cloned())
        .collect();

    let mut figment = Figment::from(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(
            Env::prefixed("RELIABLE_")
                .filter(move |key| {
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    known.contains(&top.to_ascii_lowercase())
                })
                .split("__"),
        )
        .merge(Serialized::defaults(overrides));
    figment
        .extract()
        .map_err(|e| ConfigError::Source(Box::new(e)))
}
