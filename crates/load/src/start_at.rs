//! `--start-at`: agents on several machines begin their load together.
//!
//! A merged test is only one test if its agents overlap: N agents that
//! start a minute apart measure N smaller tests in sequence. Pods of a
//! Kubernetes Job start whenever their node pulls the image, so each agent
//! is given the same wall-clock instant and waits for it (after its setup,
//! so a slow seed does not stagger the load phases).
//!
//! A start already in the past is refused rather than run late: an agent
//! that starts late silently shrinks the overlap. [`TOLERANCE`] allows for
//! the clocks of the machines (NTP keeps them within milliseconds) and the
//! time from parsing the flag to the first arrival.
//!
//! Waiting re-reads the wall clock at least every second instead of
//! sleeping once, so a clock step (NTP) during a long wait is followed.
//! The clock is passed in, so tests run it on Tokio's paused time.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How far in the past a start may be and still count as now.
pub const TOLERANCE: Duration = Duration::from_secs(2);

/// The longest single sleep before the wall clock is read again.
const RECHECK: Duration = Duration::from_secs(1);

/// A wall-clock instant for the load phase to begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt(DateTime<Utc>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartAtError {
    #[error("--start-at `{0}`: expected an RFC 3339 time (2026-12-02T03:00:00Z) or Unix seconds (1796180400)")]
    Parse(String),
    #[error("--start-at {at} is {late_by:?} in the past (now {now}; at most {TOLERANCE:?} is allowed): give every agent a start far enough ahead for the last one to be ready")]
    Past {
        at: String,
        now: String,
        late_by: Duration,
    },
}

impl StartAt {
    /// RFC 3339 (`2026-12-02T03:00:00Z`, any offset) or Unix seconds,
    /// whole or fractional (`1796180400`, `1796180400.5`).
    pub fn parse(text: &str) -> Result<Self, StartAtError> {
        let text = text.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self(at.with_timezone(&Utc)));
        }
        let fail = || StartAtError::Parse(text.to_string());
        let seconds: f64 = text.parse().map_err(|_| fail())?;
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(fail());
        }
        let micros = (seconds * 1e6).round();
        if micros > i64::MAX as f64 {
            return Err(fail());
        }
        DateTime::from_timestamp_micros(micros as i64)
            .map(Self)
            .ok_or_else(fail)
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.0
    }

    /// How long to wait from `now`: zero within [`TOLERANCE`] past the
    /// start, an error beyond it.
    pub fn delay(&self, now: DateTime<Utc>) -> Result<Duration, StartAtError> {
        match (self.0 - now).to_std() {
            Ok(ahead) => Ok(ahead),
            Err(_) => {
                let late_by = (now - self.0).to_std().unwrap_or_default();
                if late_by <= TOLERANCE {
                    Ok(Duration::ZERO)
                } else {
                    Err(StartAtError::Past {
                        at: rfc3339(self.0),
                        now: rfc3339(now),
                        late_by,
                    })
                }
            }
        }
    }

    /// Waits until `now()` reaches the start; refuses a start already
    /// past (see [`StartAt::delay`]).
    pub async fn wait(&self, now: &(dyn Fn() -> DateTime<Utc> + Sync)) -> Result<(), StartAtError> {
        loop {
            let delay = self.delay(now())?;
            if delay.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(delay.min(RECHECK)).await;
        }
    }
}

impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn both_forms_parse_to_the_same_instant() {
        let rfc = StartAt::parse("2026-12-02T03:00:00Z").expect("rfc3339");
        let offset = StartAt::parse("2026-12-02T04:00:00+01:00").expect("offset");
        let unix = StartAt::parse(&rfc.at().timestamp().to_string()).expect("unix");
        assert_eq!(rfc, offset);
        assert_eq!(rfc, unix);
        let half = StartAt::parse(&format!("{}.5", rfc.at().timestamp())).expect("fraction");
        assert_eq!(half.at() - rfc.at(), chrono::Duration::milliseconds(500));
        assert_eq!(rfc.to_string(), "2026-12-02T03:00:00.000Z");
    }

    #[test]
    fn nonsense_is_refused_showing_both_forms() {
        for bad in ["", "tomorrow", "-5", "2026-12-02 03:00", "NaN", "1e300"] {
            let error = StartAt::parse(bad).expect_err(bad).to_string();
            assert!(
                error.contains("RFC 3339") && error.contains("Unix seconds"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_start_in_the_past_beyond_the_tolerance_is_an_error() {
        let start = StartAt::parse("2026-12-02T03:00:00Z").expect("parses");
        assert_eq!(
            start.delay(at("2026-12-02T02:59:30Z")),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(start.delay(at("2026-12-02T03:00:01Z")), Ok(Duration::ZERO));
        let error = start
            .delay(at("2026-12-02T03:01:00Z"))
            .expect_err("a minute late");
        assert!(
            matches!(error, StartAtError::Past { late_by, .. } if late_by == Duration::from_secs(60))
        );
        let text = error.to_string();
        assert!(
            text.contains("2026-12-02T03:00:00.000Z") && text.contains("in the past"),
            "{text}"
        );
    }

    /// The wall clock runs on Tokio's paused time: the wait takes no real
    /// time, and ends exactly at the start.
    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_the_start_on_the_injected_clock() {
        let begun = tokio::time::Instant::now();
        let wall = at("2026-12-02T02:59:50.250Z");
        let now = move || wall + chrono::Duration::from_std(begun.elapsed()).expect("small");
        let start = StartAt::parse("2026-12-02T03:00:00Z").expect("parses");
        start.wait(&now).await.expect("ahead");
        assert_eq!(begun.elapsed(), Duration::from_millis(9_750));
        // Now at the start: no further wait.
        start.wait(&now).await.expect("at the start");
        assert_eq!(begun.elapsed(), Duration::from_millis(9_750));
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_stepped_past_the_start_during_the_wait_is_refused() {
        let begun = tokio::time::Instant::now();
        let wall = at("2026-12-02T02:59:50Z");
        // After the first second, the clock jumps an hour ahead (a bad
        // NTP step): the start is then far in the past.
        let now = move || {
            let jump = if begun.elapsed() >= Duration::from_secs(1) {
                chrono::Duration::hours(1)
            } else {
                chrono::Duration::zero()
            };
            wall + jump + chrono::Duration::from_std(begun.elapsed()).expect("small")
        };
        let start = StartAt::parse("2026-12-02T03:00:00Z").expect("parses");
        let error = start.wait(&now).await.expect_err("stepped past");
        assert!(matches!(error, StartAtError::Past { .. }));
        assert_eq!(begun.elapsed(), Duration::from_secs(1));
    }
}
