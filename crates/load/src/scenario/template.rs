//! Request templates: text with `{{...}}` placeholders, parsed once.
//!
//! A template is compiled into parts when the file is read: everything
//! the file decides (`{{target}}`, `{{vars.X}}`, `{{env.X}}`) is
//! substituted then, into literal text, so sending a request only copies
//! literals and fills the run-time placeholders (pools, counter, uuid,
//! random values). Rendering appends to a buffer the caller reuses; it
//! allocates nothing else. A template without run-time placeholders is a
//! literal ([`Template::as_literal`]) and the engine builds it once.

use super::escape::Escaping;
use super::json::JsonBody;
use super::placeholder::{self, Placeholder, PoolPick};
use super::state::{KeyChoice, State};
use crate::plan::{PoolId, PoolSpec};
use rand::distr::Alphanumeric;
use rand::Rng;
use std::collections::BTreeMap;
use std::io::Write;

/// A parsed template. Rendering never fails except on an empty pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Adjacent literals are merged, so a literal template is one part.
    parts: Vec<Part>,
    escaping: Escaping,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Already escaped for the template's context.
    Literal(String),
    Pick {
        pool: PoolId,
        choice: KeyChoice,
    },
    Take {
        pool: PoolId,
    },
    Counter,
    Uuid,
    RandomInt {
        min: i64,
        max: i64,
    },
    RandomString {
        len: usize,
    },
}

/// What rendering reads and changes.
pub struct Render<'a> {
    pub state: &'a State,
    pub rng: &'a mut rand::rngs::SmallRng,
}

/// A placeholder picks from a pool that is empty right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool `{pool}` is empty")]
pub struct EmptyPool {
    pub pool: String,
}

/// What the compile-time placeholders resolve against.
pub struct Scope<'a> {
    /// `{{target}}`, without a trailing slash; `None` makes it an error.
    pub target: Option<&'a str>,
    pub vars: &'a BTreeMap<String, String>,
    /// `{{env.NAME}}`: read when the file is compiled.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// A pool placeholder's name must be one of these.
    pub pools: &'a [PoolSpec],
}

/// A placeholder that does not parse or names something that does not
/// exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("placeholder `{placeholder}`: {message}")]
pub struct TemplateError {
    /// The placeholder as written, braces included.
    pub placeholder: String,
    pub message: String,
}

impl Template {
    /// A template without placeholders.
    pub fn literal(text: impl Into<String>) -> Self {
        Self {
            parts: vec![Part::Literal(text.into())],
            escaping: Escaping::Plain,
        }
    }

    /// Parses `text`, substituting the file's own placeholders now.
    pub fn parse(text: &str, escaping: Escaping, scope: &Scope<'_>) -> Result<Self, TemplateError> {
        let mut template = Self {
            parts: Vec::new(),
            escaping,
        };
        template.push_text(text, scope)?;
        Ok(template)
    }

    /// A `json:` body: compact JSON text, placeholders allowed inside
    /// strings (keys included), their values JSON-escaped.
    pub fn json(body: &JsonBody, scope: &Scope<'_>) -> Result<Self, TemplateError> {
        let mut template = Self {
            parts: Vec::new(),
            escaping: Escaping::JsonString,
        };
        template.push_json(body, scope)?;
        Ok(template)
    }

    /// The text, when the template has no placeholders (the engine then
    /// builds the value once).
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The literal text before the first run-time placeholder.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    /// The pools this template reads or takes from.
    pub fn pools(&self) -> impl Iterator<Item = PoolId> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Pick { pool, .. } | Part::Take { pool } => Some(*pool),
            _ => None,
        })
    }

    pub fn escaping(&self) -> Escaping {
        self.escaping
    }

    /// Appends the rendered text to `out`. On an empty pool, `out` is
    /// left as it was (values already removed by an earlier `| take` in
    /// the same template stay removed).
    pub fn render(&self, ctx: &mut Render<'_>, out: &mut Vec<u8>) -> Result<(), EmptyPool> {
        let start = out.len();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Pick { pool, choice } => match ctx.state.pick(*pool, choice, ctx.rng) {
                    Some(value) => self.escaping.dynamic(&value, out),
                    None => return Err(empty(ctx.state, *pool, out, start)),
                },
                Part::Take { pool } => match ctx.state.take(*pool) {
                    Some(value) => self.escaping.dynamic(&value, out),
                    None => return Err(empty(ctx.state, *pool, out, start)),
                },
                // Writing a number into a Vec cannot fail.
                Part::Counter => {
                    let _ = write!(out, "{}", ctx.state.next_counter());
                }
                Part::RandomInt { min, max } => {
                    let _ = write!(out, "{}", ctx.rng.random_range(*min..=*max));
                }
                Part::RandomString { len } => {
                    out.extend((0..*len).map(|_| ctx.rng.sample(Alphanumeric)));
                }
                Part::Uuid => write_uuid_v4(ctx.rng.random(), out),
            }
        }
        Ok(())
    }

    fn push_literal(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut escaped = String::new();
        self.escaping.static_text(text, &mut escaped);
        match self.parts.last_mut() {
            Some(Part::Literal(previous)) => previous.push_str(&escaped),
            _ => self.parts.push(Part::Literal(escaped)),
        }
    }

    /// Scans `text` for placeholders; `{{` always opens one.
    fn push_text(&mut self, text: &str, scope: &Scope<'_>) -> Result<(), TemplateError> {
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            self.push_literal(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                let shown: String = rest[open..].chars().take(40).collect();
                return Err(TemplateError {
                    placeholder: shown,
                    message: "`{{` without a closing `}}`".into(),
                });
            };
            let written = &rest[open..open + 2 + close + 2];
            self.push_placeholder(&after[..close], scope)
                .map_err(|message| TemplateError {
                    placeholder: written.to_string(),
                    message,
                })?;
            rest = &after[close + 2..];
        }
        self.push_literal(rest);
        Ok(())
    }

    fn push_placeholder(&mut self, expr: &str, scope: &Scope<'_>) -> Result<(), String> {
        let part = match placeholder::parse(expr)? {
            Placeholder::Target => {
                let target = scope
                    .target
                    .ok_or("no target to substitute: give --target (the URL the requests go to)")?;
                self.push_literal(target);
                return Ok(());
            }
            Placeholder::Var(name) => {
                let value = scope.vars.get(name).ok_or_else(|| {
                    let known: Vec<&str> = scope.vars.keys().map(String::as_str).collect();
                    format!(
                        "no var named `{name}` under `vars:` (known: {})",
                        list(&known)
                    )
                })?;
                self.push_literal(value);
                return Ok(());
            }
            Placeholder::Env(name) => {
                let value = (scope.env)(name)
                    .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
                self.push_literal(&value);
                return Ok(());
            }
            Placeholder::Pool { name, pick } => {
                let pool = scope
                    .pools
                    .iter()
                    .position(|p| p.name == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            scope.pools.iter().map(|p| p.name.as_str()).collect();
                        format!(
                            "no pool named `{name}`; a pool is declared under `pools:` or by a \
                             capture (known: {})",
                            list(&known)
                        )
                    })?;
                match pick {
                    PoolPick::Choose(choice) => Part::Pick { pool, choice },
                    PoolPick::Take => Part::Take { pool },
                }
            }
            Placeholder::Counter => Part::Counter,
            Placeholder::Uuid => Part::Uuid,
            Placeholder::RandomInt { min, max } => Part::RandomInt { min, max },
            Placeholder::RandomString { len } => Part::RandomString { len },
        };
        self.parts.push(part);
        Ok(())
    }

    fn push_json(&mut self, body: &JsonBody, scope: &Scope<'_>) -> Result<(), TemplateError> {
        // Structure is pushed as raw parts: `push_literal` would escape it.
        match body {
            JsonBody::Null => self.push_raw("null"),
            JsonBody::Bool(value) => self.push_raw(if *value { "true" } else { "false" }),
            JsonBody::Number(number) => self.push_raw(&number.to_string()),
            JsonBody::String(text) => {
                self.push_raw("\"");
                self.push_text(text, scope)?;
                self.push_raw("\"");
            }
            JsonBody::Array(items) => {
                self.push_raw("[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push_raw(",");
                    }
                    self.push_json(item, scope)?;
                }
                self.push_raw("]");
            }
            JsonBody::Object(entries) => {
                self.push_raw("{");
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.push_raw(",");
                    }
                    self.push_json(&JsonBody::String(key.clone()), scope)?;
                    self.push_raw(":");
                    self.push_json(value, scope)?;
                }
                self.push_raw("}");
            }
        }
        Ok(())
    }

    /// Text that is already in its final form (JSON structure).
    fn push_raw(&mut self, text: &str) {
        match self.parts.last_mut() {
            Some(Part::Literal(previous)) => previous.push_str(text),
            _ => self.parts.push(Part::Literal(text.to_string())),
        }
    }
}

fn empty(state: &State, pool: PoolId, out: &mut Vec<u8>, start: usize) -> EmptyPool {
    out.truncate(start);
    EmptyPool {
        pool: state.pool_name(pool).to_string(),
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// RFC 9562 version 4: random bits with the version and variant set.
fn write_uuid_v4(mut bytes: [u8; 16], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
