//! Every SLO's chart points over time (SLI, budget left, 5m burn rate),
//! in bounded memory.
//!
//! Two tiers per SLO: the newest points at full resolution (the last 6 h
//! at the default 10 s tick, [`FINE_POINTS`] at most whatever the tick),
//! and one point per 5-minute bucket for 30 days ([`COARSE_POINTS`]). A
//! chart over the last hour reads the fine tier; one over the budget's
//! 30-day period reads the coarse tier where the fine one no longer
//! reaches. Memory bound: (2,160 + 8,640) points x 56 bytes (a
//! [`SloPoint`] is an `i64` and three `Option<f64>` of 16 bytes each) =
//! 604,800 bytes, about 0.6 MB per SLO (7 built-in SLOs: 4.2 MB).

use slo::alerts::SloPoint;
use std::collections::{HashMap, VecDeque};

/// Full-resolution points kept per SLO: 6 h at a 10 s tick.
pub const FINE_POINTS: usize = 6 * 360;
/// The coarse tier's bucket.
pub const COARSE_BUCKET_MS: i64 = 5 * 60_000;
/// Coarse points kept per SLO: 30 days of 5-minute buckets.
pub const COARSE_POINTS: usize = 30 * 24 * 12;

#[derive(Debug, Default)]
struct Tiers {
    fine: VecDeque<SloPoint>,
    /// The first point of each 5-minute bucket.
    coarse: VecDeque<SloPoint>,
}

/// The points of every SLO, keyed by SLO id.
#[derive(Debug, Default)]
pub struct SloSeries {
    by_slo: HashMap<String, Tiers>,
}

impl SloSeries {
    /// Records one tick's point for `slo_id` (times only move forward; a
    /// point older than the newest one kept is ignored).
    pub fn record(&mut self, slo_id: &str, point: SloPoint) {
        let tiers = self.by_slo.entry(slo_id.to_string()).or_default();
        if tiers.fine.back().is_some_and(|p| p.at_ms >= point.at_ms) {
            return;
        }
        if tiers.fine.len() == FINE_POINTS {
            tiers.fine.pop_front();
        }
        tiers.fine.push_back(point);
        let bucket = point.at_ms.div_euclid(COARSE_BUCKET_MS);
        let new_bucket = tiers
            .coarse
            .back()
            .is_none_or(|p| p.at_ms.div_euclid(COARSE_BUCKET_MS) < bucket);
        if new_bucket {
            if tiers.coarse.len() == COARSE_POINTS {
                tiers.coarse.pop_front();
            }
            tiers.coarse.push_back(point);
        }
    }

    /// `slo_id`'s points at or after `since_ms`, oldest first, at most
    /// `max_points` (picked evenly, the newest always included).
    pub fn series(&self, slo_id: &str, since_ms: i64, max_points: usize) -> Vec<SloPoint> {
        let Some(tiers) = self.by_slo.get(slo_id) else {
            return Vec::new();
        };
        let fine_from = tiers.fine.front().map_or(i64::MAX, |p| p.at_ms);
        let points: Vec<SloPoint> = tiers
            .coarse
            .iter()
            .filter(|p| p.at_ms >= since_ms && p.at_ms < fine_from)
            .chain(tiers.fine.iter().filter(|p| p.at_ms >= since_ms))
            .copied()
            .collect();
        thin(points, max_points)
    }
}

/// At most `max` of `points`, evenly spaced by index, keeping the last.
fn thin(points: Vec<SloPoint>, max: usize) -> Vec<SloPoint> {
    let len = points.len();
    if len <= max {
        return points;
    }
    if max == 0 {
        return Vec::new();
    }
    // Index i of `max` maps to the point at (i + 1) * len / max - 1, so the
    // last pick is the newest point.
    (0..max).map(|i| points[(i + 1) * len / max - 1]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: i64) -> SloPoint {
        SloPoint {
            at_ms,
            sli: Some(0.999),
            budget_remaining: Some(0.5),
            burn_rate_5m: Some(1.0),
        }
    }

    #[test]
    fn memory_is_bounded_and_old_history_stays_at_five_minute_resolution() {
        let mut series = SloSeries::default();
        let tick = 10_000;
        let days = 40;
        let ticks = days * 86_400_000 / tick;
        for i in 0..ticks {
            series.record("s", point(i * tick));
        }
        let tiers = &series.by_slo["s"];
        assert_eq!(tiers.fine.len(), FINE_POINTS);
        assert_eq!(tiers.coarse.len(), COARSE_POINTS);
        let now = (ticks - 1) * tick;
        // The last hour: full resolution.
        let hour = series.series("s", now - 3_600_000, usize::MAX);
        assert_eq!(hour.len(), 361, "both ends included");
        assert!(hour.windows(2).all(|w| w[1].at_ms - w[0].at_ms == tick));
        // 30 days: coarse points, then fine ones, in time order.
        let month = series.series("s", now - 30 * 86_400_000, usize::MAX);
        assert!(month.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        assert_eq!(month.last().map(|p| p.at_ms), Some(now));
        assert!(month.len() > COARSE_POINTS - 100 && month.len() < COARSE_POINTS + FINE_POINTS);
        // Older than 30 days is gone.
        assert!(month[0].at_ms >= now - 30 * 86_400_000);
        assert!(series.series("s", 0, usize::MAX)[0].at_ms > 9 * 86_400_000);
    }

    #[test]
    fn thinning_is_even_keeps_the_newest_and_honours_the_limit() {
        let mut series = SloSeries::default();
        for i in 0..100 {
            series.record("s", point(i * 1000));
        }
        let ten = series.series("s", 0, 10);
        assert_eq!(ten.len(), 10);
        assert_eq!(ten.last().map(|p| p.at_ms), Some(99_000));
        assert_eq!(ten[0].at_ms, 9_000);
        assert!(series.series("s", 0, 0).is_empty());
        assert!(series.series("unknown", 0, 10).is_empty());
        assert_eq!(series.series("s", 95_000, 10).len(), 5);
    }

    #[test]
    fn a_point_from_the_past_is_ignored() {
        let mut series = SloSeries::default();
        series.record("s", point(5_000));
        series.record("s", point(4_000));
        series.record("s", point(5_000));
        assert_eq!(series.series("s", 0, 10), vec![point(5_000)]);
    }
}
