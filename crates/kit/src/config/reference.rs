//! The configuration reference, generated from the config structs.
//!
//! The `///` docs of config fields are the user documentation (Vector's
//! rule): `schemars` carries them into a JSON schema, and this module walks
//! it beside the serialized defaults to list every key with its
//! environment variable, type, default and doc. `reliable config defaults
//! [--markdown]` prints the list; the committed reference page is its
//! output, checked by a test.

use super::{env_name, Alias};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The schema of a duration written as text (`500ms`, `5s`, `1h`); use as
/// `#[schemars(with = "kit::config::reference::Duration")]` on
/// `humantime_serde` fields.
pub struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

/// One configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Dotted path (`shortener.cache_ttl`).
    pub key: String,
    pub env: String,
    /// `string`, `integer`, `duration`, `boolean`, `list`, `table`...
    pub kind: String,
    /// The default as TOML would write it; empty when there is none.
    pub default: String,
    pub doc: String,
    /// Never printed; also read from `<env>_FILE`.
    pub secret: bool,
}

/// Every key of `T`, in declaration order of the defaults.
pub fn entries<T: JsonSchema + Serialize + Default>() -> Vec<Entry> {
    let schema = schemars::schema_for!(T);
    let root = schema.as_value().clone();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let defaults = serde_json::to_value(T::default()).unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk(&root, &defs, &defaults, "", &mut out);
    // Shared keys first, then one block per section (stable: keys keep
    // their order inside a section).
    out.sort_by_key(|e| {
        e.key
            .split_once('.')
            .map(|(section, _)| section.to_string())
    });
    out
}

fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|all| all.first())
            .and_then(|first| first.get("$ref"))
    });
    match reference
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
    {
        Some(target) => resolve(target, defs),
        None => schema,
    }
}

fn walk(
    schema: &Value,
    defs: &Map<String, Value>,
    default: &Value,
    prefix: &str,
    out: &mut Vec<Entry>,
) {
    let object = resolve(schema, defs);
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Some(defaults) = default.as_object() else {
        return;
    };
    for (name, value) in defaults {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let property = properties.get(name).unwrap_or(&Value::Null);
        let target = resolve(property, defs);
        let is_section = value.is_object()
            && target.get("properties").is_some()
            && target
                .get("additionalProperties")
                .is_none_or(|a| a == false);
        if is_section {
            walk(property, defs, value, &key, out);
            continue;
        }
        let doc = property
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let kind = kind(target, defs);
        out.push(Entry {
            // Tables and lists of tables are written in the file; a list
            // of plain values is `[a, b]` in the environment too.
            env: if kind == "list" || kind == "table" {
                String::new()
            } else {
                env_name(&key)
            },
            kind,
            default: show(value),
            secret: is_secret(property, defs),
            doc,
            key,
        });
    }
}

fn kind(schema: &Value, defs: &Map<String, Value>) -> String {
    if schema.get("format").and_then(Value::as_str) == Some("duration") {
        return "duration".into();
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = options.iter().map(show).collect();
        return format!("one of {}", names.join(", "));
    }
    for alternatives in ["anyOf", "oneOf"] {
        if let Some(list) = schema.get(alternatives).and_then(Value::as_array) {
            let constants: Vec<String> = list
                .iter()
                .filter_map(|s| s.get("const"))
                .map(show)
                .collect();
            if !constants.is_empty() && constants.len() == list.len() {
                return format!("one of {}", constants.join(", "));
            }
            let kinds: Vec<String> = list
                .iter()
                .map(|s| resolve(s, defs))
                .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                .map(|s| kind(s, defs))
                .collect();
            return kinds.join(" or ");
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match types.into_iter().find(|t| *t != "null") {
        Some("array") => match schema
            .get("items")
            .map(|items| kind(resolve(items, defs), defs))
        {
            Some(item) if ["string", "integer", "number", "boolean"].contains(&item.as_str()) => {
                format!("list of {item}s")
            }
            _ => "list".into(),
        },
        Some("object") => "table".into(),
        Some("number") => "number".into(),
        Some(other) => other.into(),
        None => "value".into(),
    }
}

fn is_secret(schema: &Value, defs: &Map<String, Value>) -> bool {
    let schema = resolve(schema, defs);
    if schema.get("x-secret") == Some(&Value::Bool(true)) {
        return true;
    }
    ["anyOf", "oneOf"].iter().any(|k| {
        schema
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|s| is_secret(s, defs)))
    })
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// The reference as plain text: one block per key.
pub fn text(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let default = if e.default.is_empty() {
            "(none)"
        } else {
            &e.default
        };
        let env = if e.env.is_empty() {
            "file only"
        } else {
            &e.env
        };
        out.push_str(&format!("{} = {default}    # {}, {env}\n", e.key, e.kind));
        if !e.doc.is_empty() {
            out.push_str(&format!("    {}\n", e.doc));
        }
    }
    out
}

/// The reference as a Markdown page (docs/reference/configuration.md).
pub fn markdown(entries: &[Entry], aliases: &[Alias]) -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated by `reliable config defaults --markdown`; do not edit. \
         A test fails when this page and the code disagree. -->\n\n\
         Every key, by section. In a TOML file (`--config F`) a key `a.b` is `b` \
         under `[a]`; in the environment it is the variable shown (a list of \
         plain values as `a,b` or `[a, b]`). Every variable \
         `X` also accepts `X_FILE` (the value is read from that file); use it for \
         the secrets marked below. Precedence: defaults < file < environment < \
         flags. See [configuration](../configuration.md) for the rules.\n",
    );
    let mut section = None;
    for e in entries {
        let this = e.key.split_once('.').map_or("", |(s, _)| s);
        if section != Some(this) {
            section = Some(this);
            let title = if this.is_empty() { "Platform" } else { this };
            out.push_str(&format!(
                "\n## {title}\n\n| key | environment | type | default | description |\n|---|---|---|---|---|\n"
            ));
        }
        let default = if e.default.is_empty() {
            "none".to_string()
        } else {
            format!("`{}`", e.default)
        };
        let doc = if e.secret {
            format!("**Secret** (never printed). {}", e.doc)
        } else {
            e.doc.clone()
        };
        let env = if e.env.is_empty() {
            "file only".to_string()
        } else {
            format!("`{}`", e.env)
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.key,
            env,
            e.kind,
            default,
            doc.replace('|', "\\|")
        ));
    }
    if !aliases.is_empty() {
        out.push_str(
            "\n## Deprecated names\n\nStill accepted, with a warning in the log at start-up. \
             The double-underscore environment form (`RELIABLE_SHORTENER__CACHE_TTL`) is \
             deprecated for every key.\n\n| deprecated | use |\n|---|---|\n",
        );
        for alias in aliases {
            out.push_str(&format!(
                "| `{}` (`{}`) | `{}` (`{}`) |\n",
                alias.old,
                env_name(alias.old),
                alias.new,
                env_name(alias.new)
            ));
        }
    }
    out
}
