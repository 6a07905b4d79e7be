//! The generic cell rate algorithm, as pure integer arithmetic on
//! microseconds so that the Redis script and the in-process limiter agree
//! exactly.
//!
//! A key's whole state is its theoretical arrival time (TAT): the moment
//! at which it will have "paid back" every request so far. A request at
//! `now` is allowed when `max(TAT, now) - now <= tolerance`, and then
//! moves the TAT one emission interval on. State older than `now` is the
//! same as no state, so keys can expire at their TAT.

use crate::Quota;

/// What one request at `now` did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub allowed: bool,
    /// The key's TAT after the request (unchanged when refused).
    pub tat_us: i64,
}

/// Decides one request: `stored_tat_us` is the key's TAT, if any.
pub fn step(stored_tat_us: Option<i64>, now_us: i64, quota: &Quota) -> Step {
    let tat = stored_tat_us.map_or(now_us, |t| t.max(now_us));
    if tat - now_us <= quota.tolerance_us() as i64 {
        Step {
            allowed: true,
            tat_us: tat + quota.emission_interval_us() as i64,
        }
    } else {
        Step {
            allowed: false,
            tat_us: tat,
        }
    }
}

/// What a client is told about its allowance after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that would still be allowed right now.
    pub remaining: u64,
    /// Microseconds until the whole burst is available again.
    pub reset_us: u64,
    /// Microseconds until a refused request would be allowed (0 if allowed).
    pub retry_after_us: u64,
}

impl Decision {
    /// Derives the client-facing figures from a [`Step`].
    pub fn of(step: Step, now_us: i64, quota: &Quota) -> Self {
        let interval = quota.emission_interval_us() as i64;
        let tolerance = quota.tolerance_us() as i64;
        let ahead = (step.tat_us - now_us).max(0);
        let remaining = if ahead <= tolerance {
            ((tolerance - ahead) / interval + 1) as u64
        } else {
            0
        };
        Decision {
            allowed: step.allowed,
            remaining: remaining.min(quota.burst()),
            reset_us: ahead as u64,
            retry_after_us: if step.allowed {
                0
            } else {
                (ahead - tolerance).max(0) as u64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quota(rate: u64, per: Duration, burst: u64) -> Quota {
        Quota::new(rate, per, Some(burst)).expect("quota")
    }

    /// Runs `n` requests at `now`, returning how many were allowed.
    fn burst_at(tat: &mut Option<i64>, now: i64, n: u64, q: &Quota) -> u64 {
        let mut allowed = 0;
        for _ in 0..n {
            let s = step(*tat, now, q);
            *tat = Some(s.tat_us);
            allowed += u64::from(s.allowed);
        }
        allowed
    }

    #[test]
    fn a_fresh_key_gets_exactly_its_burst_then_the_rate() {
        let q = quota(10, Duration::from_secs(1), 5);
        let mut tat = None;
        assert_eq!(burst_at(&mut tat, 0, 100, &q), 5);
        // One emission interval (100 ms) later, exactly one more.
        assert_eq!(burst_at(&mut tat, 100_000, 100, &q), 1);
        assert_eq!(burst_at(&mut tat, 199_999, 100, &q), 0);
        assert_eq!(burst_at(&mut tat, 200_000, 100, &q), 1);
        // Idle long enough and the whole burst is back, never more.
        assert_eq!(burst_at(&mut tat, 60_000_000, 100, &q), 5);
    }

    #[test]
    fn over_a_long_window_the_total_is_burst_plus_rate_times_time() {
        let q = quota(100, Duration::from_secs(1), 20);
        let mut tat = None;
        let mut allowed = 0;
        // Hammer every millisecond for 10 s.
        for ms in 0..10_000i64 {
            allowed += burst_at(&mut tat, ms * 1000, 3, &q);
        }
        // 20 at once, then one per 10 ms for 9.999 s.
        assert_eq!(allowed, 20 + 999);
    }

    #[test]
    fn decisions_report_remaining_reset_and_retry_after() {
        let q = quota(10, Duration::from_secs(1), 3);
        let s = step(None, 0, &q);
        let d = Decision::of(s, 0, &q);
        assert_eq!(
            (d.allowed, d.remaining, d.reset_us, d.retry_after_us),
            (true, 2, 100_000, 0)
        );
        let s2 = step(Some(s.tat_us), 0, &q);
        let s3 = step(Some(s2.tat_us), 0, &q);
        let d3 = Decision::of(s3, 0, &q);
        assert_eq!((d3.allowed, d3.remaining, d3.reset_us), (true, 0, 300_000));
        let refused = step(Some(s3.tat_us), 0, &q);
        let d4 = Decision::of(refused, 0, &q);
        assert!(!d4.allowed);
        assert_eq!((d4.remaining, d4.retry_after_us), (0, 100_000));
        // After waiting retry_after the next request is allowed.
        assert!(step(Some(refused.tat_us), 100_000, &q).allowed);
    }
}
