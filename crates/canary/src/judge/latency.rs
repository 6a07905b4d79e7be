//! Latency metrics: is the canary slower than the baseline over the same
//! window?
//!
//! Two questions, both must say yes to fail:
//! - *is it slower at all?* Mann-Whitney U, one-sided, on the whole
//!   distribution (robust to the heavy tails of latency, no normality
//!   assumed);
//! - *is it slower by enough to matter?* the ratio of means (exact from a
//!   histogram's `_sum`/`_count`, or from a reservoir's running sum) must
//!   exceed `1 + min_effect`. With 10,000 requests a side a 2% slowdown is
//!   statistically certain; the floor is what lets it through.

use super::config::LatencyConfig;
use super::format;
use super::histogram::Histogram;
use super::mann_whitney::mann_whitney_greater;
use super::verdict::{JudgeError, Method, MetricKind, MetricVerdict, Side, Verdict};
use serde::{Deserialize, Serialize};

/// Exact latency observations of one side, in seconds: a uniform sample
/// of the window (for example a [`Reservoir`](super::Reservoir)'s
/// content) plus the exact count and sum of everything observed, for the
/// mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Samples {
    /// The sample: every observation, or a uniform subset of them.
    pub values: Vec<f64>,
    /// All observations of the window (≥ `values.len()`).
    pub count: u64,
    /// Sum of all observations of the window.
    pub sum: f64,
}

impl Samples {
    /// Every observation kept: `count` and `sum` from the values.
    pub fn from_values(values: Vec<f64>) -> Self {
        let sum = values.iter().sum();
        Self {
            count: values.len() as u64,
            sum,
            values,
        }
    }

    /// Exact mean over every observation, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    fn check(&self, side: Side) -> Result<(), JudgeError> {
        let problem = if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            format!("value {i} is {}", self.values[i])
        } else if self.count < self.values.len() as u64 {
            format!(
                "count {} is below the {} values",
                self.count,
                self.values.len()
            )
        } else if !self.sum.is_finite() {
            format!("sum is {}", self.sum)
        } else {
            return Ok(());
        };
        Err(JudgeError::BadSamples { side, problem })
    }
}

/// What both latency inputs boil down to.
struct Sides {
    canary: Vec<(f64, u64)>,
    baseline: Vec<(f64, u64)>,
    n_canary: u64,
    n_baseline: u64,
    mean_canary: Option<f64>,
    mean_baseline: Option<f64>,
}

/// Judges latency from two histogram deltas with the same buckets.
pub fn judge_latency_histograms(
    name: &str,
    canary: &Histogram,
    baseline: &Histogram,
    alpha: f64,
    config: &LatencyConfig,
) -> Result<MetricVerdict, JudgeError> {
    canary.check_same_bounds(baseline)?;
    let sides = Sides {
        canary: canary.ranked_buckets(),
        baseline: baseline.ranked_buckets(),
        n_canary: canary.count(),
        n_baseline: baseline.count(),
        mean_canary: canary.mean(),
        mean_baseline: baseline.mean(),
    };
    judge(name, sides, alpha, config)
}

/// Judges latency from exact samples. The rank test runs on the samples
/// (`n` = number of values); the effect uses the exact means.
pub fn judge_latency_samples(
    name: &str,
    canary: &Samples,
    baseline: &Samples,
    alpha: f64,
    config: &LatencyConfig,
) -> Result<MetricVerdict, JudgeError> {
    canary.check(Side::Canary)?;
    baseline.check(Side::Baseline)?;
    let weighted = |s: &Samples| s.values.iter().map(|&v| (v, 1)).collect::<Vec<_>>();
    let sides = Sides {
        canary: weighted(canary),
        baseline: weighted(baseline),
        n_canary: canary.values.len() as u64,
        n_baseline: baseline.values.len() as u64,
        mean_canary: canary.mean(),
        mean_baseline: baseline.mean(),
    };
    judge(name, sides, alpha, config)
}

fn judge(
    name: &str,
    sides: Sides,
    alpha: f64,
    config: &LatencyConfig,
) -> Result<MetricVerdict, JudgeError> {
    let floor = config.min_effect;
    let mut verdict = MetricVerdict {
        name: name.to_owned(),
        kind: MetricKind::Latency,
        verdict: Verdict::Inconclusive,
        method: None,
        p_value: None,
        significance: alpha,
        effect: None,
        min_effect: floor,
        common_language: None,
        n_canary: sides.n_canary,
        n_baseline: sides.n_baseline,
        evidence: String::new(),
    };
    let (Some(m1), Some(m2)) = (sides.mean_canary, sides.mean_baseline) else {
        verdict.evidence = format!(
            "canary n={} vs baseline n={}: no observations on one side yet",
            sides.n_canary, sides.n_baseline
        );
        return Ok(verdict);
    };
    let ratio = mean_ratio(m1, m2);
    verdict.effect = Some(ratio);
    let shown = format!(
        "canary mean {} (n={}) vs baseline {} (n={})",
        format::seconds(m1),
        sides.n_canary,
        format::seconds(m2),
        sides.n_baseline
    );
    if sides.n_canary < config.min_samples || sides.n_baseline < config.min_samples {
        verdict.evidence = format!(
            "{shown}: fewer than {} on a side, not tested yet",
            config.min_samples
        );
        return Ok(verdict);
    }

    let test = mann_whitney_greater(&sides.canary, &sides.baseline)?;
    verdict.method = Some(Method::MannWhitney);
    verdict.p_value = Some(test.p_value);
    verdict.common_language = Some(test.common_language);
    let p = format::p_value(test.p_value);
    let a = format::p_value(alpha);
    let limit = 1.0 + floor;
    let cl = format!("P(canary slower)={:.2}", test.common_language);
    let significant = test.p_value <= alpha;
    let (verdict_kind, why) = if significant && ratio > limit {
        (
            Verdict::Fail,
            format!("×{ratio:.3} > ×{limit:.2} floor, Mann-Whitney p={p} ≤ α={a}"),
        )
    } else if significant {
        (
            Verdict::Pass,
            format!("Mann-Whitney p={p} ≤ α={a} but ×{ratio:.3} ≤ ×{limit:.2} floor"),
        )
    } else {
        (
            Verdict::Pass,
            format!("×{ratio:.3}, Mann-Whitney p={p} > α={a}"),
        )
    };
    verdict.verdict = verdict_kind;
    verdict.evidence = format!("{shown}: {why}, {cl}");
    Ok(verdict)
}

/// Canary mean over baseline mean; a zero baseline mean makes any positive
/// canary mean infinitely slower, and two zeros equal.
fn mean_ratio(canary: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        canary / baseline
    } else if canary > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}
