//! The in-process adapter: one replica's view. Right for `reliable up` and
//! a single gateway; with N replicas each one allows the full quota, so a
//! client gets N times its limit (the Redis adapter exists for that).

use crate::gcra::{step, Decision};
use crate::{LimiterError, Quota, RateLimiter};
use kit::Clock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;
/// A shard sweeps keys whose TAT has passed once it holds this many.
const SWEEP_AT: usize = 4096;

pub struct LocalLimiter {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Shard {
    tats: HashMap<String, i64>,
    sweep_at: usize,
}

impl LocalLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// Decides synchronously; never fails.
    pub fn decide(&self, key: &str, quota: &Quota) -> Decision {
        let now = now_us(self.clock.as_ref());
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        let s = step(shard.tats.get(key).copied(), now, quota);
        if s.allowed {
            shard.tats.insert(key.to_string(), s.tat_us);
            // A key past its TAT is the same as a missing one: forget it,
            // so memory follows the active clients, not every client ever.
            if shard.tats.len() >= shard.sweep_at.max(SWEEP_AT) {
                shard.tats.retain(|_, tat| *tat > now);
                shard.sweep_at = shard.tats.len() * 2;
            }
        }
        Decision::of(s, now, quota)
    }

    /// Keys currently held (for tests and the memory metric).
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).tats.len())
            .sum()
    }
}

pub(crate) fn now_us(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_micros()
}

#[async_trait::async_trait]
impl RateLimiter for LocalLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, quota))
    }
}
