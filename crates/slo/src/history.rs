//! Counter history in three resolutions, so a 30-day window costs
//! kilobytes per SLO, not a sample per tick.
//!
//! Every tick goes into the fine tier (kept 6 hours, the longest short
//! window); one snapshot per 5 minutes into the medium tier (kept 3 days,
//! the longest alert window); one per hour into the coarse tier (kept for
//! the SLO period). A window is read from the finest tier that reaches
//! back far enough, so the 1d and 3d windows are exact to 5 minutes and
//! the period to an hour (<0.2% of a 30-day window).

use std::collections::VecDeque;

/// A cumulative, reset-corrected counter pair at time `t` (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub t: i64,
    pub errors: f64,
    pub total: f64,
}

const FINE_KEEP_MS: i64 = 6 * 3_600_000;
const MEDIUM_STEP_MS: i64 = 5 * 60_000;
const MEDIUM_KEEP_MS: i64 = 3 * 86_400_000;
const COARSE_STEP_MS: i64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct History {
    fine: VecDeque<Snapshot>,
    medium: VecDeque<Snapshot>,
    coarse: VecDeque<Snapshot>,
    coarse_keep_ms: i64,
    /// Raw counter values last seen and what resets have added.
    last_raw: Option<(f64, f64)>,
    offset: (f64, f64),
}

impl History {
    pub fn new(period_ms: i64) -> Self {
        Self {
            fine: VecDeque::new(),
            medium: VecDeque::new(),
            coarse: VecDeque::new(),
            coarse_keep_ms: period_ms.max(MEDIUM_KEEP_MS),
            last_raw: None,
            offset: (0.0, 0.0),
        }
    }

    /// Records raw counters at `t`; a counter that went down was reset
    /// (a restart), and its earlier count is carried over as Prometheus's
    /// `rate()` does.
    pub fn record(&mut self, t: i64, errors: f64, total: f64) {
        if self.fine.back().is_some_and(|s| t <= s.t) {
            return;
        }
        if let Some((last_e, last_n)) = self.last_raw {
            if errors < last_e {
                self.offset.0 += last_e;
            }
            if total < last_n {
                self.offset.1 += last_n;
            }
        }
        self.last_raw = Some((errors, total));
        let snap = Snapshot {
            t,
            errors: errors + self.offset.0,
            total: total + self.offset.1,
        };
        push(&mut self.fine, snap, 0, FINE_KEEP_MS);
        push(&mut self.medium, snap, MEDIUM_STEP_MS, MEDIUM_KEEP_MS);
        push(&mut self.coarse, snap, COARSE_STEP_MS, self.coarse_keep_ms);
    }

    pub fn latest(&self) -> Option<Snapshot> {
        self.fine.back().copied()
    }

    /// Snapshots within the last `ms` before `now` (for "is there data").
    pub fn count_since(&self, since: i64) -> usize {
        self.fine.iter().rev().take_while(|s| s.t >= since).count()
    }

    /// The latest snapshot at or before `t`, from the finest tier that
    /// reaches back to `t`; the oldest known one if none does.
    pub fn at_or_before(&self, t: i64) -> Option<Snapshot> {
        for tier in [&self.fine, &self.medium, &self.coarse] {
            if tier.front().is_some_and(|s| s.t <= t) {
                let i = tier.partition_point(|s| s.t <= t);
                return tier.get(i - 1).copied();
            }
        }
        [&self.fine, &self.medium, &self.coarse]
            .iter()
            .filter_map(|tier| tier.front().copied())
            .min_by_key(|s| s.t)
    }

    /// Error ratio over the `window_ms` before the latest snapshot: `None`
    /// without two snapshots, 0 without traffic.
    pub fn ratio(&self, window_ms: i64) -> Option<f64> {
        let now = self.latest()?;
        let then = self.at_or_before(now.t - window_ms)?;
        if then.t >= now.t {
            return None;
        }
        let total = now.total - then.total;
        if total <= 0.0 {
            return Some(0.0);
        }
        Some(((now.errors - then.errors) / total).clamp(0.0, 1.0))
    }
}

/// Appends when `step` has passed since the last entry, then drops entries
/// older than `keep` while one at or before the boundary remains.
fn push(tier: &mut VecDeque<Snapshot>, snap: Snapshot, step: i64, keep: i64) {
    if tier.back().is_none_or(|last| snap.t - last.t >= step) {
        tier.push_back(snap);
    }
    let boundary = snap.t - keep;
    while tier.len() > 1 && tier[1].t <= boundary {
        tier.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn ratio_over_windows_and_resets() {
        let mut h = History::new(30 * 86_400_000);
        // 100 req/min, 1 error/min for an hour, then a restart.
        for m in 0..=60 {
            h.record(m * MIN, m as f64, 100.0 * m as f64);
        }
        assert!((h.ratio(30 * MIN).expect("data") - 0.01).abs() < 1e-9);
        h.record(61 * MIN, 0.0, 0.0);
        h.record(62 * MIN, 50.0, 100.0);
        // Over 2 minutes: 50 errors of 100 (the reset is carried over).
        assert!((h.ratio(2 * MIN).expect("data") - 0.5).abs() < 1e-9);
    }

    proptest::proptest! {
        /// Within the fine tier the ratio is exact: the counters' increases
        /// over the last `window` minutes, a drop counted as a restart from
        /// zero (as `rate()` does; a restart that climbs past the old value
        /// within one sample cannot be seen by anyone).
        #[test]
        fn ratio_matches_a_direct_count(
            minutes in proptest::collection::vec((0u32..50, 0u32..50, proptest::bool::weighted(0.05)), 2..300),
            window in 1i64..300,
        ) {
            let mut h = History::new(86_400_000);
            let (mut raw_e, mut raw_n) = (0.0f64, 0.0f64);
            let mut per_minute = Vec::new();
            let increase = |now: f64, before: f64| if now < before { now } else { now - before };
            for (m, &(a, b, restart)) in minutes.iter().enumerate() {
                let (before_e, before_n) = (raw_e, raw_n);
                if restart && m > 0 {
                    (raw_e, raw_n) = (0.0, 0.0);
                }
                raw_e += a.min(b) as f64;
                raw_n += a.max(b) as f64;
                // The first snapshot is the baseline: its counts are not an increase.
                per_minute.push(if m == 0 {
                    (0.0, 0.0)
                } else {
                    (increase(raw_e, before_e), increase(raw_n, before_n))
                });
                h.record(m as i64 * MIN, raw_e, raw_n);
            }
            let last = per_minute.len() as i64 - 1;
            let from = (last - window).max(0);
            let (e, n) = per_minute[(from + 1) as usize..].iter().fold((0.0, 0.0), |acc, x| (acc.0 + x.0, acc.1 + x.1));
            let expected = if n > 0.0 { (e / n).clamp(0.0, 1.0) } else { 0.0 };
            let got = h.ratio(window * MIN).expect("two snapshots");
            proptest::prop_assert!((got - expected).abs() < 1e-9, "got {got}, expected {expected}");
        }
    }

    #[test]
    fn no_traffic_is_zero_and_no_history_is_none() {
        let mut h = History::new(86_400_000);
        assert_eq!(h.ratio(MIN), None);
        h.record(0, 5.0, 10.0);
        assert_eq!(h.ratio(MIN), None);
        h.record(MIN, 5.0, 10.0);
        assert_eq!(h.ratio(MIN), Some(0.0));
    }

    #[test]
    fn long_windows_come_from_coarser_tiers_with_bounded_memory() {
        let mut h = History::new(30 * 86_400_000);
        let step = 10_000; // a 10 s tick for 31 days
        let mut t = 0;
        while t <= 31 * 86_400_000 {
            h.record(t, 0.0, t as f64 / 1000.0);
            t += step;
        }
        assert!(h.fine.len() <= 6 * 360 + 1, "{}", h.fine.len());
        assert!(h.medium.len() <= 3 * 288 + 1, "{}", h.medium.len());
        assert!(h.coarse.len() <= 30 * 24 + 1, "{}", h.coarse.len());
        let now = h.latest().expect("data").t;
        let then = h.at_or_before(now - 30 * 86_400_000).expect("period start");
        assert!(now - then.t - 30 * 86_400_000 < 3_600_000);
        let day = h.at_or_before(now - 86_400_000).expect("a day ago");
        assert!(now - day.t - 86_400_000 < 5 * MIN);
    }
}
