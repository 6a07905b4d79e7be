//! The SLO guard: a canary whose own error rate would page the on-call is
//! stopped without waiting for a comparison with the baseline.
//!
//! The canary's burn rate is estimated conservatively: the lower end of
//! the 95% Wilson score interval of its bad ratio, divided by the error
//! budget `1 - objective`. With that bound a handful of requests cannot
//! trip the guard by bad luck (one error in the first ten requests is a
//! 10% error rate, but its lower bound is far below a page), while a
//! canary failing 5% of requests against a 99.9% SLO (burn rate 50)
//! trips it within about sixty requests.

use super::config::SloGuardConfig;
use super::format;
use super::math::wilson_lower;
use super::proportion::Counts;
use super::verdict::{JudgeError, Side};
use serde::Serialize;

/// Normal quantile of the Wilson bound: 1.96, the 95% two-sided interval
/// (so a 97.5% one-sided lower bound).
pub const GUARD_Z: f64 = 1.96;

/// Why the guard tripped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardTrip {
    /// The canary's counts over the window.
    pub counts: Counts,
    /// Lower confidence bound of the canary's bad ratio.
    pub bad_ratio_lower: f64,
    /// That bound as a burn rate: `bad_ratio_lower / (1 - objective)`.
    pub burn_rate_lower: f64,
    /// One line for people.
    pub evidence: String,
}

impl SloGuardConfig {
    /// `Some` when the canary's burn rate, even at its lower confidence
    /// bound, reaches the paging burn rate. The configuration is assumed
    /// valid ([`SloGuardConfig::validate`]).
    pub fn check(&self, canary: &Counts) -> Result<Option<GuardTrip>, JudgeError> {
        canary.check(Side::Canary)?;
        if canary.total < self.min_total {
            return Ok(None);
        }
        let budget = 1.0 - self.objective;
        let lower = wilson_lower(canary.bad, canary.total, GUARD_Z);
        let burn = lower / budget;
        if burn < self.page_burn_rate {
            return Ok(None);
        }
        let observed = canary.bad as f64 / canary.total as f64;
        let evidence = format!(
            "canary {} bad ({}/{}), at least {} (95% Wilson): burn rate ≥ {:.1} against a {} SLO, pages at {}",
            format::percent(observed),
            canary.bad,
            canary.total,
            format::percent(lower),
            burn,
            format::percent(self.objective),
            self.page_burn_rate
        );
        Ok(Some(GuardTrip {
            counts: *canary,
            bad_ratio_lower: lower,
            burn_rate_lower: burn,
            evidence,
        }))
    }
}

/// The guard as one call: `objective` such as 0.999, `page_burn_rate` such
/// as 14.4, and no trip below `min_total` canary requests.
pub fn slo_guard(
    canary: &Counts,
    objective: f64,
    page_burn_rate: f64,
    min_total: u64,
) -> Result<Option<GuardTrip>, JudgeError> {
    let config = SloGuardConfig {
        objective,
        page_burn_rate,
        min_total,
    };
    config.validate().map_err(JudgeError::Config)?;
    config.check(canary)
}
