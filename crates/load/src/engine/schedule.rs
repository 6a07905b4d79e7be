//! The open model's arrival schedule: when arrival `n` is due.
//!
//! Due times are computed from the start rather than by adding an interval
//! again and again, so rounding never accumulates over a long run. A
//! ramping stage moves the rate linearly, so the arrivals counted by time
//! `t` into a stage are `a t + (b - a) t^2 / 2D`; arrival `m` of the stage
//! is due where that reaches `m`, solved in the form that stays stable when
//! the ramp is flat (`2m / (a + sqrt(a^2 + 2km))`).

use crate::plan::Executor;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    segments: Vec<Segment>,
}

/// A stretch of linearly changing rate.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// Offset of the segment's start from the schedule's start, seconds.
    offset: f64,
    duration: f64,
    from_rate: f64,
    to_rate: f64,
    /// Arrivals due before the segment starts.
    before: f64,
}

impl Segment {
    fn slope(&self) -> f64 {
        (self.to_rate - self.from_rate) / self.duration
    }

    /// Arrivals due in the first `t` seconds of the segment.
    fn count(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.duration);
        self.from_rate * t + self.slope() * t * t / 2.0
    }

    /// When the segment's arrival `m` (from 0, fractional) is due.
    fn time_of(&self, m: f64) -> f64 {
        let a = self.from_rate;
        let k = self.slope();
        let root = (a * a + 2.0 * k * m).max(0.0).sqrt();
        let denominator = a + root;
        if denominator <= 0.0 {
            return self.duration;
        }
        2.0 * m / denominator
    }
}

impl Schedule {
    /// The schedule of an open-model executor; `None` for the closed model.
    /// Rates are already checked (finite, not negative, some positive).
    pub(crate) fn of(executor: &Executor) -> Option<Self> {
        match executor {
            Executor::ConstantArrivalRate { rate, duration } => {
                Some(Self::build(*rate, &[(*rate, *duration)]))
            }
            Executor::RampingArrivalRate { start_rate, stages } => {
                let stages: Vec<(f64, Duration)> =
                    stages.iter().map(|s| (s.target, s.duration)).collect();
                Some(Self::build(*start_rate, &stages))
            }
            Executor::ConstantConnections { .. } => None,
        }
    }

    /// A constant rate, for tests and the `--url` mode.
    #[cfg(test)]
    pub(crate) fn constant(rate: f64, duration: Duration) -> Self {
        Self::build(rate, &[(rate, duration)])
    }

    fn build(start_rate: f64, stages: &[(f64, Duration)]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let mut offset = 0.0;
        let mut before = 0.0;
        let mut from_rate = start_rate;
        for &(to_rate, duration) in stages {
            let duration = duration.as_secs_f64();
            if duration <= 0.0 {
                // A jump to a new rate.
                from_rate = to_rate;
                continue;
            }
            let segment = Segment {
                offset,
                duration,
                from_rate,
                to_rate,
                before,
            };
            before += segment.count(duration);
            offset += duration;
            from_rate = to_rate;
            segments.push(segment);
        }
        Self { segments }
    }

    /// The same schedule behind `warmup` at its starting rate: the
    /// warmup's arrivals come first, then the measured ones.
    pub(crate) fn with_warmup(self, warmup: Duration) -> Self {
        let Some(first) = self.segments.first() else {
            return self;
        };
        if warmup.is_zero() {
            return self;
        }
        let rate = first.from_rate;
        let mut stages = vec![(rate, warmup)];
        let mut from = rate;
        for s in &self.segments {
            // Rebuild from the rates, which is all `build` needs.
            if s.from_rate != from {
                stages.push((s.from_rate, Duration::ZERO));
            }
            stages.push((s.to_rate, Duration::from_secs_f64(s.duration)));
            from = s.to_rate;
        }
        Self::build(rate, &stages)
    }

    /// Total length of the schedule.
    pub(crate) fn duration(&self) -> Duration {
        self.segments.last().map_or(Duration::ZERO, |s| {
            Duration::from_secs_f64(s.offset + s.duration)
        })
    }

    /// The mean rate over the whole schedule, per second.
    pub(crate) fn mean_rate(&self) -> f64 {
        let total: f64 = self
            .segments
            .last()
            .map_or(0.0, |s| s.before + s.count(s.duration));
        let seconds = self.duration().as_secs_f64();
        if seconds > 0.0 {
            total / seconds
        } else {
            0.0
        }
    }

    /// When arrival `n` (from 0) is due, from the start; `None` when the
    /// schedule ends first.
    pub(crate) fn due(&self, n: u64) -> Option<Duration> {
        let n = n as f64;
        let segment = self
            .segments
            .iter()
            .find(|s| n < s.before + s.count(s.duration))?;
        let t = segment.offset + segment.time_of(n - segment.before).min(segment.duration);
        Some(Duration::from_secs_f64(t))
    }

    /// How many arrivals are due strictly before `t` (from the start).
    pub(crate) fn count_before(&self, t: Duration) -> u64 {
        let seconds = t.as_secs_f64();
        let estimate = match self.segments.iter().rev().find(|s| seconds >= s.offset) {
            Some(s) => s.before + s.count(seconds - s.offset),
            None => 0.0,
        };
        // The float estimate can be a little off either way; settle it
        // exactly against `due`, which is what the dispatcher follows.
        let mut n = estimate.ceil().max(0.0) as u64;
        while n > 0 && self.due(n - 1).is_none_or(|d| d >= t) {
            n -= 1;
        }
        while self.due(n).is_some_and(|d| d < t) {
            n += 1;
        }
        n
    }

    /// Arrivals due in `[from, to)`.
    pub(crate) fn count_between(&self, from: Duration, to: Duration) -> u64 {
        self.count_before(to)
            .saturating_sub(self.count_before(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Stage;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn constant_due_times_are_evenly_spaced_from_the_start() {
        let schedule = Schedule::constant(1000.0, Duration::from_secs(2));
        assert_eq!(schedule.due(0), Some(Duration::ZERO));
        assert_eq!(schedule.due(1), Some(ms(1)));
        assert_eq!(schedule.due(1500), Some(ms(1500)));
        assert_eq!(schedule.due(2000), None, "the schedule ends at 2 s");
    }

    #[test]
    fn rounding_does_not_accumulate_over_a_long_run() {
        // 3 per second does not divide a second into whole nanoseconds.
        let schedule = Schedule::constant(3.0, Duration::from_secs(7200));
        let after_an_hour = schedule.due(3 * 3600).expect("within the run");
        assert!(
            after_an_hour.abs_diff(Duration::from_secs(3600)) < Duration::from_micros(1),
            "{after_an_hour:?}"
        );
    }

    #[test]
    fn count_before_agrees_with_due() {
        for rate in [0.5, 3.0, 7.3, 999.9, 33_333.0] {
            let schedule = Schedule::constant(rate, Duration::from_secs(100));
            for n in [0u64, 1, 2, 17, 40] {
                let due = schedule.due(n).expect("due");
                assert_eq!(schedule.count_before(due), n, "rate {rate}, n {n}");
                assert_eq!(
                    schedule.count_before(due + Duration::from_nanos(1)),
                    n + 1,
                    "rate {rate}, n {n}"
                );
            }
        }
    }

    #[test]
    fn the_measured_window_excludes_warmup() {
        let schedule = Schedule::constant(200.0, Duration::from_secs(11));
        assert_eq!(
            schedule.count_between(Duration::from_secs(1), Duration::from_secs(11)),
            2_000
        );
    }

    #[test]
    fn a_ramp_from_zero_to_r_sends_half_of_r_times_d() {
        let executor = Executor::RampingArrivalRate {
            start_rate: 0.0,
            stages: vec![Stage {
                target: 100.0,
                duration: Duration::from_secs(10),
            }],
        };
        let schedule = Schedule::of(&executor).expect("open model");
        assert_eq!(schedule.count_before(Duration::from_secs(10)), 500);
        // A quarter of the way in time, a sixteenth of the arrivals.
        let quarter = schedule.count_before(Duration::from_millis(2500));
        assert!((31..=32).contains(&quarter), "{quarter}");
        assert!((schedule.mean_rate() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn stages_chain_and_a_flat_stage_is_constant() {
        let executor = Executor::RampingArrivalRate {
            start_rate: 10.0,
            stages: vec![
                Stage {
                    target: 30.0,
                    duration: Duration::from_secs(2),
                },
                Stage {
                    target: 30.0,
                    duration: Duration::from_secs(3),
                },
                Stage {
                    target: 0.0,
                    duration: Duration::from_secs(2),
                },
            ],
        };
        let schedule = Schedule::of(&executor).expect("open model");
        assert_eq!(schedule.duration(), Duration::from_secs(7));
        // 40 in the ramp up, 90 flat, 30 in the ramp down.
        assert_eq!(schedule.count_before(Duration::from_secs(2)), 40);
        assert_eq!(schedule.count_before(Duration::from_secs(5)), 130);
        assert_eq!(schedule.count_before(Duration::from_secs(7)), 160);
        let flat: Vec<Duration> = (40..43).filter_map(|n| schedule.due(n)).collect();
        let gaps: Vec<Duration> = flat.windows(2).map(|w| w[1] - w[0]).collect();
        for gap in gaps {
            assert!(gap.abs_diff(Duration::from_nanos(33_333_333)) < Duration::from_micros(1));
        }
        // Due times never go backwards, even across stage boundaries.
        let all: Vec<Duration> = (0..160).filter_map(|n| schedule.due(n)).collect();
        assert_eq!(all.len(), 160);
        assert!(all.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn warmup_comes_first_at_the_starting_rate() {
        let schedule =
            Schedule::constant(100.0, Duration::from_secs(2)).with_warmup(Duration::from_secs(1));
        assert_eq!(schedule.duration(), Duration::from_secs(3));
        assert_eq!(schedule.count_before(Duration::from_secs(1)), 100);
        assert_eq!(
            schedule.count_between(Duration::from_secs(1), Duration::from_secs(3)),
            200
        );
    }

    #[test]
    fn the_closed_model_has_no_schedule() {
        let executor = Executor::ConstantConnections {
            duration: Duration::from_secs(1),
        };
        assert_eq!(Schedule::of(&executor), None);
    }
}
