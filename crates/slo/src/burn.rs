//! Multiwindow, multi-burn-rate alerting after the Google SRE Workbook
//! ("Alerting on SLOs", approach 6).
//!
//! Each alert pairs a long window (is enough budget being spent to matter?)
//! with a short one (is it still being spent now?), so an alert fires fast
//! on a real burn and resets soon after it stops. The thresholds are not
//! constants: each pair is allowed to spend a share of the period's budget
//! within its long window, so `factor = share * period / long window`. For
//! 30 days that gives the Workbook's 14.4, 6, 3 and 1; for 28 days 13.44,
//! 5.6, 2.8 and 0.933.

use crate::objective::BurnRate;
use crate::window::Window;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Look at it during working hours.
    Ticket,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        })
    }
}

/// One (long, short) window pair and the budget share it may burn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowPair {
    pub severity: Severity,
    pub long: Window,
    pub short: Window,
    pub budget_share: f64,
}

impl WindowPair {
    /// The burn rate both windows must exceed.
    pub fn factor(&self, period: Window) -> BurnRate {
        BurnRate::factor(self.budget_share * period.as_secs_f64() / self.long.as_secs_f64())
    }
}

/// The four pairs: two page, two ticket.
pub const WINDOW_PAIRS: [WindowPair; 4] = [
    WindowPair {
        severity: Severity::Page,
        long: Window::hours(1),
        short: Window::minutes(5),
        budget_share: 0.02,
    },
    WindowPair {
        severity: Severity::Page,
        long: Window::hours(6),
        short: Window::minutes(30),
        budget_share: 0.05,
    },
    WindowPair {
        severity: Severity::Ticket,
        long: Window::days(1),
        short: Window::hours(2),
        budget_share: 0.10,
    },
    WindowPair {
        severity: Severity::Ticket,
        long: Window::days(3),
        short: Window::hours(6),
        budget_share: 0.10,
    },
];

/// Every window an alert reads, shortest first.
pub const ALERT_WINDOWS: [Window; 7] = [
    Window::minutes(5),
    Window::minutes(30),
    Window::hours(1),
    Window::hours(2),
    Window::hours(6),
    Window::days(1),
    Window::days(3),
];

/// The pairs of one severity.
pub fn pairs(severity: Severity) -> impl Iterator<Item = &'static WindowPair> {
    WINDOW_PAIRS.iter().filter(move |p| p.severity == severity)
}

/// Whether an alert of this severity fires, given the burn rate over each
/// window (`burn(window)`). Both windows of a pair must exceed its factor.
pub fn fires(severity: Severity, period: Window, burn: impl Fn(Window) -> BurnRate) -> bool {
    pairs(severity).any(|p| {
        let factor = p.factor(period).value();
        burn(p.long).value() > factor && burn(p.short).value() > factor
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(period: Window) -> Vec<f64> {
        WINDOW_PAIRS
            .iter()
            .map(|p| (p.factor(period).value() * 1000.0).round() / 1000.0)
            .collect()
    }

    #[test]
    fn thirty_days_gives_the_workbook_factors() {
        assert_eq!(factors(Window::days(30)), vec![14.4, 6.0, 3.0, 1.0]);
    }

    #[test]
    fn twenty_eight_days_follows_the_budget_shares() {
        assert_eq!(factors(Window::days(28)), vec![13.44, 5.6, 2.8, 0.933]);
    }

    #[test]
    fn both_windows_must_burn() {
        let period = Window::days(30);
        let only_long =
            |w: Window| BurnRate::factor(if w == Window::hours(1) { 20.0 } else { 0.0 });
        assert!(!fires(Severity::Page, period, only_long));
        let both = |w: Window| BurnRate::factor(if w <= Window::hours(1) { 20.0 } else { 0.0 });
        assert!(fires(Severity::Page, period, both));
        assert!(!fires(Severity::Ticket, period, both));
    }
}
