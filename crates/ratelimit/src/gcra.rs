//! The generic cell rate algorithm, as pure integer arithmetic on
//! microseconds so that the Redis script and the in-process limiter agree
//! exactly.
//!
//! A key's whole state is its theoretical arrival time (TAT): the moment
//! at which it will have "paid back" every cell spent so far. A request
//! costing `cost` cells at `now` is allowed when, after it, the TAT would
//! run at most a full burst ahead of now
//! (`max(TAT, now) + cost x interval <= now + burst x interval`), and then
//! moves the TAT on by `cost` emission intervals. With `cost` = 1 this is the classic
//! `max(TAT, now) - now <= tolerance`. State older than `now` is the same
//! as no state, so keys can expire at their TAT.
//!
//! Weighted costs let one decision spend many cells at once (tokens per
//! minute: one request reserves its tokens), and [`refund`] gives cells
//! back when fewer were used than reserved.

use crate::Quota;

/// What one request at `now` did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub allowed: bool,
    /// The key's TAT after the request (unchanged when refused).
    pub tat_us: i64,
}

/// Decides one request costing one cell: `stored_tat_us` is the key's
/// TAT, if any.
pub fn step(stored_tat_us: Option<i64>, now_us: i64, quota: &Quota) -> Step {
    step_n(stored_tat_us, now_us, quota, 1)
}

/// Decides one request costing `cost` cells at once. A cost of 0 is
/// allowed and leaves the TAT where it was; a cost above the burst is
/// never allowed (see [`Decision::exceeds_burst`]).
pub fn step_n(stored_tat_us: Option<i64>, now_us: i64, quota: &Quota, cost: u64) -> Step {
    let tat = stored_tat_us.map_or(now_us, |t| t.max(now_us));
    let refused = Step {
        allowed: false,
        tat_us: tat,
    };
    if cost == 0 {
        return Step {
            allowed: true,
            tat_us: tat,
        };
    }
    if cost > quota.burst() {
        return refused;
    }
    // cost <= burst <= 10^6 and interval x burst fits a quota: no overflow.
    let interval = quota.emission_interval_us() as i64;
    let increment = interval * cost as i64;
    if tat - now_us <= quota.tolerance_us() as i64 + interval - increment {
        Step {
            allowed: true,
            tat_us: tat + increment,
        }
    } else {
        refused
    }
}

/// Gives back `cost` cells spent earlier: the TAT moves back by `cost`
/// emission intervals, but never below `now` (a key never holds more than
/// a full burst). Returns the new TAT, or `None` when the key is left with
/// no state (its TAT is at or before now).
pub fn refund(stored_tat_us: Option<i64>, now_us: i64, quota: &Quota, cost: u64) -> Option<i64> {
    let back = cost.saturating_mul(quota.emission_interval_us());
    let tat = stored_tat_us?.saturating_sub(i64::try_from(back).unwrap_or(i64::MAX));
    (tat > now_us).then_some(tat)
}

/// What a client is told about its allowance after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Cells (requests, or tokens for a weighted quota) that would still be
    /// allowed right now.
    pub remaining: u64,
    /// Microseconds until the whole burst is available again.
    pub reset_us: u64,
    /// Microseconds until a refused request of the same cost would be
    /// allowed (0 if allowed). `u64::MAX` when it never would be, because
    /// its cost is above the burst: see [`Decision::exceeds_burst`].
    pub retry_after_us: u64,
}

impl Decision {
    /// Derives the client-facing figures from a [`Step`] of cost 1.
    pub fn of(step: Step, now_us: i64, quota: &Quota) -> Self {
        Self::of_n(step, now_us, quota, 1)
    }

    /// Derives the client-facing figures from a [`Step`] of `cost` cells.
    pub fn of_n(step: Step, now_us: i64, quota: &Quota, cost: u64) -> Self {
        let interval = quota.emission_interval_us() as i64;
        let tolerance = quota.tolerance_us() as i64;
        let ahead = (step.tat_us - now_us).max(0);
        let remaining = if ahead <= tolerance {
            ((tolerance - ahead) / interval + 1) as u64
        } else {
            0
        };
        let retry_after_us = if step.allowed {
            0
        } else if cost > quota.burst() {
            u64::MAX
        } else {
            // Allowed once ahead <= tolerance + interval - cost x interval.
            let cost = cost.max(1) as i64;
            (ahead - (tolerance + interval - interval * cost)).max(0) as u64
        };
        Decision {
            allowed: step.allowed,
            remaining: remaining.min(quota.burst()),
            reset_us: ahead as u64,
            retry_after_us,
        }
    }

    /// True for a refusal that waiting cannot cure: the request costs more
    /// cells than the quota's whole burst.
    pub fn exceeds_burst(&self) -> bool {
        !self.allowed && self.retry_after_us == u64::MAX
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

    #[test]
    fn a_weighted_request_spends_its_cost_at_once() {
        // 1000 tokens a minute: one token every 60 ms, burst 1000.
        let q = quota(1000, Duration::from_secs(60), 1000);
        let s = step_n(None, 0, &q, 600);
        assert_eq!(
            s,
            Step {
                allowed: true,
                tat_us: 600 * 60_000
            }
        );
        let d = Decision::of_n(s, 0, &q, 600);
        assert_eq!(
            (d.remaining, d.reset_us, d.retry_after_us),
            (400, 36_000_000, 0)
        );
        // 500 more do not fit: they will once 100 tokens have come back.
        let refused = step_n(Some(s.tat_us), 0, &q, 500);
        assert_eq!(
            refused,
            Step {
                allowed: false,
                tat_us: s.tat_us
            }
        );
        let d = Decision::of_n(refused, 0, &q, 500);
        assert_eq!(
            (d.allowed, d.remaining, d.retry_after_us),
            (false, 400, 6_000_000)
        );
        assert!(!d.exceeds_burst());
        assert!(!step_n(Some(s.tat_us), 5_999_999, &q, 500).allowed);
        let later = step_n(Some(s.tat_us), 6_000_000, &q, 500);
        assert_eq!(
            later,
            Step {
                allowed: true,
                tat_us: 6_000_000 + 1000 * 60_000
            }
        );
        // Exactly the burst fits a fresh key; cost 1 is the classic step.
        assert!(step_n(None, 0, &q, 1000).allowed);
        assert_eq!(step_n(Some(77), 5, &q, 1), step(Some(77), 5, &q));
    }

    #[test]
    fn a_cost_above_the_burst_is_refused_for_ever_and_says_so() {
        let q = quota(10, Duration::from_secs(1), 5);
        for cost in [6, 1_000, u64::MAX] {
            let s = step_n(None, 0, &q, cost);
            assert_eq!(
                s,
                Step {
                    allowed: false,
                    tat_us: 0
                },
                "{cost}"
            );
            let d = Decision::of_n(s, 0, &q, cost);
            assert!(d.exceeds_burst());
            assert_eq!((d.remaining, d.retry_after_us), (5, u64::MAX));
        }
        // A refusal that waiting cures is not one.
        let full = step_n(None, 0, &q, 5);
        let d = Decision::of_n(step_n(Some(full.tat_us), 0, &q, 5), 0, &q, 5);
        assert!(!d.allowed && !d.exceeds_burst());
        assert_eq!(d.retry_after_us, 500_000);
    }

    #[test]
    fn cost_zero_is_allowed_and_changes_nothing() {
        let q = quota(10, Duration::from_secs(1), 2);
        assert_eq!(
            step_n(None, 7, &q, 0),
            Step {
                allowed: true,
                tat_us: 7
            }
        );
        // Even on a key whose TAT is further ahead than this quota allows.
        let s = step_n(Some(10_000_000), 0, &q, 0);
        assert_eq!(
            s,
            Step {
                allowed: true,
                tat_us: 10_000_000
            }
        );
        assert_eq!(Decision::of_n(s, 0, &q, 0).retry_after_us, 0);
    }

    #[test]
    fn a_refund_moves_the_tat_back_but_never_below_now() {
        let q = quota(10, Duration::from_secs(1), 10);
        let spent = step_n(None, 0, &q, 8).tat_us;
        assert_eq!(spent, 800_000);
        assert_eq!(refund(Some(spent), 0, &q, 3), Some(500_000));
        // Refunding everything (or more) leaves no state: a full burst.
        assert_eq!(refund(Some(spent), 0, &q, 8), None);
        assert_eq!(refund(Some(spent), 0, &q, 9), None);
        assert_eq!(refund(Some(spent), 0, &q, u64::MAX), None);
        assert_eq!(refund(Some(spent), 100_000, &q, 7), None);
        assert_eq!(refund(Some(spent), 100_000, &q, 6), Some(200_000));
        // Nothing to give back to a key without state; cost 0 is a no-op.
        assert_eq!(refund(None, 0, &q, 3), None);
        assert_eq!(refund(Some(spent), 0, &q, 0), Some(spent));
        // After a refund of 3 at 0, exactly 5 fit again, as if never spent.
        let after = refund(Some(spent), 0, &q, 3);
        assert!(step_n(after, 0, &q, 5).allowed);
        assert!(!step_n(after, 0, &q, 6).allowed);
    }
}
