//! Power: how fast real regressions fail, and that small ones pass.
//!
//! The canary takes 5% of 200 requests/s (10/s); the judge looks every
//! second at the window so far, at the per-look significance of a rollout
//! planned as 6 steps × 30 s with a look a second over two metrics
//! (0.05 / 360 ≈ 1.4e-4): stricter than the A/A tests' plan, so these
//! detection times are upper bounds for it. Run with `--nocapture` to see
//! the figures.

use super::sim::{median_max, Version, Window, HEALTHY, RPS};
use crate::judge::{Judge, JudgeConfig, LatencyConfig, MetricData, Reservoir, Verdict};
use rand::rngs::StdRng;
use rand::SeedableRng;

const PLANNED_LOOKS: u32 = 180;
const METRICS: u32 = 2;
const CANARY_PERCENT: u32 = 5;
const SEEDS: u64 = 50;

fn judge() -> Judge {
    Judge::new(JudgeConfig::default(), PLANNED_LOOKS, METRICS).unwrap()
}

/// Which data a look judges.
#[derive(Clone, Copy)]
enum Data {
    Errors,
    LatencyHistogram,
    LatencySamples,
}

/// Seconds of traffic until the first failing look, for each seed (None
/// if it never failed within `limit` seconds).
fn seconds_to_fail(canary: &Version, data: Data, limit: u32) -> Vec<Option<u32>> {
    let judge = judge();
    (0..SEEDS)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut window = Window::new(matches!(data, Data::LatencySamples));
            for second in 1..=limit {
                window.second(canary, &HEALTHY, CANARY_PERCENT, &mut rng);
                let (c, b) = (&window.canary, &window.baseline);
                let (cs, bs) = (c.exact(), b.exact());
                let input = match data {
                    Data::Errors => MetricData::Proportion {
                        canary: &c.counts,
                        baseline: &b.counts,
                    },
                    Data::LatencyHistogram => MetricData::LatencyHistogram {
                        canary: &c.histogram,
                        baseline: &b.histogram,
                    },
                    Data::LatencySamples => MetricData::LatencySamples {
                        canary: &cs,
                        baseline: &bs,
                    },
                };
                if judge.metric("m", input).unwrap().verdict == Verdict::Fail {
                    return Some(second);
                }
            }
            None
        })
        .collect()
}

fn summary(label: &str, results: &[Option<u32>], limit: u32) -> (u64, u64) {
    let failed: Vec<u64> = results.iter().flatten().map(|&s| u64::from(s)).collect();
    assert_eq!(
        failed.len(),
        results.len(),
        "{label}: {} of {} seeds never failed within {limit} s",
        results.len() - failed.len(),
        results.len()
    );
    let (median, max) = median_max(&mut failed.clone());
    let per_second = u64::from(RPS * CANARY_PERCENT / 100);
    println!(
        "{label}: fails after {median} s (median), {max} s (worst of {SEEDS} seeds) = {} / {} canary requests",
        median * per_second,
        max * per_second
    );
    (median, max)
}

#[test]
fn five_percent_errors_fail_within_seconds() {
    let bad = Version {
        error_rate: 0.05,
        ..HEALTHY
    };
    let (_, max) = summary(
        "5% errors vs 0.1%",
        &seconds_to_fail(&bad, Data::Errors, 60),
        60,
    );
    assert!(max <= 20, "worst case {max} s: should be well under 30 s");
}

#[test]
fn fifty_ms_more_latency_fails_within_seconds() {
    let slow = Version {
        shift: 0.050,
        ..HEALTHY
    };
    let (_, max) = summary(
        "+50 ms, Prometheus buckets",
        &seconds_to_fail(&slow, Data::LatencyHistogram, 30),
        30,
    );
    // 50 requests (the minimum sample) arrive after 5 s.
    assert!(max <= 6, "worst case {max} s");
    let (_, max) = summary(
        "+50 ms, exact samples",
        &seconds_to_fail(&slow, Data::LatencySamples, 30),
        30,
    );
    assert!(max <= 6, "worst case {max} s");
}

#[test]
fn twenty_percent_slower_is_caught_by_exact_samples() {
    // Above the 10% floor. The default buckets hardly resolve a 2 ms
    // service (almost everything is ≤ 5 ms), so only exact samples see it
    // quickly; the histogram figure is printed for the docs.
    let slower = Version {
        scale: 1.2,
        ..HEALTHY
    };
    let (_, max) = summary(
        "+20% latency, exact samples",
        &seconds_to_fail(&slower, Data::LatencySamples, 120),
        120,
    );
    assert!(max <= 60, "worst case {max} s");
    let histogram = seconds_to_fail(&slower, Data::LatencyHistogram, 120);
    let caught = histogram.iter().flatten().count();
    println!("+20% latency, Prometheus buckets: {caught} of {SEEDS} seeds failed within 120 s");
}

/// 20,000 requests a side, the canary 2% slower.
fn two_percent_window() -> Window {
    let mut rng = StdRng::seed_from_u64(42);
    let mut window = Window::new(true);
    let slower = Version {
        scale: 1.02,
        ..HEALTHY
    };
    for _ in 0..RPS {
        window.second(&slower, &HEALTHY, 50, &mut rng);
    }
    window
}

#[test]
fn two_percent_slower_passes_on_the_effect_floor() {
    // One look at the full 5% (the most liberal level): the 2% slowdown is
    // statistically certain on exact samples, and passes because
    // ×1.02 ≤ ×1.10.
    let single_look = Judge::new(JudgeConfig::default(), 1, 1).unwrap();
    let w = two_percent_window();
    assert_eq!(w.canary.counts.total, 20_000);
    let (cs, bs) = (w.canary.exact(), w.baseline.exact());
    let exact = single_look
        .metric(
            "latency",
            MetricData::LatencySamples {
                canary: &cs,
                baseline: &bs,
            },
        )
        .unwrap();
    let histo = single_look
        .metric(
            "latency",
            MetricData::LatencyHistogram {
                canary: &w.canary.histogram,
                baseline: &w.baseline.histogram,
            },
        )
        .unwrap();
    println!(
        "+2% latency, 20,000 a side, exact samples: {}",
        exact.evidence
    );
    println!(
        "+2% latency, 20,000 a side, Prometheus buckets: {}",
        histo.evidence
    );
    assert_eq!(exact.verdict, Verdict::Pass);
    assert_eq!(histo.verdict, Verdict::Pass);
    assert!(
        exact.p_value.unwrap() < 0.05,
        "the test alone would fail it: {}",
        exact.evidence
    );
    let ratio = exact.effect.unwrap();
    assert!((1.01..1.03).contains(&ratio), "{ratio}");

    // Without the floor the same data fails: the floor is what passes it.
    let no_floor = JudgeConfig {
        latency: LatencyConfig {
            min_effect: 0.0,
            ..LatencyConfig::default()
        },
        ..JudgeConfig::default()
    };
    let strict = Judge::new(no_floor, 1, 1).unwrap();
    let v = strict
        .metric(
            "latency",
            MetricData::LatencySamples {
                canary: &cs,
                baseline: &bs,
            },
        )
        .unwrap();
    assert_eq!(v.verdict, Verdict::Fail, "{}", v.evidence);

    // Through bounded reservoirs (5,000 kept of 20,000), same verdict.
    let mut rng = StdRng::seed_from_u64(9);
    let mut reservoirs = [(); 2].map(|_| {
        Reservoir::with_rng(5_000, StdRng::seed_from_u64(rand::Rng::random(&mut rng))).unwrap()
    });
    for (r, values) in reservoirs.iter_mut().zip([&cs.values, &bs.values]) {
        for &v in values {
            r.observe(v).unwrap();
        }
    }
    let (rc, rb) = (reservoirs[0].snapshot(), reservoirs[1].snapshot());
    let v = single_look
        .metric(
            "latency",
            MetricData::LatencySamples {
                canary: &rc,
                baseline: &rb,
            },
        )
        .unwrap();
    println!("+2% latency, reservoirs of 5,000: {}", v.evidence);
    assert_eq!(v.verdict, Verdict::Pass);
    assert_eq!(v.n_canary, 5_000);
    assert_eq!(
        v.effect, exact.effect,
        "the mean is exact through the reservoir"
    );
}
