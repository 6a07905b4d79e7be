//! Repeated looks, and the [`Judge`] that takes them.
//!
//! The controller judges every few seconds on a growing window and stops
//! at the first fail. Each look at significance α can fail a good canary
//! with probability α, so K looks at α would fail one with probability up
//! to Kα: 90 looks at 5% fail almost every good canary at some point.
//!
//! The judge therefore runs each test at `α / (looks × metrics)`
//! (Bonferroni). Why not a Pocock-like constant boundary, which is less
//! conservative? Pocock's constant is computed for K equally informative
//! looks at a normally distributed statistic; here the information per
//! look changes sixteen-fold between rollout steps (5% to 80% of
//! traffic), error counts are small and discrete (Fisher's test), and
//! several metrics are tested at once. The union bound holds whatever the
//! spacing, the dependence between looks or the test, so the promised
//! false-failure rate is an upper bound, never an estimate. Its cost is
//! small where it matters: the p-value of a real regression falls
//! exponentially with samples, so a stricter level delays a fail by a
//! look or two (see the crate's power tests), while the A/A tests measure
//! the false-failure rate well below the bound (looks on growing windows
//! are strongly correlated).

use super::config::{ConfigError, JudgeConfig, MetricWeight};
use super::histogram::Histogram;
use super::latency::{judge_latency_histograms, judge_latency_samples, Samples};
use super::proportion::{judge_proportion, Counts};
use super::scoring::{score, Judgement, ScoredMetric};
use super::verdict::{JudgeError, MetricVerdict};

/// The significance of each single test so that the whole run (every look
/// at every metric) fails a good canary with probability at most
/// `significance`: `significance / (planned_looks × metrics)`.
///
/// Count every look the controller may take, across all steps and
/// including those a step may add before it times out: a run that looks
/// more often than planned loses the guarantee.
pub fn per_look_significance(
    significance: f64,
    planned_looks: u32,
    metrics: u32,
) -> Result<f64, ConfigError> {
    if !(significance > 0.0 && significance < 0.5) {
        return Err(ConfigError::OutOfRange {
            field: "significance",
            value: significance.to_string(),
            expected: "between 0 and 0.5 (exclusive)",
        });
    }
    for (field, value) in [("planned_looks", planned_looks), ("metrics", metrics)] {
        if value == 0 {
            return Err(ConfigError::OutOfRange {
                field,
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
    }
    Ok(significance / (f64::from(planned_looks) * f64::from(metrics)))
}

/// One metric's data over the window, both sides.
#[derive(Debug, Clone, Copy)]
pub enum MetricData<'a> {
    /// Bad events out of a total.
    Proportion {
        /// The canary's counts.
        canary: &'a Counts,
        /// The baseline's counts over the same window.
        baseline: &'a Counts,
    },
    /// Latency histogram deltas with the same buckets.
    LatencyHistogram {
        /// The canary's histogram.
        canary: &'a Histogram,
        /// The baseline's histogram over the same window.
        baseline: &'a Histogram,
    },
    /// Exact latency samples.
    LatencySamples {
        /// The canary's samples.
        canary: &'a Samples,
        /// The baseline's samples over the same window.
        baseline: &'a Samples,
    },
}

/// A metric to judge: its name, weight and data.
#[derive(Debug, Clone, Copy)]
pub struct MetricInput<'a> {
    /// The metric's name (shown in evidence).
    pub name: &'a str,
    /// Weight and criticality in the score.
    pub weight: MetricWeight,
    /// The window's data.
    pub data: MetricData<'a>,
}

/// A validated configuration and the per-look significance of one
/// planned rollout.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    alpha: f64,
}

impl Judge {
    /// Validates `config` and divides its significance among
    /// `planned_looks × metrics` tests.
    pub fn new(config: JudgeConfig, planned_looks: u32, metrics: u32) -> Result<Self, ConfigError> {
        config.validate()?;
        let alpha = per_look_significance(config.significance, planned_looks, metrics)?;
        Ok(Self { config, alpha })
    }

    /// The configuration.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// The significance each test runs at.
    pub fn per_look_significance(&self) -> f64 {
        self.alpha
    }

    /// Judges one metric.
    pub fn metric(&self, name: &str, data: MetricData<'_>) -> Result<MetricVerdict, JudgeError> {
        let c = &self.config;
        match data {
            MetricData::Proportion { canary, baseline } => {
                judge_proportion(name, canary, baseline, self.alpha, &c.proportion)
            }
            MetricData::LatencyHistogram { canary, baseline } => {
                judge_latency_histograms(name, canary, baseline, self.alpha, &c.latency)
            }
            MetricData::LatencySamples { canary, baseline } => {
                judge_latency_samples(name, canary, baseline, self.alpha, &c.latency)
            }
        }
    }

    /// Judges every metric and scores them into one verdict.
    pub fn judge(&self, metrics: &[MetricInput<'_>]) -> Result<Judgement, JudgeError> {
        let scored = metrics
            .iter()
            .map(|m| {
                Ok(ScoredMetric {
                    metric: self.metric(m.name, m.data)?,
                    weight: m.weight,
                })
            })
            .collect::<Result<Vec<_>, JudgeError>>()?;
        score(scored, &self.config.scoring)
    }
}
