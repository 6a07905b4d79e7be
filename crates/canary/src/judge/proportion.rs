//! Bad-out-of-total metrics: is the canary's bad proportion greater than
//! the baseline's over the same window?
//!
//! One-sided tests of H₀ "same proportion" against H₁ "canary higher":
//! - **Fisher's exact test** while any cell of the 2×2 table expects fewer
//!   than [`FISHER_BELOW_EXPECTED`] events under H₀. Conditioned on the
//!   margins, the canary's bad count is hypergeometric; the p-value is its
//!   upper tail. Exact whatever the counts, which matters here: errors are
//!   rare (a 0.1% error rate gives a handful of bad events per window) and
//!   the per-look significance is small (~1e-4), exactly where a normal
//!   approximation of a skewed count overstates significance.
//! - **Two-proportion z-test** (pooled variance, continuity correction)
//!   above that, where the normal tail is close enough even at 1e-4 (see
//!   [`FISHER_BELOW_EXPECTED`]) and the exact sum would need thousands of
//!   terms.
//!
//! A significant difference fails the canary only if it is also larger
//! than the configured floor (`min_effect`, absolute).

use super::config::ProportionConfig;
use super::format;
use super::math::{hypergeometric_sf, normal_sf};
use super::verdict::{JudgeError, Method, MetricKind, MetricVerdict, Side, Verdict};
use serde::{Deserialize, Serialize};

/// Fisher's exact test is used while the smallest expected cell of the
/// 2×2 table is below this; the z-test above. Cochran's classic rule says
/// 5, but that is for a two-sided 5% test: at the per-look levels used
/// here (~1e-4) the z-test's p-value for a count expecting 5 is about six
/// times too small (Fisher 5.8e-4, z 1.0e-4 for 15/1,000 vs 50/10,000).
/// At 1,000 expected it is within 1% for equal sides and about 20% too
/// small for a 1:19 split, which the Bonferroni slack absorbs.
pub const FISHER_BELOW_EXPECTED: f64 = 1000.0;

/// Bad events out of a total over one window on one side: 5xx out of
/// requests, or, for a higher-is-better ratio such as accuracy, wrong
/// answers out of rated ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counts {
    /// Bad events.
    pub bad: u64,
    /// All events, bad ones included.
    pub total: u64,
}

impl Counts {
    /// The bad ratio, `None` when there is no event.
    pub fn ratio(&self) -> Option<f64> {
        (self.total > 0).then(|| self.bad as f64 / self.total as f64)
    }

    pub(crate) fn check(&self, side: Side) -> Result<(), JudgeError> {
        if self.bad > self.total {
            return Err(JudgeError::BadAboveTotal {
                side,
                bad: self.bad,
                total: self.total,
            });
        }
        Ok(())
    }
}

/// Result of a one-sided two-proportion test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProportionTest {
    /// Fisher or z.
    pub method: Method,
    /// P(canary this much worse or more | same proportion).
    pub p_value: f64,
}

/// The smallest expected cell count of the 2×2 table under H₀.
fn min_expected_cell(canary: &Counts, baseline: &Counts) -> f64 {
    let n = (canary.total + baseline.total) as f64;
    let bad = (canary.bad + baseline.bad) as f64;
    let good = n - bad;
    let smaller_side = canary.total.min(baseline.total) as f64;
    smaller_side * bad.min(good) / n
}

/// One-sided test that the canary's bad proportion exceeds the
/// baseline's; Fisher or z by [`FISHER_BELOW_EXPECTED`]. Both sides must
/// be non-empty.
pub fn test_greater(canary: &Counts, baseline: &Counts) -> Result<ProportionTest, JudgeError> {
    canary.check(Side::Canary)?;
    baseline.check(Side::Baseline)?;
    if min_expected_cell(canary, baseline) < FISHER_BELOW_EXPECTED {
        Ok(ProportionTest {
            method: Method::FisherExact,
            p_value: fisher_exact_greater(canary, baseline),
        })
    } else {
        Ok(ProportionTest {
            method: Method::ZTest,
            p_value: z_test_greater(canary, baseline),
        })
    }
}

/// Fisher's exact test, one-sided: P(canary bad ≥ observed) given the
/// margins (all bad events, each side's total).
pub fn fisher_exact_greater(canary: &Counts, baseline: &Counts) -> f64 {
    let population = canary.total + baseline.total;
    let marked = canary.bad + baseline.bad;
    hypergeometric_sf(canary.bad, population, marked, canary.total)
}

/// Two-proportion z-test, one-sided, pooled variance, with Yates's
/// continuity correction `½(1/n₁ + 1/n₂)` subtracted from the difference.
/// 1 when either side is empty or no (or every) event is bad.
pub fn z_test_greater(canary: &Counts, baseline: &Counts) -> f64 {
    if canary.total == 0 || baseline.total == 0 {
        return 1.0;
    }
    let (n1, n2) = (canary.total as f64, baseline.total as f64);
    let pooled = (canary.bad + baseline.bad) as f64 / (n1 + n2);
    let inv = 1.0 / n1 + 1.0 / n2;
    let se = (pooled * (1.0 - pooled) * inv).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let diff = canary.bad as f64 / n1 - baseline.bad as f64 / n2;
    normal_sf((diff - 0.5 * inv) / se)
}

/// Judges one proportion metric at significance `alpha` (the per-look
/// level).
pub fn judge_proportion(
    name: &str,
    canary: &Counts,
    baseline: &Counts,
    alpha: f64,
    config: &ProportionConfig,
) -> Result<MetricVerdict, JudgeError> {
    canary.check(Side::Canary)?;
    baseline.check(Side::Baseline)?;
    let floor = config.min_effect;
    let mut verdict = MetricVerdict {
        name: name.to_owned(),
        kind: MetricKind::Proportion,
        verdict: Verdict::Inconclusive,
        method: None,
        p_value: None,
        significance: alpha,
        effect: None,
        min_effect: floor,
        common_language: None,
        n_canary: canary.total,
        n_baseline: baseline.total,
        evidence: String::new(),
    };
    let (Some(p1), Some(p2)) = (canary.ratio(), baseline.ratio()) else {
        verdict.evidence = format!("{}: no requests on one side yet", sides(canary, baseline));
        return Ok(verdict);
    };
    let diff = p1 - p2;
    verdict.effect = Some(diff);
    let shown = format!(
        "canary {} bad ({}/{}) vs baseline {} ({}/{})",
        format::percent(p1),
        canary.bad,
        canary.total,
        format::percent(p2),
        baseline.bad,
        baseline.total
    );
    if canary.total < config.min_samples || baseline.total < config.min_samples {
        verdict.evidence = format!(
            "{shown}: fewer than {} on a side, not tested yet",
            config.min_samples
        );
        return Ok(verdict);
    }

    let test = test_greater(canary, baseline)?;
    verdict.method = Some(test.method);
    verdict.p_value = Some(test.p_value);
    let p = format::p_value(test.p_value);
    let a = format::p_value(alpha);
    let (d, f) = (format::points(diff), format::floor_points(floor));
    let significant = test.p_value <= alpha;
    if significant && diff > floor {
        verdict.verdict = Verdict::Fail;
        verdict.evidence = format!("{shown}, p={p} ≤ α={a}, {d} > {f} floor");
        return Ok(verdict);
    }
    // Enough requests that a canary at `baseline + floor` would have shown
    // `min_expected_bad` bad events on average?
    let worst_tolerated = p2 + floor;
    if (canary.total as f64) * worst_tolerated < config.min_expected_bad {
        let needed = if worst_tolerated > 0.0 {
            format!("{:.0}", (config.min_expected_bad / worst_tolerated).ceil())
        } else {
            "more".to_owned()
        };
        verdict.evidence = format!(
            "{shown}, p={p}: too few canary requests to rule out {f} more bad (need {needed})"
        );
        return Ok(verdict);
    }
    verdict.verdict = Verdict::Pass;
    verdict.evidence = if significant {
        format!("{shown}, p={p} ≤ α={a} but {d} ≤ {f} floor")
    } else {
        format!("{shown}, p={p} > α={a} ({d})")
    };
    Ok(verdict)
}

fn sides(canary: &Counts, baseline: &Counts) -> String {
    format!(
        "canary {}/{} bad, baseline {}/{}",
        canary.bad, canary.total, baseline.bad, baseline.total
    )
}
