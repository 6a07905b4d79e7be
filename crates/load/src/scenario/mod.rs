//! Scenario files: YAML in, a checked [`Plan`](crate::plan::Plan) out.
//!
//! STUB (interface fixed, bodies being written): the file format, the
//! placeholders, pools and key choice, captures, checks and the DAU helper.

mod capture;
mod check;
mod state;
mod template;

pub use capture::{Capture, CaptureSource};
pub use check::{Check, CheckKind};
pub use state::{KeyChoice, State};
pub use template::{EmptyPool, Render, Template};

use crate::plan::Plan;

/// What the file cannot say itself.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `{{target}}`: the `--target` URL, without a trailing slash.
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

/// Parses and checks a scenario file.
pub fn compile(text: &str, options: &CompileOptions) -> Result<Plan, ScenarioError> {
    let _ = (text, options);
    todo!("scenario::compile")
}

/// The JSON Schema of the file format, for editors.
pub fn json_schema() -> serde_json::Value {
    todo!("scenario::json_schema")
}
