//! The `--url` quick mode's report, for people (`Display`) and for the
//! benchmark scripts (`Serialize`, field names they parse).

use crate::results::Stats;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Fewer unsent requests than this fraction of the schedule cannot move the
/// p99.9 by more than one rank, so they are not worth a warning.
const UNSENT_TOLERANCE: f64 = 0.001;

/// Latency percentiles in microseconds. In the open model they count from
/// each request's due time, in the closed model from its actual start.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `open` (fixed rate) or `closed` (as fast as possible).
    pub model: &'static str,
    /// Requests per second asked for; `None` in the closed model.
    pub target_rate: Option<f64>,
    pub connections: usize,
    /// The measured window, warmup excluded.
    pub duration_secs: f64,
    pub warmup_secs: f64,
    /// Open model: requests the schedule asked for in the measured window.
    /// Closed model: equal to `sent`.
    pub scheduled: u64,
    /// Requests sent in the measured window.
    pub sent: u64,
    /// Requests answered with a status, whatever the status.
    pub completed: u64,
    /// Requests without an answer: transport errors plus timeouts.
    pub errors: u64,
    pub timeouts: u64,
    pub status_counts: BTreeMap<u16, u64>,
    /// Completed requests per second of the measured window.
    pub achieved_rate: f64,
    pub latency: Latency,
    /// Open model: scheduled requests never sent because every connection
    /// was busy until the end. They are missing from `latency`, where they
    /// would have been the slowest.
    pub behind_schedule: u64,
    /// Open model: the longest the generator sent a request after it
    /// could have (due, and a connection free); already counted in
    /// `latency`. A large value says the generator was short of CPU.
    pub dispatch_lag_max_us: u64,
    /// The generator's own lateness, apart from the server's latency.
    pub lateness: Latency,
    /// The target rate was not held (`behind_schedule` is more than 0.1% of
    /// `scheduled`): the tail latencies understate what users would see.
    /// Add connections, lower the rate, or believe the server is saturated.
    pub fell_behind: bool,
}

/// The run's shape, as the report states it.
pub(crate) struct RunShape {
    pub rate: Option<f64>,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open model only: what the schedule asked for in the window.
    pub scheduled: Option<u64>,
}

impl Report {
    pub(crate) fn new(shape: RunShape, stats: &Stats) -> Self {
        let completed = stats.ok + stats.unexpected_status;
        let duration_secs = shape.duration.as_secs_f64();
        let scheduled = shape.scheduled.unwrap_or(stats.sent);
        let behind_schedule = scheduled.saturating_sub(stats.sent);
        Self {
            model: if shape.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            target_rate: shape.rate,
            connections: shape.connections,
            duration_secs,
            warmup_secs: shape.warmup.as_secs_f64(),
            scheduled,
            sent: stats.sent,
            completed,
            errors: stats.transport_errors + stats.timeouts,
            timeouts: stats.timeouts,
            status_counts: stats.status_counts.clone(),
            achieved_rate: if duration_secs > 0.0 {
                completed as f64 / duration_secs
            } else {
                0.0
            },
            latency: Latency::of(&stats.latency),
            behind_schedule,
            dispatch_lag_max_us: stats.lateness.max(),
            lateness: Latency::of(&stats.lateness),
            fell_behind: behind_schedule as f64 > UNSENT_TOLERANCE * scheduled as f64,
        }
    }
}

/// `840us`, `12.3ms`, `1.50s`: short enough for one table row.
struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us < 1_000 {
            write!(f, "{us}us")
        } else if us < 1_000_000 {
            write!(f, "{:.2}ms", us as f64 / 1e3)
        } else {
            write!(f, "{:.2}s", us as f64 / 1e6)
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.target_rate {
            Some(rate) => format!("{rate} req/s"),
            None => "max throughput".to_string(),
        };
        writeln!(
            f,
            "{} model, {target}, {} connections, {:.1}s measured after {:.1}s warmup",
            self.model, self.connections, self.duration_secs, self.warmup_secs
        )?;
        writeln!(
            f,
            "  requests  sent {}  completed {}  errors {} (timeouts {})  achieved {:.0} req/s",
            self.sent, self.completed, self.errors, self.timeouts, self.achieved_rate
        )?;
        let statuses: Vec<String> = self
            .status_counts
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(f, "  statuses  {}", statuses.join("  "))?;
        if self.target_rate.is_some() {
            writeln!(
                f,
                "  schedule  due {}  never sent {}  generator late by up to {} (counted in latency)",
                self.scheduled,
                self.behind_schedule,
                Micros(self.dispatch_lag_max_us)
            )?;
        }
        let l = &self.latency;
        writeln!(
            f,
            "  latency   {:>9} {:>9} {:>9} {:>9} {:>9}",
            "p50", "p90", "p99", "p99.9", "max"
        )?;
        writeln!(
            f,
            "            {:>9} {:>9} {:>9} {:>9} {:>9}",
            Micros(l.p50_us).to_string(),
            Micros(l.p90_us).to_string(),
            Micros(l.p99_us).to_string(),
            Micros(l.p999_us).to_string(),
            Micros(l.max_us).to_string(),
        )?;
        if self.fell_behind {
            writeln!(
                f,
                "  WARNING: the target rate was not held: {} of {} scheduled requests were never sent,",
                self.behind_schedule, self.scheduled
            )?;
            writeln!(
                f,
                "  so the latencies above leave out the slowest; add connections or lower the rate"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Outcome;

    fn shape(rate: Option<f64>, scheduled: Option<u64>) -> RunShape {
        RunShape {
            rate,
            connections: 2,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            scheduled,
        }
    }

    trait Record {
        fn record(&mut self, outcome: Outcome, latency: Duration);
    }

    impl Record for Stats {
        fn record(&mut self, outcome: Outcome, latency: Duration) {
            self.sent += 1;
            self.record_outcome(outcome, true, latency);
            crate::results::record(&mut self.lateness, Duration::from_micros(70));
        }
    }

    /// 1 ms, 2 ms, ..., 1000 ms, one request each, answered 302.
    fn uniform_tally() -> Stats {
        let mut tally = Stats::default();
        for ms in 1..=1000 {
            tally.record(Outcome::Status(302), Duration::from_millis(ms));
        }
        tally
    }

    /// HdrHistogram with 3 significant digits answers within 0.1%.
    fn assert_close(actual_us: u64, expected_ms: u64) {
        let expected_us = expected_ms * 1000;
        let diff = actual_us.abs_diff(expected_us);
        assert!(
            diff * 1000 <= expected_us,
            "{actual_us}us is not within 0.1% of {expected_ms}ms"
        );
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let report = Report::new(shape(None, None), &uniform_tally());
        assert_close(report.latency.p50_us, 500);
        assert_close(report.latency.p90_us, 900);
        assert_close(report.latency.p99_us, 990);
        assert_close(report.latency.p999_us, 999);
        assert_close(report.latency.max_us, 1000);
        assert!((report.latency.mean_us - 500_500.0).abs() < 500.0);
    }

    #[test]
    fn one_stall_owns_the_tail_and_nothing_else() {
        let mut tally = Stats::default();
        for _ in 0..999 {
            tally.record(Outcome::Status(200), Duration::from_micros(100));
        }
        tally.record(Outcome::Status(200), Duration::from_millis(200));
        let latency = Report::new(shape(None, None), &tally).latency;
        assert_eq!(latency.p50_us, 100);
        assert_eq!(latency.p99_us, 100);
        assert_close(latency.max_us, 200);
    }

    #[test]
    fn counts_statuses_errors_and_rate() {
        let mut a = uniform_tally();
        let mut b = Stats::default();
        b.record(Outcome::Status(404), Duration::from_millis(1));
        b.record(Outcome::TransportError, Duration::from_millis(1));
        b.record(Outcome::Timeout, Duration::from_secs(5));
        a.merge(&b);
        let report = Report::new(shape(None, None), &a);
        assert_eq!(report.sent, 1003);
        assert_eq!(report.completed, 1001);
        assert_eq!(report.errors, 2);
        assert_eq!(report.timeouts, 1);
        assert_eq!(
            report.status_counts,
            BTreeMap::from([(302, 1000), (404, 1)])
        );
        assert!((report.achieved_rate - 500.5).abs() < 1e-9);
        assert_close(report.latency.max_us, 5000);
        assert!(!report.fell_behind);
    }

    #[test]
    fn latencies_beyond_a_minute_are_clamped_not_lost() {
        let mut tally = Stats::default();
        tally.record(Outcome::Timeout, Duration::from_secs(3600));
        tally.record(Outcome::Status(200), Duration::ZERO);
        let report = Report::new(shape(None, None), &tally);
        assert_eq!(report.sent, 2);
        assert_close(report.latency.max_us, 60_000);
        assert_eq!(report.latency.p50_us, 1);
    }

    #[test]
    fn an_open_run_that_missed_its_schedule_says_so() {
        // 1000 sent of 2000 scheduled: half the load never reached the server.
        let report = Report::new(shape(Some(1000.0), Some(2000)), &uniform_tally());
        assert_eq!(report.model, "open");
        assert_eq!(report.behind_schedule, 1000);
        assert!(report.fell_behind);
        assert!(report.to_string().contains("WARNING"), "{report}");
    }

    #[test]
    fn an_open_run_a_hair_short_of_its_schedule_is_fine() {
        let report = Report::new(shape(Some(500.0), Some(1001)), &uniform_tally());
        assert_eq!(report.behind_schedule, 1);
        assert!(!report.fell_behind);
        assert!(!report.to_string().contains("WARNING"), "{report}");
    }

    #[test]
    fn closed_runs_are_never_behind() {
        let report = Report::new(shape(None, None), &uniform_tally());
        assert_eq!(report.model, "closed");
        assert_eq!(report.scheduled, report.sent);
        assert_eq!(report.behind_schedule, 0);
        assert!(!report.fell_behind);
    }

    #[test]
    fn the_table_uses_readable_units() {
        assert_eq!(Micros(840).to_string(), "840us");
        assert_eq!(Micros(12_345).to_string(), "12.35ms");
        assert_eq!(Micros(1_500_000).to_string(), "1.50s");
        let table = Report::new(shape(Some(500.0), Some(1000)), &uniform_tally()).to_string();
        assert!(
            table.starts_with("open model, 500 req/s, 2 connections"),
            "{table}"
        );
        assert!(table.contains("302: 1000"), "{table}");
        assert!(table.contains("p99.9"), "{table}");
        assert!(table.contains("late by up to 70us"), "{table}");
    }

    #[test]
    fn serializes_for_scripts() {
        let report = Report::new(shape(Some(500.0), Some(1000)), &uniform_tally());
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["model"], "open");
        assert_eq!(json["status_counts"]["302"], 1000);
        assert_eq!(json["fell_behind"], false);
        assert!(json["latency"]["p99_us"].as_u64().is_some());
    }
}
