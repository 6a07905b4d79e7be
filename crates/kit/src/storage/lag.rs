//! Replica lag in time from WAL positions: the primary's position is
//! sampled with the time; once the replica has replayed past a sample, it
//! was caught up as of that sample's time (see `replica.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Turns LSN samples into a lag in time (see the module docs).
#[derive(Debug, Default)]
pub(super) struct LagTracker {
    /// Primary positions not yet replayed, oldest first.
    pending: VecDeque<(Instant, i64)>,
    /// The newest time the replica is known to have been caught up to.
    caught_up_at: Option<Instant>,
    last: Option<Duration>,
    bytes_behind: u64,
}

/// Pending samples kept at most; dropping the oldest only overstates the
/// lag (more reads go to the primary), never understates it.
const MAX_PENDING: usize = 4096;

impl LagTracker {
    /// `primary` was the primary's position at `sampled_at`; the replica
    /// has replayed up to `replayed`; returns the lag at `now`, or `None`
    /// until the replica has been seen caught up to some sample.
    pub(super) fn observe(
        &mut self,
        sampled_at: Instant,
        primary: i64,
        replayed: i64,
        now: Instant,
    ) -> Option<Duration> {
        self.pending.push_back((sampled_at, primary));
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
        while let Some(&(at, lsn)) = self.pending.front() {
            if lsn > replayed {
                break;
            }
            self.caught_up_at = Some(at);
            self.pending.pop_front();
        }
        self.bytes_behind = u64::try_from(primary.saturating_sub(replayed)).unwrap_or(0);
        self.last = self
            .caught_up_at
            .map(|at| now.saturating_duration_since(at));
        self.last
    }

    pub(super) fn last(&self) -> Option<Duration> {
        self.last
    }

    pub(super) fn bytes_behind(&self) -> u64 {
        self.bytes_behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_replica_has_no_lag() {
        let mut lag = LagTracker::default();
        let t0 = Instant::now();
        assert_eq!(lag.observe(t0, 100, 100, t0), Some(Duration::ZERO));
        // An idle primary: the lag stays 0 however long nothing is written.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(lag.observe(later, 100, 100, later), Some(Duration::ZERO));
    }

    #[test]
    fn lag_grows_while_replay_stands_still() {
        let mut lag = LagTracker::default();
        let t0 = Instant::now();
        lag.observe(t0, 100, 100, t0);
        let t1 = t0 + Duration::from_secs(1);
        // The primary wrote; the replica did not replay it.
        assert_eq!(lag.observe(t1, 200, 100, t1), Some(Duration::from_secs(1)));
        let t2 = t0 + Duration::from_secs(3);
        assert_eq!(lag.observe(t2, 300, 100, t2), Some(Duration::from_secs(3)));
        assert_eq!(lag.bytes_behind(), 200);
        // Replayed up to the t1 sample: caught up as of t1.
        let t3 = t0 + Duration::from_secs(4);
        assert_eq!(lag.observe(t3, 300, 250, t3), Some(Duration::from_secs(3)));
        // Fully replayed.
        assert_eq!(lag.observe(t3, 300, 300, t3), Some(Duration::ZERO));
    }

    #[test]
    fn unknown_until_the_replica_has_caught_up_once() {
        let mut lag = LagTracker::default();
        let t0 = Instant::now();
        assert_eq!(lag.observe(t0, 500, 100, t0), None);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(lag.observe(t1, 600, 500, t1), Some(Duration::from_secs(2)));
    }
}
