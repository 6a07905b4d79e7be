//! [`Objective`] and [`BurnRate`]: the two numbers the alert math is made of.
//!
//! Sloth writes objectives as percentages (`99.9`), OpenSLO as ratios
//! (`0.999`); both become one `Objective` strictly between 0 and 1, so the
//! error budget `1 - objective` is never zero (a 100% objective has no
//! budget to burn and would divide by zero) and never the whole range.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Objective(f64);

impl Objective {
    /// From a ratio in (0, 1), OpenSLO's `target`.
    pub fn from_ratio(ratio: f64) -> Result<Self, String> {
        if !ratio.is_finite() || ratio <= 0.0 || ratio >= 1.0 {
            return Err(format!(
                "target {ratio} must be a ratio above 0 and below 1, e.g. 0.999"
            ));
        }
        Ok(Self(ratio))
    }

    /// From a percentage in (0, 100), Sloth's `objective`.
    pub fn from_percent(percent: f64) -> Result<Self, String> {
        if !percent.is_finite() || percent <= 0.0 || percent >= 100.0 {
            return Err(format!(
                "objective {percent} must be a percentage above 0 and below 100, e.g. 99.9"
            ));
        }
        Ok(Self(percent / 100.0))
    }

    pub fn ratio(self) -> f64 {
        self.0
    }

    /// The share of events allowed to fail: `1 - objective`.
    pub fn error_budget(self) -> f64 {
        1.0 - self.0
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", crate::number(self.0 * 100.0))
    }
}

/// How fast the error budget burns: 1 spends exactly the budget over the
/// period, 14.4 spends a 30-day budget in ~2 days.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
pub struct BurnRate(f64);

impl BurnRate {
    /// The burn rate of an observed error ratio; a zero-traffic window (no
    /// ratio) burns nothing.
    pub fn of(error_ratio: Option<f64>, objective: Objective) -> Self {
        let ratio = error_ratio
            .filter(|r| r.is_finite())
            .unwrap_or(0.0)
            .max(0.0);
        Self(ratio / objective.error_budget())
    }

    pub fn factor(factor: f64) -> Self {
        Self(factor)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_ratio_agree() {
        let a = Objective::from_percent(99.9).expect("ok");
        let b = Objective::from_ratio(0.999).expect("ok");
        assert!((a.ratio() - b.ratio()).abs() < 1e-12);
        assert!((a.error_budget() - 0.001).abs() < 1e-12);
        assert_eq!(a.to_string(), "99.9%");
    }

    #[test]
    fn refuses_the_edges() {
        for bad in [0.0, 100.0, 100.5, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Objective::from_percent(bad).is_err(), "{bad}");
        }
        for bad in [0.0, 1.0, 1.5, -0.1] {
            assert!(Objective::from_ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn burn_rate_of_no_traffic_is_zero() {
        let o = Objective::from_ratio(0.99).expect("ok");
        assert_eq!(BurnRate::of(None, o).value(), 0.0);
        assert_eq!(BurnRate::of(Some(f64::NAN), o).value(), 0.0);
        assert!((BurnRate::of(Some(0.05), o).value() - 5.0).abs() < 1e-9);
    }
}
