//! The SLO guard: trips fast on a canary that would page, never on noise.

use super::sim::median_max;
use crate::judge::{slo_guard, ConfigError, Counts, JudgeError, SloGuardConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn counts(bad: u64, total: u64) -> Counts {
    Counts { bad, total }
}

#[test]
fn five_percent_errors_against_three_nines_trip_within_tens_of_requests() {
    // Burn rate 50 against a page at 14.4: checked after every request.
    let guard = SloGuardConfig::default();
    let mut needed: Vec<u64> = (0..50)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut counts = Counts::default();
            loop {
                counts.total += 1;
                counts.bad += u64::from(rng.random::<f64>() < 0.05);
                if let Some(trip) = guard.check(&counts).unwrap() {
                    assert!(trip.burn_rate_lower >= 14.4);
                    return counts.total;
                }
                assert!(counts.total < 10_000, "seed {seed} never tripped");
            }
        })
        .collect();
    let (median, max) = median_max(&mut needed);
    let p90 = needed[needed.len() * 9 / 10];
    println!(
        "SLO guard, 5% errors vs 99.9%: trips after {median} requests (median), {p90} (90th percentile), \
         {max} (worst of 50 seeds)"
    );
    // Half the time at the first request it may (min_total); a canary
    // whose first hundreds of requests run well below its 5% takes longer.
    assert!(median <= 60, "median {median} requests");
    assert!(p90 <= 200, "90th percentile {p90} requests");
    assert!(max <= 600, "worst case {max} requests");
}

#[test]
fn a_handful_of_requests_cannot_trip_it() {
    // One error in the first ten requests is 10% (burn 100), but the
    // lower bound of 1/10 is 1.8%: with min_total 1 it would trip; the
    // default min_total of 50 keeps it quiet.
    let one_in_ten = counts(1, 10);
    assert!(slo_guard(&one_in_ten, 0.999, 14.4, 50).unwrap().is_none());
    // Two errors in 50 (4%) are not enough either; three are.
    assert!(slo_guard(&counts(2, 50), 0.999, 14.4, 50)
        .unwrap()
        .is_none());
    let trip = slo_guard(&counts(3, 60), 0.999, 14.4, 50).unwrap().unwrap();
    assert!((trip.bad_ratio_lower - 0.01714919117914121).abs() < 1e-12);
    assert_eq!(
        trip.evidence,
        "canary 5.00% bad (3/60), at least 1.71% (95% Wilson): burn rate ≥ 17.1 against a 99.90% SLO, pages at 14.4"
    );
    // A looser SLO tolerates the same canary.
    assert!(slo_guard(&counts(3, 60), 0.99, 14.4, 50).unwrap().is_none());
}

#[test]
fn bad_guard_settings_and_counts_are_refused() {
    let err = slo_guard(&counts(0, 10), 1.0, 14.4, 50).unwrap_err();
    assert!(
        matches!(
            err,
            JudgeError::Config(ConfigError::OutOfRange {
                field: "slo_guard.objective",
                ..
            })
        ),
        "{err}"
    );
    let err = slo_guard(&counts(0, 10), 0.999, 0.0, 50).unwrap_err();
    assert!(
        err.to_string().starts_with("slo_guard.page_burn_rate = 0"),
        "{err}"
    );
    let err = slo_guard(&counts(0, 10), 0.999, 14.4, 0).unwrap_err();
    assert!(
        err.to_string().starts_with("slo_guard.min_total = 0"),
        "{err}"
    );
    let err = slo_guard(&counts(11, 10), 0.999, 14.4, 1).unwrap_err();
    assert!(matches!(err, JudgeError::BadAboveTotal { .. }));
}
