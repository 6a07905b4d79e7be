//! The random identifiers made on every request: request ids, trace ids
//! and span ids.
//!
//! They must not collide, but they are not secrets (they are logged,
//! echoed to clients and passed to every upstream), so they come from a
//! fast generator per thread, seeded once from the operating system's
//! randomness through `rand`'s thread generator: xoshiro (`SmallRng`)
//! costs a few instructions a draw, where the thread generator
//! (ChaCha12) refills its block every 64 words and reaches its
//! thread-local through a reference count on every call (about 200
//! instructions a request more, issue 18). OpenTelemetry's
//! SDK makes its trace and span ids the same way. Never use these for
//! keys, tokens or anything an attacker must not guess: `rand::rng()` is
//! for those.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// 128 random bits, none of them zero together (an all-zero id is
/// invalid in W3C trace context, and a sentinel elsewhere).
pub fn nonzero_u128() -> u128 {
    IDS.with_borrow_mut(|rng| loop {
        let id: u128 = rng.random();
        if id != 0 {
            return id;
        }
    })
}

/// 64 random bits, not all zero.
pub fn nonzero_u64() -> u64 {
    IDS.with_borrow_mut(|rng| loop {
        let id: u64 = rng.random();
        if id != 0 {
            return id;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_do_not_repeat_within_a_thread_or_across_threads() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(nonzero_u128()));
        }
        // Each thread seeds its own generator: two threads must not
        // produce the same sequence.
        let other: Vec<u128> = std::thread::spawn(|| (0..1_000).map(|_| nonzero_u128()).collect())
            .join()
            .expect("thread");
        assert!(other.iter().all(|id| seen.insert(*id)));
        let spans: HashSet<u64> = (0..10_000).map(|_| nonzero_u64()).collect();
        assert_eq!(spans.len(), 10_000);
    }

    #[test]
    fn every_bit_of_an_id_varies() {
        // A generator that left a bit fixed (or a conversion that dropped
        // the high half) would show here: each bit is set in some ids and
        // clear in others.
        let (mut any, mut all) = (0u128, u128::MAX);
        for _ in 0..1_000 {
            let id = nonzero_u128();
            any |= id;
            all &= id;
        }
        assert_eq!(any, u128::MAX);
        assert_eq!(all, 0);
        let (mut any, mut all) = (0u64, u64::MAX);
        for _ in 0..1_000 {
            let id = nonzero_u64();
            any |= id;
            all &= id;
        }
        assert_eq!((any, all), (u64::MAX, 0));
    }
}
