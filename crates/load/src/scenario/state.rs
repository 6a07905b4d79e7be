//! The run's shared, mutable state: pools of captured values and the
//! run-wide counter.
//!
//! A pool is what lets a scenario read what setup (or an earlier request)
//! wrote: slugs created in setup, order ids waiting to be confirmed. Its
//! values keep their insertion order, and that order is the *rank* the key
//! choices use: rank 1 is the oldest value, so `hot(80%, 20%)` and `zipf`
//! favour the data that has existed longest, as real traffic favours the
//! links that have had time to spread. A pool has a capacity; a capture
//! into a full pool drops the oldest value, so a long run's memory stays
//! flat.
//!
//! `State` is shared through an `Arc` by every connection task, on several
//! OS threads. Each pool sits behind its own `RwLock`:
//! - a pick (uniform, hot set, zipf) takes the *read* lock: one atomic
//!   read-modify-write on the lock word, no waiting unless a capture is
//!   writing to that very pool, plus a reference-count increment on the
//!   chosen `Bytes` (no copy of the value);
//! - `push` and `take` take the *write* lock for a `VecDeque` push or pop;
//! - the counter is one `AtomicU64::fetch_add`.
//!
//! At tens of thousands of picks per second, the shared lock word is one
//! contended cache line per pool; that costs tens of nanoseconds, small next
//! to the microseconds a request costs.

use crate::plan::{PoolId, PoolSpec};
use bytes::Bytes;
use rand::Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

impl KeyChoice {
    /// The index (0 = oldest) of the value to pick from a pool of `len`
    /// values; `len` must be at least 1.
    pub fn index<R: Rng + ?Sized>(&self, len: usize, rng: &mut R) -> usize {
        debug_assert!(len > 0, "a pick needs at least one value");
        match *self {
            KeyChoice::Uniform => rng.random_range(0..len),
            KeyChoice::HotSet { traffic, keys } => {
                // At least one hot key, so a small pool still has a hot set.
                let hot = ((len as f64 * keys).ceil() as usize).clamp(1, len);
                if hot == len || rng.random_bool(traffic.clamp(0.0, 1.0)) {
                    rng.random_range(0..hot)
                } else {
                    rng.random_range(hot..len)
                }
            }
            KeyChoice::Zipf { s } => {
                // Built per pick because the pool's length moves; `new` is a
                // handful of float operations, sampling a rejection loop that
                // accepts within a couple of tries.
                match rand_distr::Zipf::new(len as f64, s) {
                    Ok(zipf) => {
                        let rank: f64 = rng.sample(zipf);
                        (rank as usize).clamp(1, len) - 1
                    }
                    // Unreachable for a compiled plan (s > 0, len >= 1).
                    Err(_) => rng.random_range(0..len),
                }
            }
        }
    }
}

#[derive(Debug)]
struct Pool {
    name: String,
    capacity: usize,
    values: RwLock<VecDeque<Bytes>>,
}

impl Pool {
    // A panic while holding the lock cannot leave a `VecDeque` half
    // changed, so a poisoned lock is still a valid pool.
    fn read(&self) -> RwLockReadGuard<'_, VecDeque<Bytes>> {
        self.values.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, VecDeque<Bytes>> {
        self.values.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Pools and counters, shared by every connection of the run.
#[derive(Debug)]
pub struct State {
    pools: Vec<Pool>,
    counter: AtomicU64,
}

impl State {
    pub fn new(pools: &[PoolSpec]) -> Self {
        Self {
            pools: pools
                .iter()
                .map(|spec| Pool {
                    name: spec.name.clone(),
                    capacity: spec.capacity.max(1),
                    values: RwLock::new(VecDeque::new()),
                })
                .collect(),
            counter: AtomicU64::new(1),
        }
    }

    /// Adds a captured value; a full pool drops its oldest value first.
    /// An unknown pool id is ignored (a compiled plan has none).
    pub fn push(&self, pool: PoolId, value: Bytes) {
        let Some(pool) = self.pools.get(pool) else {
            return;
        };
        let mut values = pool.write();
        while values.len() >= pool.capacity {
            values.pop_front();
        }
        values.push_back(value);
    }

    /// A value chosen by `choice`, left in the pool; `None` when the pool
    /// is empty.
    pub fn pick<R: Rng + ?Sized>(
        &self,
        pool: PoolId,
        choice: &KeyChoice,
        rng: &mut R,
    ) -> Option<Bytes> {
        let values = self.pools.get(pool)?.read();
        if values.is_empty() {
            return None;
        }
        let index = choice.index(values.len(), rng);
        values.get(index).cloned()
    }

    /// Removes and returns the oldest value (a queue: what was created
    /// first is confirmed first); `None` when the pool is empty.
    pub fn take(&self, pool: PoolId) -> Option<Bytes> {
        self.pools.get(pool)?.write().pop_front()
    }

    /// The run-wide counter: 1, 2, 3, ... across every connection.
    pub fn next_counter(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The pool's name as the file wrote it (empty for an unknown id).
    pub fn pool_name(&self, pool: PoolId) -> &str {
        self.pools.get(pool).map_or("", |p| p.name.as_str())
    }

    /// Values in the pool now.
    pub fn len(&self, pool: PoolId) -> usize {
        self.pools.get(pool).map_or(0, |p| p.read().len())
    }

    pub fn is_empty(&self, pool: PoolId) -> bool {
        self.len(pool) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::sync::Arc;

    const PICKS: usize = 100_000;

    fn pool_of(len: usize) -> State {
        let state = State::new(&[PoolSpec {
            name: "keys".into(),
            capacity: len,
        }]);
        for i in 0..len {
            state.push(0, Bytes::from(i.to_string()));
        }
        state
    }

    /// How often each index was picked.
    fn histogram(state: &State, choice: &KeyChoice, len: usize) -> Vec<usize> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0; len];
        for _ in 0..PICKS {
            let value = state.pick(0, choice, &mut rng).expect("pool is full");
            let index: usize = std::str::from_utf8(&value).unwrap().parse().unwrap();
            counts[index] += 1;
        }
        counts
    }

    #[test]
    fn hot_set_sends_its_traffic_share_to_the_first_keys() {
        let state = pool_of(1_000);
        let choice = KeyChoice::HotSet {
            traffic: 0.8,
            keys: 0.2,
        };
        let counts = histogram(&state, &choice, 1_000);
        let hot: usize = counts[..200].iter().sum();
        let share = hot as f64 / PICKS as f64;
        assert!((0.78..0.82).contains(&share), "hot share {share}");
        // Within each side, picks are spread out, not stuck on one key.
        assert!(counts[..200].iter().all(|&c| c > 200), "hot keys starved");
        assert!(counts[200..].iter().all(|&c| c > 5), "cold keys starved");
    }

    #[test]
    fn zipf_rank_one_gets_its_theoretical_share() {
        let len = 1_000;
        let state = pool_of(len);
        let counts = histogram(&state, &KeyChoice::Zipf { s: 1.0 }, len);
        let harmonic: f64 = (1..=len).map(|r| 1.0 / r as f64).sum();
        let expected = 1.0 / harmonic; // about 0.134
        let share = counts[0] as f64 / PICKS as f64;
        assert!(
            (share - expected).abs() < 0.01,
            "rank 1 share {share}, expected {expected}"
        );
        let rank2 = counts[1] as f64 / PICKS as f64;
        assert!(
            (rank2 - expected / 2.0).abs() < 0.01,
            "rank 2 share {rank2}"
        );
    }

    #[test]
    fn uniform_is_roughly_flat() {
        let state = pool_of(10);
        let counts = histogram(&state, &KeyChoice::Uniform, 10);
        for (index, count) in counts.iter().enumerate() {
            assert!(
                (9_000..11_000).contains(count),
                "index {index} picked {count} times"
            );
        }
    }

    #[test]
    fn a_full_pool_drops_its_oldest_and_take_removes_in_insertion_order() {
        let state = State::new(&[PoolSpec {
            name: "ids".into(),
            capacity: 3,
        }]);
        for id in ["a", "b", "c", "d"] {
            state.push(0, Bytes::from(id));
        }
        assert_eq!(state.len(0), 3);
        assert_eq!(state.take(0), Some(Bytes::from("b")));
        assert_eq!(state.take(0), Some(Bytes::from("c")));
        assert_eq!(state.take(0), Some(Bytes::from("d")));
        assert_eq!(state.take(0), None);
        assert!(state.is_empty(0));
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(state.pick(0, &KeyChoice::Uniform, &mut rng), None);
        assert_eq!(state.pool_name(0), "ids");
    }

    #[test]
    fn a_pool_of_one_serves_every_choice() {
        let state = pool_of(1);
        let mut rng = SmallRng::seed_from_u64(3);
        for choice in [
            KeyChoice::Uniform,
            KeyChoice::HotSet {
                traffic: 0.8,
                keys: 0.2,
            },
            KeyChoice::Zipf { s: 1.2 },
        ] {
            assert_eq!(state.pick(0, &choice, &mut rng), Some(Bytes::from("0")));
        }
    }

    #[test]
    fn the_counter_is_unique_across_threads_and_starts_at_one() {
        let state = Arc::new(State::new(&[]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    (0..1_000).map(|_| state.next_counter()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=4_000).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_pushes_and_picks_keep_the_capacity() {
        let state = Arc::new(State::new(&[PoolSpec {
            name: "ids".into(),
            capacity: 100,
        }]));
        let threads: Vec<_> = (0..4u64)
            .map(|seed| {
                let state = state.clone();
                std::thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed);
                    for i in 0..1_000 {
                        state.push(0, Bytes::from(format!("{seed}-{i}")));
                        assert!(state
                            .pick(0, &KeyChoice::Zipf { s: 1.1 }, &mut rng)
                            .is_some());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(state.len(0), 100);
    }
}
