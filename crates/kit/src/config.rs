//! Layered configuration: defaults < TOML file < `RELIABLE_*` environment <
//! CLI flags.
//!
//! The binary owns one config struct (with `Default` and serde derives) and
//! calls [`load`]. One naming convention holds for every key:
//!
//! - in the file, each module's settings live under its own `[section]`;
//! - in the environment, `section.key` is `RELIABLE_SECTION_KEY`
//!   (`shortener.cache_capacity` is `RELIABLE_SHORTENER_CACHE_CAPACITY`,
//!   `shortener.database.max_connections` is
//!   `RELIABLE_SHORTENER_DATABASE_MAX_CONNECTIONS`). Names are resolved
//!   against the known keys, so keys may contain underscores;
//! - every variable `X` also accepts `X_FILE`: the value is read from that
//!   file (trailing newline dropped), as Kubernetes secret mounts and
//!   Docker secrets need. Meant for secrets; works for any key;
//! - the older double-underscore form (`RELIABLE_SHORTENER__CACHE_CAPACITY`)
//!   and renamed keys ([`Alias`]) keep working, each with a deprecation
//!   warning in [`Loaded::warnings`].
//!
//! Errors name the key and where its value came from (default, file,
//! environment variable, flag). Variables whose first segment is no known
//! key are ignored (so `RELIABLE_TEST_*` helpers do not break start-up);
//! a variable that names a known section but no key in it is an error, as
//! an unknown key in the file is (config structs use `deny_unknown_fields`).

mod env;
pub mod reference;
mod secret;

pub use secret::Secret;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::Serialize;
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
    /// An environment variable names no key, or its `_FILE` cannot be read.
    #[error("invalid configuration: environment variable {var}: {reason}")]
    Environment { var: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// A renamed key: `old` (dotted path, as it was written in the file; its
/// environment name follows the convention) still sets `new`.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    pub old: &'static str,
    pub new: &'static str,
}

/// A loaded configuration and the deprecation warnings met on the way
/// (the caller logs them once telemetry is up).
#[derive(Debug)]
pub struct Loaded<T> {
    pub config: T,
    pub warnings: Vec<String>,
}

/// The environment name of a dotted key path.
pub fn env_name(path: &str) -> String {
    format!("RELIABLE_{}", path.replace('.', "_").to_ascii_uppercase())
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
                        format!("environment variable {}", env_name(&key))
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
/// serialized with `skip_serializing_if`). `aliases` are the deprecated
/// names still accepted.
pub fn load<T, O>(
    file: Option<&Path>,
    overrides: &O,
    aliases: &[Alias],
) -> Result<Loaded<T>, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    O: Serialize,
{
    load_from(file, overrides, aliases, std::env::vars())
}

/// [`load`] with the environment given (tests).
pub fn load_from<T, O>(
    file: Option<&Path>,
    overrides: &O,
    aliases: &[Alias],
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<T>, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    O: Serialize,
{
    let defaults = Serialized::defaults(T::default());
    let known = defaults
        .data()
        .map_err(Box::new)?
        .remove(&Profile::Default)
        .unwrap_or_default();
    let mut warnings = Vec::new();

    let mut figment = Figment::from(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        let toml = Toml::file_exact(path);
        let metadata = toml.metadata();
        let mut data = toml
            .data()
            .map_err(Box::new)?
            .remove(&Profile::Default)
            .unwrap_or_default();
        for alias in aliases {
            if let Some(value) = take_path(&mut data, alias.old) {
                warnings.push(format!(
                    "file {}: key `{}` is deprecated; use `{}`",
                    path.display(),
                    alias.old,
                    alias.new
                ));
                put_path(&mut data, alias.new, value);
            }
        }
        figment = figment.merge(Layer { metadata, data });
    }
    let environment = env::resolve(&known, aliases, vars, &mut warnings)?;
    figment = figment
        .merge(Layer {
            metadata: env::metadata(),
            data: environment,
        })
        .merge(Serialized::defaults(overrides));
    let config = figment
        .extract()
        .map_err(|e| ConfigError::Source(Box::new(e)))?;
    Ok(Loaded { config, warnings })
}

/// A provider over data already read (the file after renaming aliases,
/// the resolved environment), keeping its source for error messages.
struct Layer {
    metadata: Metadata,
    data: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// Removes the value at a dotted path.
fn take_path(dict: &mut Dict, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => dict.remove(path),
        Some((head, rest)) => match dict.get_mut(head) {
            Some(Value::Dict(_, inner)) => take_path(inner, rest),
            _ => None,
        },
    }
}

/// Sets the value at a dotted path unless one is there already (the new
/// name wins over the deprecated one).
fn put_path(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.entry(path.to_string()).or_insert(value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                put_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
