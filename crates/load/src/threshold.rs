//! Thresholds, as k6 has them: `p(99) < 25ms` on a metric, optionally per
//! request name or scenario, evaluated at the end (and during the run for
//! `abort_on_fail`).
//!
//! STUB (interface fixed, bodies being written).

use crate::results::Results;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The key as written, e.g. `http_req_duration{name:redirect}`.
    pub key: String,
    /// The expression as written, e.g. `p(99) < 25ms`.
    pub expression: String,
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: not evaluated during the first this-long of
    /// the load phase.
    pub delay_abort_eval: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

impl Threshold {
    /// Parses `key` and `expression`; the error says what does not parse.
    pub fn parse(
        key: &str,
        expression: &str,
        abort_on_fail: bool,
        delay_abort_eval: Duration,
    ) -> Result<Self, ThresholdError> {
        Ok(Self {
            key: key.to_string(),
            expression: expression.to_string(),
            abort_on_fail,
            delay_abort_eval,
        })
    }

    /// Evaluates against what has been measured so far.
    pub fn evaluate(&self, results: &Results) -> Verdict {
        let _ = results;
        todo!("Threshold::evaluate")
    }
}

/// A threshold's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub key: String,
    pub expression: String,
    /// The metric's value in the expression's unit, formatted (`12.3ms`,
    /// `0.05%`, `0`); `None` when nothing matched the selector.
    pub observed: Option<String>,
    pub passed: bool,
}

/// Every threshold's verdict, in order.
pub fn evaluate_all(thresholds: &[Threshold], results: &Results) -> Vec<Verdict> {
    thresholds.iter().map(|t| t.evaluate(results)).collect()
}
