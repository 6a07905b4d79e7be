//! Variables, as Chaos Toolkit's `configuration` has them: a literal, or
//! `{type: env, key: NAME, default: ...}`; `--var name=value` on the
//! command line overrides either. `${name}` anywhere in the file (outside
//! `configuration`) is replaced before the file is interpreted, so a
//! duration or a count can be a variable too (CI runs the short variant,
//! a person the full one). An undefined name is an error on its line. A
//! scalar that is one `${name}` and nothing else is typed by the value,
//! quoted or not (a flow map `{latency: "${latency}"}` needs the quotes).

use super::parse::ExperimentError;
use std::collections::BTreeMap;
use yamlspec::{Node, Value};

/// Resolved variables by name.
#[derive(Debug, Clone, Default)]
pub struct Vars(pub BTreeMap<String, String>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Resolves `configuration` (a map node, if present), then applies
/// `overrides` (`--var`).
pub fn resolve(
    configuration: Option<&Node>,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vars, ExperimentError> {
    let mut vars = BTreeMap::new();
    if let Some(node) = configuration {
        let Value::Map(entries) = &node.value else {
            return Err(ExperimentError::at(
                node.line,
                "configuration",
                "must be a map of names to values",
            ));
        };
        for entry in entries {
            let path = format!("configuration.{}", entry.key);
            check_name(&entry.key, entry.line, &path)?;
            let value = match &entry.value.value {
                Value::Scalar { text, .. } => text.clone(),
                Value::Map(fields) => from_env(fields, entry.value.line, &path, env)?,
                Value::Seq(_) => {
                    return Err(ExperimentError::at(
                        entry.value.line,
                        &path,
                        "must be a value or {type: env, key: NAME, default: VALUE}",
                    ))
                }
            };
            vars.insert(entry.key.clone(), value);
        }
    }
    for (name, value) in overrides {
        check_name(name, 0, "--var")?;
        vars.insert(name.clone(), value.clone());
    }
    Ok(Vars(vars))
}

fn check_name(name: &str, line: usize, path: &str) -> Result<(), ExperimentError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ExperimentError::at(
            line,
            path,
            format!("`{name}` is not a variable name (letters, digits, `_`, `-`)"),
        ))
    }
}

fn from_env(
    fields: &[yamlspec::Entry],
    line: usize,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExperimentError> {
    let mut kind = None;
    let mut key = None;
    let mut default = None;
    for field in fields {
        let Value::Scalar { text, .. } = &field.value.value else {
            return Err(ExperimentError::at(
                field.line,
                &format!("{path}.{}", field.key),
                "must be a single value",
            ));
        };
        match field.key.as_str() {
            "type" => kind = Some(text.clone()),
            "key" => key = Some(text.clone()),
            "default" => default = Some(text.clone()),
            other => {
                return Err(ExperimentError::at(
                    field.line,
                    &format!("{path}.{other}"),
                    "unknown key (expected type, key, default)",
                ))
            }
        }
    }
    if kind.as_deref() != Some("env") {
        return Err(ExperimentError::at(
            line,
            &format!("{path}.type"),
            "must be `env` (the only source of a variable besides a literal)",
        ));
    }
    let Some(key) = key else {
        return Err(ExperimentError::at(
            line,
            &format!("{path}.key"),
            "missing: the environment variable to read",
        ));
    };
    env(&key).or(default).ok_or_else(|| {
        ExperimentError::at(
            line,
            path,
            format!("the environment variable `{key}` is not set and there is no default"),
        )
    })
}

/// Replaces `${name}` in every scalar under `node`.
pub fn substitute(node: &mut Node, vars: &Vars, path: &str) -> Result<(), ExperimentError> {
    let line = node.line;
    match &mut node.value {
        Value::Scalar { text, quoted } => {
            if text.contains("${") {
                // `"${rate}"` (quoted, as a flow map needs) is typed by
                // the variable's value, like an unquoted `${rate}`.
                let whole = text.starts_with("${")
                    && text.ends_with('}')
                    && text.matches("${").count() == 1;
                *text = expand(text, vars).map_err(|m| ExperimentError::at(line, path, m))?;
                if whole {
                    *quoted = false;
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, vars, &format!("{path}[{i}]"))?;
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                let child = if path.is_empty() {
                    entry.key.clone()
                } else {
                    format!("{path}.{}", entry.key)
                };
                substitute(&mut entry.value, vars, &child)?;
            }
        }
    }
    Ok(())
}

/// `text` with each `${name}` replaced.
pub fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => {
                return Err(format!(
                    "`${{{name}}}` is not defined: add it under `configuration` or pass --var {name}=VALUE"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
