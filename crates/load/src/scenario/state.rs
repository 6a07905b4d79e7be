//! The run's shared, mutable state: pools of captured values and counters.

use crate::plan::{PoolId, PoolSpec};
use bytes::Bytes;

/// How a placeholder chooses a key from a pool.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChoice {
    Uniform,
    /// `traffic` of the picks go to the first `keys` of the pool (both
    /// fractions in (0, 1)).
    HotSet {
        traffic: f64,
        keys: f64,
    },
    /// Rank r (1 = the oldest value) is picked with weight 1 / r^s.
    Zipf {
        s: f64,
    },
}

/// Pools and counters, shared by every connection of the run.
#[derive(Debug)]
pub struct State {
    pools: Vec<std::sync::Mutex<Vec<Bytes>>>,
}

impl State {
    pub fn new(pools: &[PoolSpec]) -> Self {
        Self {
            pools: pools.iter().map(|_| Default::default()).collect(),
        }
    }

    /// Adds a captured value.
    pub fn push(&self, pool: PoolId, value: Bytes) {
        let _ = (pool, value);
        todo!("State::push")
    }

    /// Values in the pool now.
    pub fn len(&self, pool: PoolId) -> usize {
        self.pools
            .get(pool)
            .map_or(0, |p| p.lock().map_or(0, |v| v.len()))
    }

    pub fn is_empty(&self, pool: PoolId) -> bool {
        self.len(pool) == 0
    }
}
