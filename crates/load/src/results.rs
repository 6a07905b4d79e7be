//! What a run measured: the engine fills it, thresholds and outputs read it.
//!
//! Memory does not grow with run length: each (scenario, request name) has
//! a fixed set of HDR histograms and counters, and the per-second series
//! kept for the HTML report is capped (coarsened when full); the CSV file
//! gets every second as it happens.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies are recorded in microseconds from 1 us to 60 s with 3
/// significant digits; slower requests are clamped to 60 s.
pub const HIGHEST_MICROS: u64 = 60_000_000;

/// The most per-second points kept per series for the HTML report; past
/// that, neighbouring points are merged two by two.
pub const SERIES_CAP: usize = 3_600;

/// A histogram with the bounds every latency in this crate uses.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant bounds are valid")
}

/// Records `d` in microseconds, at least 1 us, clamped to the bounds.
pub fn record(histogram: &mut Histogram<u64>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, HIGHEST_MICROS));
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// Connect, TLS, write or read failed, or the connection closed early.
    TransportError,
    /// No complete response within the request's timeout.
    Timeout,
}

/// The measurements of one request name in one scenario (or of one
/// second of it: the same type serves both).
#[derive(Debug, Clone)]
pub struct Stats {
    /// From the due time (open model) or the send time (closed model) to
    /// the end of the response, in microseconds. Failures are timed too.
    pub latency: Histogram<u64>,
    /// The generator's own lateness: from when the request could have
    /// been sent (due, and a connection free) to when it was. Reported
    /// apart from `latency`, so a slow generator is never mistaken for a
    /// slow server.
    pub lateness: Histogram<u64>,
    /// Requests sent.
    pub sent: u64,
    /// Answered with a status in the request's `expect_status`.
    pub ok: u64,
    /// Answered, but with a status outside `expect_status`.
    pub unexpected_status: u64,
    pub transport_errors: u64,
    pub timeouts: u64,
    pub status_counts: BTreeMap<u16, u64>,
    /// Per check name: (passed, failed).
    pub checks: BTreeMap<String, (u64, u64)>,
    /// Not sent because a pool it picks from was empty.
    pub skipped_empty_pool: u64,
    /// Response bytes received (bodies).
    pub bytes_received: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            lateness: new_histogram(),
            sent: 0,
            ok: 0,
            unexpected_status: 0,
            transport_errors: 0,
            timeouts: 0,
            status_counts: BTreeMap::new(),
            checks: BTreeMap::new(),
            skipped_empty_pool: 0,
            bytes_received: 0,
        }
    }
}

impl Stats {
    /// Requests that failed: no answer, or an unexpected status.
    pub fn errors(&self) -> u64 {
        self.unexpected_status + self.transport_errors + self.timeouts
    }

    /// Requests that ended, one way or another.
    pub fn completed(&self) -> u64 {
        self.ok + self.errors()
    }

    /// Checks passed and failed, all names together.
    pub fn check_totals(&self) -> (u64, u64) {
        self.checks
            .values()
            .fold((0, 0), |(p, f), (dp, df)| (p + dp, f + df))
    }

    pub fn record_outcome(&mut self, outcome: Outcome, ok_status: bool, latency: Duration) {
        record(&mut self.latency, latency);
        match outcome {
            Outcome::Status(code) => {
                *self.status_counts.entry(code).or_default() += 1;
                if ok_status {
                    self.ok += 1;
                } else {
                    self.unexpected_status += 1;
                }
            }
            Outcome::TransportError => self.transport_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    pub fn record_check(&mut self, name: &str, passed: bool) {
        if let Some(entry) = self.checks.get_mut(name) {
            if passed {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        } else {
            self.checks
                .insert(name.to_string(), (u64::from(passed), u64::from(!passed)));
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.lateness.add(&other.lateness);
        self.sent += other.sent;
        self.ok += other.ok;
        self.unexpected_status += other.unexpected_status;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        for (code, n) in &other.status_counts {
            *self.status_counts.entry(*code).or_default() += n;
        }
        for (name, (p, f)) in &other.checks {
            let entry = self.checks.entry(name.clone()).or_default();
            entry.0 += p;
            entry.1 += f;
        }
        self.skipped_empty_pool += other.skipped_empty_pool;
        self.bytes_received += other.bytes_received;
    }

    /// Empties the stats, keeping the histograms' memory.
    pub fn reset(&mut self) {
        self.latency.reset();
        self.lateness.reset();
        self.sent = 0;
        self.ok = 0;
        self.unexpected_status = 0;
        self.transport_errors = 0;
        self.timeouts = 0;
        self.status_counts.clear();
        self.checks.clear();
        self.skipped_empty_pool = 0;
        self.bytes_received = 0;
    }
}

/// A setup or teardown step's tally.
#[derive(Debug, Clone)]
pub struct PhaseResults {
    /// `setup` or `teardown`.
    pub phase: &'static str,
    /// The request's name.
    pub name: String,
    pub stats: Stats,
    /// Per capture label (`slugs <- json /slug`): values kept.
    pub captured: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct ScenarioResults {
    pub name: String,
    /// `constant-arrival-rate`, ...
    pub executor: &'static str,
    /// Open model: the mean target rate over the scenario, per second.
    pub target_rate: Option<f64>,
    pub connections: usize,
    /// When it started and how long it was measured (warmup excluded).
    pub start: Duration,
    pub duration: Duration,
    /// Open model: arrivals the schedule asked for in the measured window.
    /// Closed model: equal to the requests sent.
    pub scheduled: u64,
    /// Open model: scheduled arrivals never sent, because every connection
    /// stayed busy until the end or because the run was aborted.
    pub dropped: u64,
    /// Per request name, in the scenario's order.
    pub requests: Vec<(String, Stats)>,
}

impl ScenarioResults {
    /// Every request name of the scenario together.
    pub fn total(&self) -> Stats {
        let mut total = Stats::default();
        for (_, stats) in &self.requests {
            total.merge(stats);
        }
        total
    }
}

/// One second of one (scenario, request name). Its serde shape is the
/// one `--json` prints (`series[].points[]`) and `--out-hist` keeps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Seconds from the start of the load phase, at the end of the second
    /// (or of the merged bucket).
    #[serde(rename = "t_s")]
    pub t: f64,
    /// Width of the bucket in seconds (1 until the series is coarsened).
    #[serde(rename = "width_s")]
    pub width: f64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub check_failures: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub lateness_p99_us: u64,
}

impl Point {
    pub fn of(t: f64, stats: &Stats) -> Self {
        Self {
            t,
            width: 1.0,
            sent: stats.sent,
            completed: stats.completed(),
            errors: stats.errors(),
            check_failures: stats.check_totals().1,
            p50_us: stats.latency.value_at_quantile(0.50),
            p90_us: stats.latency.value_at_quantile(0.90),
            p99_us: stats.latency.value_at_quantile(0.99),
            max_us: stats.latency.max(),
            lateness_p99_us: stats.lateness.value_at_quantile(0.99),
        }
    }

    /// Two neighbouring buckets as one: counts add, each percentile keeps
    /// the larger of the two (an upper bound, never a flattering mean).
    fn merge(&self, next: &Point) -> Point {
        Point {
            t: next.t,
            width: self.width + next.width,
            sent: self.sent + next.sent,
            completed: self.completed + next.completed,
            errors: self.errors + next.errors,
            check_failures: self.check_failures + next.check_failures,
            p50_us: self.p50_us.max(next.p50_us),
            p90_us: self.p90_us.max(next.p90_us),
            p99_us: self.p99_us.max(next.p99_us),
            max_us: self.max_us.max(next.max_us),
            lateness_p99_us: self.lateness_p99_us.max(next.lateness_p99_us),
        }
    }
}

/// A capped per-second series for one (scenario, request name).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub scenario: String,
    pub name: String,
    pub points: Vec<Point>,
}

impl Series {
    pub fn push(&mut self, point: Point) {
        self.points.push(point);
        if self.points.len() > SERIES_CAP {
            let merged = self
                .points
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => a.merge(b),
                    [a] => a.clone(),
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            self.points = merged;
        }
    }
}

/// One second of the whole run, as the live observers see it.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Seconds from the start of the load phase, at the end of this second.
    pub t: f64,
    /// Requests on the wire at the end of the second.
    pub in_flight: u64,
    /// Arrivals due and waiting for a free connection.
    pub queued: u64,
    /// (scenario index, request index, this second's stats), only for
    /// names that sent or finished something in the second.
    pub rows: Vec<(usize, usize, Stats)>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub setup: Vec<PhaseResults>,
    pub scenarios: Vec<ScenarioResults>,
    pub teardown: Vec<PhaseResults>,
    /// Per (scenario, request name), capped.
    pub series: Vec<Series>,
    /// Wall-clock start of the load phase, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The load phase's length as run.
    pub elapsed: Duration,
    /// Set when a threshold with `abort_on_fail` stopped the run early.
    pub aborted_by: Option<String>,
}

impl Results {
    /// Every scenario and name together.
    pub fn total(&self) -> Stats {
        let mut total = Stats::default();
        for scenario in &self.scenarios {
            total.merge(&scenario.total());
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_merge_adds_counts_and_histograms() {
        let mut a = Stats {
            sent: 2,
            ..Stats::default()
        };
        a.record_outcome(Outcome::Status(200), true, Duration::from_millis(1));
        a.record_outcome(Outcome::Timeout, false, Duration::from_secs(5));
        a.record_check("is 200", true);
        let mut b = Stats {
            sent: 1,
            ..Stats::default()
        };
        b.record_outcome(Outcome::Status(500), false, Duration::from_millis(2));
        b.record_check("is 200", false);
        a.merge(&b);
        assert_eq!(a.sent, 3);
        assert_eq!(a.ok, 1);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.completed(), 3);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.checks.get("is 200"), Some(&(1, 1)));
        assert_eq!(a.status_counts.get(&500), Some(&1));
        a.reset();
        assert_eq!(a.completed(), 0);
        assert!(a.latency.is_empty());
    }

    #[test]
    fn a_series_stays_capped_and_keeps_every_count() {
        let mut series = Series::default();
        let stats = Stats {
            sent: 1,
            ..Stats::default()
        };
        for second in 0..(SERIES_CAP * 3) {
            series.push(Point::of(second as f64 + 1.0, &stats));
        }
        assert!(series.points.len() <= SERIES_CAP);
        let sent: u64 = series.points.iter().map(|p| p.sent).sum();
        assert_eq!(sent, (SERIES_CAP * 3) as u64);
        let width: f64 = series.points.iter().map(|p| p.width).sum();
        assert_eq!(width, (SERIES_CAP * 3) as f64);
    }
}
