//! Scenario files: YAML in, a checked [`Plan`](crate::plan::Plan) out.
//!
//! A scenario file says what traffic to model (setup data, weighted
//! request mixes, key popularity, rates from daily active users) and what
//! must hold (thresholds). Everything is checked and compiled here, once,
//! so that the engine's hot path only renders templates and picks keys.
//!
//! Modules, from the file inwards:
//! - `file`: the format as serde structs; their docs are the user docs and
//!   the JSON Schema ([`json_schema`]) editors validate against;
//! - `values`: durations, rates, status ranges, an order-keeping map;
//! - `compile`, `executor` and `request`: defaults, rates, offsets,
//!   pools, refusals, each naming a line and a field;
//! - `dau`: rates derived from daily active users, and the printed
//!   arithmetic;
//! - `template`, `placeholder`, `escape`, `json`: `{{...}}` parsed once;
//!   rendering per request, escaped for URL, header or JSON;
//! - `state`: pools and the counter shared by every connection, and how a
//!   key is chosen (uniform, hot set, Zipf);
//! - `capture`, `check`: what is read from a response.

mod capture;
mod check;
mod compile;
pub mod dau;
mod escape;
mod executor;
mod file;
mod json;
mod placeholder;
mod request;
mod state;
mod template;
mod values;

pub use capture::{Capture, CaptureSource};
pub use check::{Check, CheckKind};
pub use compile::{DEFAULT_CONNECTIONS, DEFAULT_POOL_CAPACITY};
pub use escape::Escaping;
pub use json::JsonBody;
pub use request::DEFAULT_TIMEOUT;
pub use state::{KeyChoice, State};
pub use template::{EmptyPool, Render, Scope, Template, TemplateError};

use crate::plan::Plan;

/// What the file cannot say itself.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `{{target}}`: the `--target` URL (a trailing slash is dropped).
    pub target: Option<url::Url>,
}

/// A refusal that names where in the file to look.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {path}: {message}")]
pub struct ScenarioError {
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    /// Dotted path of the field, e.g. `scenarios.tight.rate`.
    pub path: String,
    pub message: String,
}

/// Parses and checks a scenario file; `{{env.NAME}}` reads the process
/// environment.
pub fn compile(text: &str, options: &CompileOptions) -> Result<Plan, ScenarioError> {
    compile::compile(text, options, &|name| std::env::var(name).ok())
}

/// [`compile`] with `{{env.NAME}}` read from `env` (tests, or a caller
/// that keeps secrets elsewhere).
pub fn compile_with_env(
    text: &str,
    options: &CompileOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ScenarioError> {
    compile::compile(text, options, env)
}

/// The JSON Schema of the file format, for editors.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(file::ScenarioFile).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/scenario.schema.json"
    );

    /// The checked-in schema is what editors load; it must not drift from
    /// the code. `UPDATE_SCHEMA=1 cargo test -p reliable-load schema`
    /// rewrites it.
    #[test]
    fn the_checked_in_schema_matches_the_code() {
        if let Err(stale) = yamlspec::check_schema_file(
            SCHEMA_FILE.as_ref(),
            &json_schema(),
            "cargo test -p reliable-load schema",
        ) {
            panic!("{stale}");
        }
    }
}
