//! Prometheus histogram deltas: what a window of a
//! `*_duration_seconds` histogram holds once the counters at its start are
//! subtracted from those at its end.
//!
//! A histogram is validated once, when built ([`Histogram::from_cumulative`],
//! [`Histogram::new`], [`Histogram::since`]); everything after relies on
//! ascending bounds and counts that add up.

use serde::Serialize;

/// A histogram that cannot be built or read as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// No bucket at all.
    #[error("a histogram needs at least one bucket")]
    Empty,
    /// Bounds and counts differ in length.
    #[error("{bounds} bucket bounds but {counts} bucket counts")]
    LengthMismatch {
        /// Number of bounds.
        bounds: usize,
        /// Number of counts.
        counts: usize,
    },
    /// A bound is NaN, -∞, or +∞ anywhere but last.
    #[error("bucket bound {index} is {bound}: bounds must be numbers, only the last may be +Inf")]
    BadBound {
        /// Index of the bound.
        index: usize,
        /// The bound.
        bound: f64,
    },
    /// Bounds not strictly ascending.
    #[error("bucket bound {index} ({bound}) is not above the previous one ({previous})")]
    NotAscending {
        /// Index of the bound.
        index: usize,
        /// The previous bound.
        previous: f64,
        /// The bound.
        bound: f64,
    },
    /// A cumulative count decreased: not a cumulative histogram, or a
    /// counter reset inside the window.
    #[error(
        "cumulative count of bucket {index} ({value}) is below the previous bucket's ({previous})"
    )]
    NotMonotonic {
        /// Index of the bucket.
        index: usize,
        /// The previous cumulative count.
        previous: u64,
        /// This bucket's cumulative count.
        value: u64,
    },
    /// `count` disagrees with the buckets (the +Inf bucket must hold every
    /// observation).
    #[error("count is {count} but the buckets hold {buckets}")]
    CountMismatch {
        /// The histogram's `_count`.
        count: u64,
        /// What the buckets add up to.
        buckets: u64,
    },
    /// `sum` is NaN or infinite.
    #[error("sum is {0}: must be a finite number")]
    BadSum(f64),
    /// An observation is NaN.
    #[error("cannot observe NaN")]
    NanObservation,
    /// `count_above` was asked for a threshold that is not a bucket bound:
    /// a histogram cannot tell how many observations lie above it.
    #[error("threshold {threshold} is not a bucket bound (bounds: {bounds:?})")]
    NotABound {
        /// The threshold asked for.
        threshold: f64,
        /// The histogram's bounds.
        bounds: Vec<f64>,
    },
    /// Two histograms with different buckets cannot be compared or
    /// subtracted.
    #[error("bucket bounds differ: {left:?} vs {right:?}")]
    DifferentBounds {
        /// This histogram's bounds.
        left: Vec<f64>,
        /// The other's.
        right: Vec<f64>,
    },
    /// The later histogram holds less than the earlier one in some bucket:
    /// the process restarted inside the window.
    #[error("bucket {index} went down from {earlier} to {later}: counter reset inside the window")]
    CounterReset {
        /// Index of the bucket.
        index: usize,
        /// Count at the start of the window.
        earlier: u64,
        /// Count at the end.
        later: u64,
    },
}

/// Observations in buckets: `counts[i]` observations fell in
/// `(bounds[i-1], bounds[i]]` (per bucket, not cumulative).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Relative tolerance when matching a threshold to a bound, so that
/// `0.3` parsed from an SLO spec matches `0.3` parsed from a `le` label
/// even after arithmetic.
const BOUND_TOLERANCE: f64 = 1e-9;

fn check_bounds(bounds: &[f64]) -> Result<(), HistogramError> {
    if bounds.is_empty() {
        return Err(HistogramError::Empty);
    }
    let last = bounds.len() - 1;
    for (index, &bound) in bounds.iter().enumerate() {
        let finite_or_last_inf = bound.is_finite() || (index == last && bound == f64::INFINITY);
        if !finite_or_last_inf {
            return Err(HistogramError::BadBound { index, bound });
        }
        if index > 0 && bound <= bounds[index - 1] {
            return Err(HistogramError::NotAscending {
                index,
                previous: bounds[index - 1],
                bound,
            });
        }
    }
    Ok(())
}

impl Histogram {
    /// A histogram from per-bucket counts; `count` must equal their sum.
    pub fn new(
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    ) -> Result<Self, HistogramError> {
        check_bounds(&bounds)?;
        if bounds.len() != counts.len() {
            return Err(HistogramError::LengthMismatch {
                bounds: bounds.len(),
                counts: counts.len(),
            });
        }
        if !sum.is_finite() {
            return Err(HistogramError::BadSum(sum));
        }
        let buckets = counts
            .iter()
            .try_fold(0u64, |a, &c| a.checked_add(c))
            .unwrap_or(u64::MAX);
        if buckets != count {
            return Err(HistogramError::CountMismatch { count, buckets });
        }
        Ok(Self {
            bounds,
            counts,
            sum,
            count,
        })
    }

    /// A histogram from Prometheus's cumulative buckets (`_bucket{le=…}`,
    /// `_sum`, `_count`). Include the `+Inf` bucket: `count` must equal the
    /// last cumulative count.
    pub fn from_cumulative(
        bounds: Vec<f64>,
        cumulative: Vec<u64>,
        sum: f64,
        count: u64,
    ) -> Result<Self, HistogramError> {
        let mut counts = Vec::with_capacity(cumulative.len());
        let mut previous = 0;
        for (index, &value) in cumulative.iter().enumerate() {
            if value < previous {
                return Err(HistogramError::NotMonotonic {
                    index,
                    previous,
                    value,
                });
            }
            counts.push(value - previous);
            previous = value;
        }
        Self::new(bounds, counts, sum, count)
    }

    /// An empty histogram to [`observe`](Self::observe) into (the
    /// in-process metrics source and tests).
    pub fn empty(bounds: Vec<f64>) -> Result<Self, HistogramError> {
        let counts = vec![0; bounds.len()];
        Self::new(bounds, counts, 0.0, 0)
    }

    /// Records one observation in the first bucket whose bound is ≥ it;
    /// above the last finite bound without a `+Inf` bucket it still counts
    /// in the last bucket.
    pub fn observe(&mut self, value: f64) -> Result<(), HistogramError> {
        if value.is_nan() {
            return Err(HistogramError::NanObservation);
        }
        let index = self
            .bounds
            .partition_point(|&b| b < value)
            .min(self.bounds.len() - 1);
        self.counts[index] += 1;
        self.count += 1;
        self.sum += value;
        Ok(())
    }

    /// What was observed between `earlier` and `self` (two scrapes of the
    /// same series): the window's delta.
    pub fn since(&self, earlier: &Histogram) -> Result<Histogram, HistogramError> {
        self.check_same_bounds(earlier)?;
        let mut counts = Vec::with_capacity(self.counts.len());
        for (index, (&later, &before)) in self.counts.iter().zip(&earlier.counts).enumerate() {
            let delta = later
                .checked_sub(before)
                .ok_or(HistogramError::CounterReset {
                    index,
                    earlier: before,
                    later,
                })?;
            counts.push(delta);
        }
        let count = counts.iter().sum();
        Histogram::new(self.bounds.clone(), counts, self.sum - earlier.sum, count)
    }

    /// Errors unless `other` has exactly the same bounds.
    pub fn check_same_bounds(&self, other: &Histogram) -> Result<(), HistogramError> {
        if self.bounds == other.bounds {
            Ok(())
        } else {
            Err(HistogramError::DifferentBounds {
                left: self.bounds.clone(),
                right: other.bounds.clone(),
            })
        }
    }

    /// Upper bounds (`le`), ascending.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Observations per bucket.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Sum of all observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean (`sum / count`), `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Observations above `threshold`, which must be one of the bounds:
    /// the bad events of a latency SLO "requests slower than `threshold`".
    pub fn count_above(&self, threshold: f64) -> Result<u64, HistogramError> {
        let at = self.bounds.iter().position(|&b| {
            b == threshold
                || (b.is_finite()
                    && threshold.is_finite()
                    && (b - threshold).abs() <= BOUND_TOLERANCE * b.abs().max(threshold.abs()))
        });
        match at {
            Some(index) => Ok(self.counts[index + 1..].iter().sum()),
            None => Err(HistogramError::NotABound {
                threshold,
                bounds: self.bounds.clone(),
            }),
        }
    }

    /// Buckets as `(rank, count)` pairs for the rank test: every
    /// observation of a bucket is tied at the bucket's index. Empty buckets
    /// are left out.
    pub fn ranked_buckets(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i as f64, c))
            .collect()
    }
}
