//! What the judge says about one metric, and the errors it can return.

use super::histogram::HistogramError;
use super::mann_whitney::RankTestError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Outcome of a judgement, per metric and overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No evidence that the canary is worse by more than the floor.
    Pass,
    /// The canary is significantly worse, by more than the floor.
    Fail,
    /// Not enough data yet (or, overall, a marginal score).
    Inconclusive,
}

impl Verdict {
    /// `pass`, `fail` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which comparison a metric gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Bad events out of a total (errors, SLO-violating requests, wrong
    /// answers).
    Proportion,
    /// A latency distribution.
    Latency,
}

/// The test that produced a p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Fisher's exact test (hypergeometric tail), for small counts.
    FisherExact,
    /// Two-proportion z-test with continuity correction, for large counts.
    ZTest,
    /// Mann-Whitney U, tie-corrected normal approximation.
    MannWhitney,
}

/// Canary or baseline, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The new version.
    Canary,
    /// The version it replaces, over the same window.
    Baseline,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Canary => "canary",
            Side::Baseline => "baseline",
        })
    }
}

/// The judgement of one metric: the verdict and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricVerdict {
    /// The metric's name, as configured.
    pub name: String,
    /// Proportion or latency.
    pub kind: MetricKind,
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// The test used; `None` when there were too few samples to test.
    pub method: Option<Method>,
    /// One-sided p-value ("canary worse"); `None` when not tested.
    pub p_value: Option<f64>,
    /// The significance level this look used (already divided among looks
    /// and metrics).
    pub significance: f64,
    /// Observed effect: for a proportion, canary minus baseline bad ratio
    /// (0.051 = +5.1 percentage points); for latency, canary mean over
    /// baseline mean (1.25 = 25% slower). `None` when a side is empty.
    pub effect: Option<f64>,
    /// The effect floor: a fail needs `effect > min_effect` (proportion)
    /// or `effect > 1 + min_effect` (latency).
    pub min_effect: f64,
    /// Latency only: P(canary observation > baseline observation), ties
    /// half (U / n₁n₂).
    pub common_language: Option<f64>,
    /// Observations on the canary side.
    pub n_canary: u64,
    /// Observations on the baseline side.
    pub n_baseline: u64,
    /// One line for people: what was compared and why this verdict.
    pub evidence: String,
}

/// Inputs the judge refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    /// More bad events than events.
    #[error("{side} counts: {bad} bad out of {total}")]
    BadAboveTotal {
        /// Which side.
        side: Side,
        /// Bad events.
        bad: u64,
        /// All events.
        total: u64,
    },
    /// A histogram problem (different buckets on the two sides, ...).
    #[error("{0}")]
    Histogram(#[from] HistogramError),
    /// A sample set that is not a sample: NaN or infinite values, a
    /// `count` below the number of values, a non-finite `sum`.
    #[error("{side} samples: {problem}")]
    BadSamples {
        /// Which side.
        side: Side,
        /// What is wrong.
        problem: String,
    },
    /// The rank test refused its input.
    #[error("{0}")]
    RankTest(#[from] RankTestError),
    /// A metric weight out of range.
    #[error("metric {name}: {source}")]
    Weight {
        /// The metric.
        name: String,
        /// What is wrong.
        source: super::config::ConfigError,
    },
    /// A setting out of range (the one-call SLO guard, per-look
    /// significance).
    #[error("{0}")]
    Config(#[from] super::config::ConfigError),
    /// `judge` was called with no metric.
    #[error("no metric to judge")]
    NoMetrics,
}
