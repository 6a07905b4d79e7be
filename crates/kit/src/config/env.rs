//! `RELIABLE_*` variables to key paths.
//!
//! `RELIABLE_SHORTENER_CACHE_CAPACITY` is matched against the known keys
//! (those of the defaults) one level at a time, so keys may contain
//! underscores: `shortener` is a section, `cache_capacity` a key in it.
//! Maps and lists (gateway pools and routes) are file-only, or reachable by
//! the deprecated double-underscore form.

use super::{put_path, Alias, ConfigError};
use figment::value::{Dict, Value};
use figment::Metadata;

const PREFIX: &str = "RELIABLE_";
const FILE_SUFFIX: &str = "_file";

pub(super) fn metadata() -> Metadata {
    Metadata::named("environment variable(s)")
}

/// The key path that `name` (lowercase, without the prefix) names.
fn path_of(known: &Dict, name: &str) -> Option<String> {
    if let Some(Value::Dict(..)) | None = known.get(name) {
        // A whole section is not a key (and an unknown name is nothing).
    } else {
        return Some(name.to_string());
    }
    known.iter().find_map(|(key, value)| {
        let rest = name.strip_prefix(key.as_str())?.strip_prefix('_')?;
        match value {
            Value::Dict(_, inner) => Some(format!("{key}.{}", path_of(inner, rest)?)),
            _ => None,
        }
    })
}

/// The section (a known key holding a dict) that `name` starts with.
fn section_of<'a>(known: &'a Dict, name: &str) -> Option<&'a str> {
    known.iter().find_map(|(key, value)| {
        let matched = matches!(value, Value::Dict(..))
            && name
                .strip_prefix(key.as_str())
                .is_some_and(|rest| rest.starts_with('_'));
        matched.then_some(key.as_str())
    })
}

fn is_known_prefix(known: &Dict, first: &str) -> bool {
    known.contains_key(first)
}

/// Reads the `RELIABLE_*` variables into one dict of values.
pub(super) fn resolve(
    known: &Dict,
    aliases: &[Alias],
    vars: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<Dict, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    // Deterministic: a `_FILE` and its plain twin resolve in name order,
    // and the plain value (set first in the dict) wins.
    vars.sort();
    let mut out = Dict::new();
    for (var, raw) in vars {
        let name = var[PREFIX.len()..].to_ascii_lowercase();
        if name.contains("__") {
            let path = name.replace("__", ".");
            let first = path.split('.').next().unwrap_or_default();
            if is_known_prefix(known, first) {
                warnings.push(format!(
                    "environment variable {var} is deprecated; use {}",
                    super::env_name(&path)
                ));
                put_path(&mut out, &path, parse(&raw));
            }
            continue;
        }
        if let Some(path) = path_of(known, &name) {
            put_path(&mut out, &path, parse_for(known, &path, &raw));
            continue;
        }
        if let Some(stripped) = name.strip_suffix(FILE_SUFFIX) {
            let path =
                path_of(known, stripped).or_else(|| alias_of(aliases, stripped, &var, warnings));
            if let Some(path) = path {
                let contents =
                    std::fs::read_to_string(&raw).map_err(|e| ConfigError::Environment {
                        var: var.clone(),
                        reason: format!("cannot read {raw}: {e}"),
                    })?;
                let value = contents.trim_end_matches(['\n', '\r']).to_string();
                put_path(&mut out, &path, Value::from(value));
                continue;
            }
        }
        if let Some(path) = alias_of(aliases, &name, &var, warnings) {
            put_path(&mut out, &path, parse_for(known, &path, &raw));
            continue;
        }
        if let Some(section) = section_of(known, &name) {
            return Err(ConfigError::Environment {
                var,
                reason: format!(
                    "no key `{}` in section `{section}`",
                    &name[section.len() + 1..]
                ),
            });
        }
    }
    Ok(out)
}

fn alias_of(
    aliases: &[Alias],
    name: &str,
    var: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let alias = aliases.iter().find(|a| a.old.replace('.', "_") == name)?;
    warnings.push(format!(
        "environment variable {var} is deprecated; use {}",
        super::env_name(alias.new)
    ));
    Some(alias.new.to_string())
}

/// A list key also takes `a,b` (no brackets), as a comma-separated
/// environment value is usually written.
fn parse_for(known: &Dict, path: &str, raw: &str) -> Value {
    let is_list = matches!(value_at(known, path), Some(Value::Array(..)));
    if is_list && !raw.trim_start().starts_with('[') {
        let items = raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(parse)
            .collect::<Vec<_>>();
        return Value::from(items);
    }
    parse(raw)
}

fn value_at<'a>(dict: &'a Dict, path: &str) -> Option<&'a Value> {
    match path.split_once('.') {
        None => dict.get(path),
        Some((head, rest)) => match dict.get(head) {
            Some(Value::Dict(_, inner)) => value_at(inner, rest),
            _ => None,
        },
    }
}

/// Values are read as figment reads environment values: numbers, booleans
/// and `[a, b]` arrays are typed, the rest are strings.
fn parse(raw: &str) -> Value {
    raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()))
}
