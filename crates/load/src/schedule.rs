//! The open model's arrival schedule and the thread that follows it.
//!
//! Request `n` is due at `start + n / rate`, whatever the server is doing.
//! Due times are computed from the start rather than by adding an interval
//! again and again, so rounding never accumulates over a long run.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// `rate` is requests per second, already checked finite and positive.
    pub(crate) fn new(start: Instant, rate: f64) -> Self {
        Self { start, rate }
    }

    /// When request `n` (counted from 0) is due.
    pub(crate) fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How many requests are due strictly before `t`.
    pub(crate) fn count_before(&self, t: Instant) -> u64 {
        let elapsed = t.saturating_duration_since(self.start).as_secs_f64();
        // The float estimate can be one off either way; settle it exactly
        // against `due`, which is what the dispatcher uses.
        let mut n = (elapsed * self.rate).ceil() as u64;
        while n > 0 && self.due(n - 1) >= t {
            n -= 1;
        }
        while self.due(n) < t {
            n += 1;
        }
        n
    }

    /// How many requests are due in `[from, to)`: what the measured window
    /// asks of the server.
    pub(crate) fn count_between(&self, from: Instant, to: Instant) -> u64 {
        self.count_before(to)
            .saturating_sub(self.count_before(from))
    }
}

/// What the dispatcher saw of its own punctuality.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Dispatched {
    /// The longest the dispatcher released a request after it was due.
    /// Latency already includes it (it is measured from the due time);
    /// a large value says the generator's machine was short of CPU.
    pub max_lag: Duration,
}

/// Releases every request due before `end`, each carrying its due time, on
/// a plain OS thread: `nanosleep` wakes within tens of microseconds, where
/// the Tokio timer has 1 ms resolution. Whatever is due when the thread
/// wakes is released at once, so a late wake-up never drops requests, and
/// the lateness is charged to their latency, as wrk2 does. Returning drops
/// `jobs`, which tells the connections that the schedule is over.
pub(crate) fn dispatch(
    schedule: Schedule,
    end: Instant,
    jobs: flume::Sender<Instant>,
) -> Dispatched {
    let mut seen = Dispatched::default();
    let mut n = 0u64;
    loop {
        let due = schedule.due(n);
        if due >= end {
            return seen;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        seen.max_lag = seen.max_lag.max(now - due);
        if jobs.send(due).is_err() {
            // Every connection has gone: nothing left to drive.
            return seen;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn due_times_are_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1000.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(1), at(start, 1_000));
        assert_eq!(schedule.due(1500), at(start, 1_500_000));
    }

    #[test]
    fn rounding_does_not_accumulate_over_a_long_run() {
        let start = Instant::now();
        // 3 per second does not divide a second into whole nanoseconds.
        let schedule = Schedule::new(start, 3.0);
        let after_an_hour = schedule.due(3 * 3600) - start;
        assert_eq!(after_an_hour, Duration::from_secs(3600));
    }

    #[test]
    fn count_before_is_exact_at_the_boundaries() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1000.0);
        assert_eq!(schedule.count_before(start), 0);
        // Request 0 is due at the start itself.
        assert_eq!(schedule.count_before(at(start, 1)), 1);
        assert_eq!(schedule.count_before(at(start, 1_000)), 1);
        assert_eq!(schedule.count_before(at(start, 1_001)), 2);
        assert_eq!(schedule.count_before(at(start, 300_000)), 300);
        // Before the start nothing is due.
        assert_eq!(Schedule::new(at(start, 10), 1000.0).count_before(start), 0);
    }

    #[test]
    fn count_before_agrees_with_due_for_awkward_rates() {
        let start = Instant::now();
        for rate in [0.5, 3.0, 7.3, 999.9, 33_333.0, 123_456.7] {
            let schedule = Schedule::new(start, rate);
            for n in [0u64, 1, 2, 17, 1_000, 99_999] {
                let due = schedule.due(n);
                assert_eq!(schedule.count_before(due), n, "rate {rate}, n {n}");
                let just_after = due + Duration::from_nanos(1);
                assert_eq!(
                    schedule.count_before(just_after),
                    n + 1,
                    "rate {rate}, n {n}"
                );
            }
        }
    }

    #[test]
    fn the_measured_window_excludes_warmup() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 200.0);
        let measure_from = at(start, 1_000_000);
        let end = at(start, 11_000_000);
        assert_eq!(schedule.count_between(measure_from, end), 2_000);
        assert_eq!(schedule.count_between(end, measure_from), 0);
    }

    #[test]
    fn dispatch_releases_every_due_time_in_order_even_when_late() {
        // A start in the past: everything is overdue, so nothing sleeps and
        // the dispatcher must still release each request with its own due
        // time rather than with "now".
        let start = Instant::now() - Duration::from_secs(1);
        let schedule = Schedule::new(start, 100.0);
        let end = at(start, 500_000);
        let (tx, rx) = flume::unbounded();
        let seen = dispatch(schedule, end, tx);
        let released: Vec<Instant> = rx.try_iter().collect();
        let expected: Vec<Instant> = (0..50).map(|n| schedule.due(n)).collect();
        assert_eq!(released, expected);
        assert!(seen.max_lag >= Duration::from_millis(500), "{seen:?}");
    }

    #[test]
    fn dispatch_stops_when_nobody_listens() {
        let start = Instant::now() - Duration::from_secs(1);
        let (tx, rx) = flume::unbounded();
        drop(rx);
        let seen = dispatch(Schedule::new(start, 1e6), Instant::now(), tx);
        assert!(seen.max_lag > Duration::ZERO);
    }
}
