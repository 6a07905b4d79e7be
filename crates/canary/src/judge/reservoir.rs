//! A bounded uniform sample of a stream (Vitter's Algorithm R), for exact
//! latencies where no histogram exists (the in-process metrics source):
//! memory stays at `capacity` values however long the window, and every
//! observation has the same chance `capacity / seen` of being kept, so
//! the kept values are a fair sample for the rank test. The running count
//! and sum cover every observation, so the mean is exact.

use super::latency::Samples;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A reservoir that cannot be made or fed as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReservoirError {
    /// Capacity 0 keeps nothing.
    #[error("reservoir capacity must be at least 1")]
    ZeroCapacity,
    /// NaN or infinite observation.
    #[error("cannot observe {0}: observations must be finite")]
    NotFinite(f64),
}

/// Algorithm R over `f64` observations, with an injectable random number
/// generator (seeded in tests).
#[derive(Debug, Clone)]
pub struct Reservoir<R = StdRng> {
    capacity: usize,
    values: Vec<f64>,
    seen: u64,
    sum: f64,
    rng: R,
}

impl Reservoir<StdRng> {
    /// A reservoir seeded from the operating system.
    pub fn new(capacity: usize) -> Result<Self, ReservoirError> {
        Self::with_rng(capacity, StdRng::from_os_rng())
    }
}

impl<R: Rng> Reservoir<R> {
    /// A reservoir drawing from `rng`.
    pub fn with_rng(capacity: usize, rng: R) -> Result<Self, ReservoirError> {
        if capacity == 0 {
            return Err(ReservoirError::ZeroCapacity);
        }
        Ok(Self {
            capacity,
            values: Vec::with_capacity(capacity.min(1 << 16)),
            seen: 0,
            sum: 0.0,
            rng,
        })
    }

    /// Offers one observation: kept while there is room, then in place of
    /// a random kept one with probability `capacity / seen`.
    pub fn observe(&mut self, value: f64) -> Result<(), ReservoirError> {
        if !value.is_finite() {
            return Err(ReservoirError::NotFinite(value));
        }
        self.seen += 1;
        self.sum += value;
        if self.values.len() < self.capacity {
            self.values.push(value);
        } else {
            let j = self.rng.random_range(0..self.seen);
            if let Ok(j) = usize::try_from(j) {
                if j < self.capacity {
                    self.values[j] = value;
                }
            }
        }
        Ok(())
    }

    /// The kept values (in no particular order).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Observations offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept values with the exact count and sum, for the judge.
    pub fn snapshot(&self) -> Samples {
        Samples {
            values: self.values.clone(),
            count: self.seen,
            sum: self.sum,
        }
    }

    /// Empties the reservoir for a new window (the generator carries on).
    pub fn clear(&mut self) {
        self.values.clear();
        self.seen = 0;
        self.sum = 0.0;
    }
}
