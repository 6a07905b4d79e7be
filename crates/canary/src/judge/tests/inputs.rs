//! Histograms and reservoirs: building, validating, reading.

use crate::judge::{Histogram, HistogramError, Reservoir, ReservoirError};
use rand::rngs::StdRng;
use rand::SeedableRng;

const INF: f64 = f64::INFINITY;

fn bounds() -> Vec<f64> {
    vec![0.005, 0.01, 0.025, 0.05, 0.1, INF]
}

#[test]
fn from_cumulative_reads_prometheus_buckets() {
    let h = Histogram::from_cumulative(bounds(), vec![10, 30, 60, 90, 99, 100], 2.5, 100).unwrap();
    assert_eq!(h.counts(), &[10, 20, 30, 30, 9, 1]);
    assert_eq!(h.count(), 100);
    assert_eq!(h.mean(), Some(0.025));
    // Latency SLO "under 50 ms": 9 + 1 above.
    assert_eq!(h.count_above(0.05), Ok(10));
    assert_eq!(h.count_above(0.1), Ok(1));
    // A threshold read from elsewhere, off by rounding, still matches.
    assert_eq!(h.count_above(0.1 * 3.0 / 3.0), Ok(1));
    assert_eq!(h.count_above(INF), Ok(0));
    assert_eq!(
        h.count_above(0.3),
        Err(HistogramError::NotABound {
            threshold: 0.3,
            bounds: bounds()
        })
    );
    assert_eq!(
        h.ranked_buckets(),
        vec![
            (0.0, 10),
            (1.0, 20),
            (2.0, 30),
            (3.0, 30),
            (4.0, 9),
            (5.0, 1)
        ]
    );
    let empty = Histogram::from_cumulative(bounds(), vec![0; 6], 0.0, 0).unwrap();
    assert_eq!(empty.mean(), None);
    assert!(empty.ranked_buckets().is_empty());
}

#[test]
fn bad_histograms_are_refused_with_the_reason() {
    let cases: Vec<(Result<Histogram, HistogramError>, HistogramError)> = vec![
        (
            Histogram::from_cumulative(vec![], vec![], 0.0, 0),
            HistogramError::Empty,
        ),
        (
            Histogram::from_cumulative(bounds(), vec![1, 2, 3], 0.0, 3),
            HistogramError::LengthMismatch {
                bounds: 6,
                counts: 3,
            },
        ),
        (
            Histogram::from_cumulative(bounds(), vec![10, 30, 20, 90, 99, 100], 1.0, 100),
            HistogramError::NotMonotonic {
                index: 2,
                previous: 30,
                value: 20,
            },
        ),
        (
            Histogram::from_cumulative(vec![0.1, f64::NAN, INF], vec![1, 2, 3], 0.0, 3),
            HistogramError::BadBound {
                index: 1,
                bound: f64::NAN,
            },
        ),
        (
            Histogram::from_cumulative(vec![0.1, INF, 2.0], vec![1, 2, 3], 0.0, 3),
            HistogramError::BadBound {
                index: 1,
                bound: INF,
            },
        ),
        (
            Histogram::from_cumulative(vec![f64::NEG_INFINITY, 1.0], vec![1, 2], 0.0, 2),
            HistogramError::BadBound {
                index: 0,
                bound: f64::NEG_INFINITY,
            },
        ),
        (
            Histogram::from_cumulative(vec![0.1, 0.1, INF], vec![1, 2, 3], 0.0, 3),
            HistogramError::NotAscending {
                index: 1,
                previous: 0.1,
                bound: 0.1,
            },
        ),
        (
            Histogram::from_cumulative(bounds(), vec![10, 30, 60, 90, 99, 100], 1.0, 101),
            HistogramError::CountMismatch {
                count: 101,
                buckets: 100,
            },
        ),
        (
            Histogram::from_cumulative(bounds(), vec![10, 30, 60, 90, 99, 100], f64::NAN, 100),
            HistogramError::BadSum(f64::NAN),
        ),
    ];
    for (got, expected) in cases {
        let err = got.unwrap_err();
        // NaN != NaN: compare the messages, which carry every field.
        assert_eq!(err.to_string(), expected.to_string());
    }
    let message = Histogram::from_cumulative(bounds(), vec![10, 30, 20, 90, 99, 100], 1.0, 100)
        .unwrap_err()
        .to_string();
    assert!(message.contains("bucket 2"), "{message}");
}

#[test]
fn since_subtracts_two_scrapes_and_detects_resets() {
    let earlier =
        Histogram::from_cumulative(bounds(), vec![10, 30, 60, 90, 99, 100], 2.5, 100).unwrap();
    let later =
        Histogram::from_cumulative(bounds(), vec![15, 40, 80, 120, 130, 135], 3.5, 135).unwrap();
    let window = later.since(&earlier).unwrap();
    assert_eq!(window.counts(), &[5, 5, 10, 10, 1, 4]);
    assert_eq!(window.count(), 35);
    assert!((window.sum() - 1.0).abs() < 1e-12);
    assert_eq!(
        earlier.since(&later).unwrap_err(),
        HistogramError::CounterReset {
            index: 0,
            earlier: 15,
            later: 10
        }
    );
    let other = Histogram::empty(vec![0.1, INF]).unwrap();
    assert!(matches!(
        later.since(&other),
        Err(HistogramError::DifferentBounds { .. })
    ));
}

#[test]
fn observe_fills_the_right_bucket() {
    let mut h = Histogram::empty(bounds()).unwrap();
    for v in [0.001, 0.005, 0.0051, 0.07, 30.0] {
        h.observe(v).unwrap();
    }
    // `le` is inclusive: 0.005 goes in the first bucket.
    assert_eq!(h.counts(), &[2, 1, 0, 0, 1, 1]);
    assert_eq!(h.count(), 5);
    assert_eq!(h.observe(f64::NAN), Err(HistogramError::NanObservation));
    // Without a +Inf bucket, overflow lands in the last one.
    let mut finite = Histogram::empty(vec![0.1, 1.0]).unwrap();
    finite.observe(5.0).unwrap();
    assert_eq!(finite.counts(), &[0, 1]);
}

#[test]
fn reservoir_keeps_everything_until_full() {
    let mut r = Reservoir::with_rng(5, StdRng::seed_from_u64(1)).unwrap();
    for v in [1.0, 2.0, 3.0] {
        r.observe(v).unwrap();
    }
    assert_eq!(r.values(), &[1.0, 2.0, 3.0]);
    let s = r.snapshot();
    assert_eq!((s.count, s.sum, s.mean()), (3, 6.0, Some(2.0)));
    assert_eq!(
        Reservoir::with_rng(0, StdRng::seed_from_u64(1)).unwrap_err(),
        ReservoirError::ZeroCapacity
    );
    assert!(matches!(r.observe(f64::NAN), Err(ReservoirError::NotFinite(v)) if v.is_nan()));
    assert!(r.observe(f64::INFINITY).is_err());
    assert_eq!(r.seen(), 3, "refused observations are not counted");
    r.clear();
    assert_eq!((r.values().len(), r.seen()), (0, 0));
}

#[test]
fn reservoir_sample_is_uniform_and_reproducible() {
    // 1,000 observations 0..999 into 100 slots, 2,000 seeded trials: every
    // observation should be kept with probability 0.1, the first as often
    // as the last, and the exact mean stays exact.
    let mut rng = StdRng::seed_from_u64(7);
    let mut kept = vec![0u32; 1000];
    for _ in 0..2000 {
        let mut r =
            Reservoir::with_rng(100, StdRng::seed_from_u64(rand::Rng::random(&mut rng))).unwrap();
        for v in 0..1000 {
            r.observe(f64::from(v)).unwrap();
        }
        assert_eq!(r.values().len(), 100);
        assert_eq!(r.snapshot().mean(), Some(499.5));
        for &v in r.values() {
            kept[v as usize] += 1;
        }
    }
    let decile =
        |d: usize| f64::from(kept[d * 100..(d + 1) * 100].iter().sum::<u32>()) / (100.0 * 2000.0);
    for d in 0..10 {
        assert!(
            (decile(d) - 0.1).abs() < 0.005,
            "decile {d} kept with probability {}",
            decile(d)
        );
    }
    for i in [0, 999] {
        let p = f64::from(kept[i]) / 2000.0;
        assert!(
            (p - 0.1).abs() < 0.025,
            "observation {i} kept with probability {p}"
        );
    }
    let fill = |seed| {
        let mut r = Reservoir::with_rng(10, StdRng::seed_from_u64(seed)).unwrap();
        for v in 0..500 {
            r.observe(f64::from(v)).unwrap();
        }
        r.values().to_vec()
    };
    assert_eq!(fill(3), fill(3));
    assert_ne!(fill(3), fill(4));
}
