//! Errors: [`SpecError`] for callers, and the error serde sees while
//! walking, which takes the line and path of the innermost node it left.

use crate::YamlError;
use serde::de;
use std::fmt::{self, Display, Write as _};

/// A spec that does not read: where (line, field path) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {}{message}", path_prefix(.path))]
pub struct SpecError {
    /// 1-based line of the offending key or value (0: the whole file).
    pub line: usize,
    /// Dotted field path, list items as `requests[2]`: `scenarios.tight.rate`.
    /// Empty for the document itself and for YAML syntax errors.
    pub path: String,
    pub message: String,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl From<YamlError> for SpecError {
    fn from(e: YamlError) -> Self {
        Self {
            line: e.line,
            path: String::new(),
            message: e.message,
        }
    }
}

/// The error serde sees while walking; gets its place on the way out.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(super) message: String,
    pub(super) location: Option<(usize, String)>,
}

impl DeError {
    /// Records where the error happened, unless a deeper node already did.
    pub(super) fn locate(mut self, line: usize, path: &Path<'_>) -> Self {
        if self.location.is_none() {
            self.location = Some((line, path.to_string()));
        }
        self
    }
}

impl Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            location: None,
        }
    }
}

/// How a node was reached from the document root.
#[derive(Clone, Copy)]
pub(super) enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render(&mut out);
        f.write_str(&out)
    }
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.render(out);
                let _ = write!(out, "[{index}]");
            }
        }
    }
}
