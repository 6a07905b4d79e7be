//! The judge's settings. The `///` docs of these fields are the user
//! documentation of the `canary.judge` configuration section; every
//! struct refuses unknown keys so that a typo is an error, not a default.

use serde::{Deserialize, Serialize};

/// A setting outside its allowed range, named by its path in the
/// configuration (`scoring.marginal`, `latency.min_effect`, ...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// One value out of range.
    #[error("{field} = {value}: must be {expected}")]
    OutOfRange {
        /// Path of the setting.
        field: &'static str,
        /// The value given, as written.
        value: String,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// The marginal score must not be above the pass score.
    #[error("scoring.marginal = {marginal} is above scoring.pass = {pass}: must be at most the pass score")]
    MarginalAbovePass {
        /// `scoring.marginal`.
        marginal: f64,
        /// `scoring.pass`.
        pass: f64,
    },
}

fn out_of_range(field: &'static str, value: impl ToString, expected: &'static str) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: value.to_string(),
        expected,
    }
}

/// Checks `lo < value < hi` (open interval), refusing NaN.
fn open_interval(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if value > lo && value < hi {
        Ok(())
    } else {
        Err(out_of_range(field, value, expected))
    }
}

/// Checks a finite, non-negative value.
fn non_negative(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(out_of_range(field, value, "a finite number ≥ 0"))
    }
}

/// How the judge compares a canary with its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Probability of failing a canary that is in fact as good as the
    /// baseline, over the whole rollout: every look at every metric. The
    /// judge divides it among the planned looks and metrics (Bonferroni),
    /// so each single test runs at a much smaller level. Between 0 and 0.5
    /// exclusive; default 0.05.
    pub significance: f64,
    /// Metrics counted as bad events out of a total: errors (5xx out of
    /// requests), SLO-violating latency, wrong answers out of rated ones.
    pub proportion: ProportionConfig,
    /// Latency distributions (histograms or exact samples).
    pub latency: LatencyConfig,
    /// How metric verdicts combine into one.
    pub scoring: ScoringConfig,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            significance: 0.05,
            proportion: ProportionConfig::default(),
            latency: LatencyConfig::default(),
            scoring: ScoringConfig::default(),
        }
    }
}

impl JudgeConfig {
    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        open_interval(
            "significance",
            self.significance,
            0.0,
            0.5,
            "between 0 and 0.5 (exclusive)",
        )?;
        self.proportion.validate()?;
        self.latency.validate()?;
        self.scoring.validate()
    }
}

/// Settings for bad-out-of-total metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProportionConfig {
    /// Smallest increase of the canary's bad proportion over the
    /// baseline's that can fail it, as an absolute fraction: 0.001 is 0.1
    /// percentage point. A smaller increase passes even when it is
    /// statistically certain. Set it to the extra bad ratio you could live
    /// with at 100% rollout: for an SLO, a fraction of the error budget
    /// `1 - objective` (the default 0.001 is the whole budget of a 99.9%
    /// SLO: the release may at most double such a service's burn rate).
    /// Between 0 and 1; default 0.001.
    pub min_effect: f64,
    /// Fewer requests than this on either side: inconclusive. Default 50.
    pub min_samples: u64,
    /// A canary can pass only once it has seen enough requests that a
    /// bad proportion of `baseline + min_effect` would have produced this
    /// many bad events on average: with 3 (the "rule of three"), a clean
    /// canary has shown with 95% confidence that it is not worse than the
    /// floor. Failing needs only `min_samples`. 0 turns the rule off;
    /// default 3.
    pub min_expected_bad: f64,
}

impl Default for ProportionConfig {
    fn default() -> Self {
        Self {
            min_effect: 0.001,
            min_samples: 50,
            min_expected_bad: 3.0,
        }
    }
}

impl ProportionConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.min_effect) {
            return Err(out_of_range(
                "proportion.min_effect",
                self.min_effect,
                "at least 0 and below 1",
            ));
        }
        if self.min_samples == 0 {
            return Err(out_of_range("proportion.min_samples", 0, "at least 1"));
        }
        non_negative("proportion.min_expected_bad", self.min_expected_bad)
    }
}

/// Settings for latency metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Smallest relative slowdown of the mean that can fail the canary:
    /// 0.10 fails only a canary whose mean latency is more than 10% above
    /// the baseline's (and significantly so). With thousands of requests a
    /// 1% slowdown is statistically certain; this floor is what lets it
    /// pass. Set it to the slowdown you would accept in a release. At
    /// least 0; default 0.10.
    pub min_effect: f64,
    /// Fewer observations than this on either side: inconclusive. At
    /// least 2; default 50.
    pub min_samples: u64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            min_effect: 0.10,
            min_samples: 50,
        }
    }
}

impl LatencyConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("latency.min_effect", self.min_effect)?;
        if self.min_samples < 2 {
            return Err(out_of_range(
                "latency.min_samples",
                self.min_samples,
                "at least 2",
            ));
        }
        Ok(())
    }
}

/// Kayenta-style scoring: `score = 100 × weight of passing metrics /
/// weight of judged metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// A score at or above this passes. 0 to 100; default 95.
    pub pass: f64,
    /// A score below this fails; between `marginal` and `pass` the run is
    /// inconclusive (marginal). 0 to `pass`; default 75.
    pub marginal: f64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

impl ScoringConfig {
    /// Checks both thresholds are in 0..=100 and `marginal ≤ pass`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("scoring.pass", self.pass),
            ("scoring.marginal", self.marginal),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(out_of_range(field, value, "between 0 and 100"));
            }
        }
        if self.marginal > self.pass {
            return Err(ConfigError::MarginalAbovePass {
                marginal: self.marginal,
                pass: self.pass,
            });
        }
        Ok(())
    }
}

/// How much one metric counts in the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricWeight {
    /// Relative weight in the score. Greater than 0; default 1.
    pub weight: f64,
    /// A critical metric that fails fails the canary, whatever the score.
    /// Default false.
    pub critical: bool,
}

impl Default for MetricWeight {
    fn default() -> Self {
        Self {
            weight: 1.0,
            critical: false,
        }
    }
}

impl MetricWeight {
    /// Checks the weight is finite and positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.weight.is_finite() && self.weight > 0.0 {
            Ok(())
        } else {
            Err(out_of_range("weight", self.weight, "a finite number > 0"))
        }
    }
}

/// The SLO guard: stop a canary whose own burn rate would page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloGuardConfig {
    /// The SLO's objective as a fraction: 0.999 for 99.9%. Between 0 and 1
    /// exclusive; default 0.999.
    pub objective: f64,
    /// Burn rate that pages (14.4: 2% of a 30-day budget in one hour).
    /// The guard trips when even a conservative (95% Wilson lower bound)
    /// estimate of the canary's burn rate reaches it. Greater than 0;
    /// default 14.4.
    pub page_burn_rate: f64,
    /// The guard never trips on fewer canary requests than this. At least
    /// 1; default 50.
    pub min_total: u64,
}

impl Default for SloGuardConfig {
    fn default() -> Self {
        Self {
            objective: 0.999,
            page_burn_rate: 14.4,
            min_total: 50,
        }
    }
}

impl SloGuardConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        open_interval(
            "slo_guard.objective",
            self.objective,
            0.0,
            1.0,
            "between 0 and 1 (exclusive)",
        )?;
        if !(self.page_burn_rate.is_finite() && self.page_burn_rate > 0.0) {
            return Err(out_of_range(
                "slo_guard.page_burn_rate",
                self.page_burn_rate,
                "a finite number > 0",
            ));
        }
        if self.min_total == 0 {
            return Err(out_of_range("slo_guard.min_total", 0, "at least 1"));
        }
        Ok(())
    }
}
