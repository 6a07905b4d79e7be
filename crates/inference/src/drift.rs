//! Drift: are today's inputs and predictions still distributed like the data
//! the model version was validated on?
//!
//! A model does not fail loudly when the world changes: it keeps answering,
//! with confidence, about inputs unlike any it was trained on. The only
//! early signal is the distribution of what it is fed and what it answers.
//! Each model version ships a `reference.json` next to its `model.onnx`:
//! one histogram per input feature, in column order, and one of the
//! predicted classes, computed on its validation data:
//!
//! ```json
//! {"features": [{"name": "pixel_0", "edges": [-0.5, 0.5, 1.5], "counts": [1400, 37]}],
//!  "prediction": {"counts": [151, 147, 141]}}
//! ```
//!
//! A [`DriftMonitor`] keeps the last `window` answered rows (a sliding,
//! count-based window, so a quiet model is judged on its last N requests
//! rather than on an empty time slot) binned on the reference's edges, and
//! compares the window's histograms with the reference's:
//!
//! - **Binning.** `edges` holds `k + 1` increasing values for `k` bins; bin
//!   `i` holds `edges[i] <= x < edges[i + 1]`. A value below the first edge
//!   counts in the first bin, a value at or above the last edge in the last
//!   bin (the reference was built the same way), and NaN in the first bin.
//! - **PSI** (population stability index): `Σ (a − e) · ln(a / e)` over the
//!   bins, `a` the live proportion and `e` the reference's. An empty bin
//!   would make it infinite, so both proportions are floored at
//!   [`PSI_EPSILON`] (1e-4) without renormalising: an empty reference bin
//!   that receives 1 % of the live rows adds about 0.046. The usual reading
//!   ([`PSI_ALERT_THRESHOLD`]): below 0.1 stable, 0.1 to 0.2 a moderate
//!   shift, above 0.2 a significant one.
//! - **KS**: the two-sample Kolmogorov–Smirnov statistic computed on the
//!   histograms, i.e. `max |CDF_ref − CDF_live|` evaluated at the bin edges
//!   only. It is a lower bound of the exact statistic (which needs the raw
//!   values), exact when the data are discrete on the bins as the digits'
//!   pixels are. Between 0 and 1; no p-value is given (at window sizes of
//!   thousands, any shift is "significant").
//!
//! Scores are computed only once the window holds `min(window, 100)` rows
//! ([`DriftMonitor::min_rows`]): on fewer, sampling noise alone gives PSIs
//! above the alert threshold. The prediction distribution has its own
//! window and minimum (a model without a class output feeds none).
//!
//! Cost: `observe` bins each value (a binary search on the edges) and
//! updates running counts, so it is O(rows · features · log bins) under one
//! short lock and allocates only while the window first fills; `scores` is
//! O(features · bins). Memory: 2 bytes per feature per row of the window
//! (a 10,000-row window of the 64 digits pixels: 1.3 MB), plus the counts.
//!
//! Metrics: [`DriftMonitor::publish`] sets
//! `inference_drift_score{model, version, feature, statistic}` with
//! `statistic` = `psi` | `ks` and `feature` a feature name from the
//! reference or `prediction`: 2 · (features + 1) series per loaded version
//! (130 for the digits), bounded by the reference file the model ships.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A PSI above this is a significant shift (the industry convention: below
/// 0.1 stable, 0.1 to 0.2 moderate, above 0.2 significant). Alert on it.
pub const PSI_ALERT_THRESHOLD: f64 = 0.2;

/// The floor applied to both proportions of a bin in the PSI, so an empty
/// bin contributes a large but finite term.
pub const PSI_EPSILON: f64 = 1e-4;

/// The fewest rows (or predictions) a window needs before it is scored,
/// unless the window itself is smaller.
pub const MIN_SCORED_ROWS: usize = 100;

/// Gauge of the drift scores: `{model, version, feature, statistic}`.
pub const DRIFT_SCORE: &str = "inference_drift_score";

/// Gauge of the rows currently in the drift window: `{model, version}`.
pub const DRIFT_WINDOW_ROWS: &str = "inference_drift_window_rows";
/// Counter: drift checks (one per [`DriftMonitor::publish`] with a scored
/// window) by `outcome` (`drifted`: some PSI above
/// [`PSI_ALERT_THRESHOLD`]; `stable`). The ratio is the SLI of the drift
/// SLO in `slo/inference.yaml`, so drift alerts are burn-rate alerts
/// generated with the other SLO rules: a window that stays drifted burns
/// the budget fast and pages, one noisy check does not.
pub const DRIFT_CHECKS: &str = "inference_drift_checks_total";

/// The most bins a histogram may have: bin indices are kept as `u16`.
pub const MAX_BINS: usize = 1 << 16;

/// The distributions a model version was validated on: `reference.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// One histogram per input feature, in column order.
    pub features: Vec<FeatureReference>,
    /// The histogram of predicted class indices.
    pub prediction: PredictionReference,
}

/// The reference histogram of one input feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    /// The feature's name, unique in the reference; a metric label.
    pub name: String,
    /// `k + 1` strictly increasing, finite bin edges for `k` bins.
    pub edges: Vec<f64>,
    /// `k` counts, not all zero.
    pub counts: Vec<u64>,
}

/// The reference histogram of predicted classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionReference {
    /// One count per class index; empty if the model has no class output.
    pub counts: Vec<u64>,
}

/// Why a reference or a monitor was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DriftError {
    /// The file is not a reference document.
    #[error("reference.json is not valid: {0}")]
    Parse(String),
    /// A reference without features.
    #[error("the reference has no features")]
    NoFeatures,
    /// Edges that are not finite and strictly increasing, or fewer than two.
    #[error("feature {feature:?}: edges must be at least 2 finite, strictly increasing values")]
    BadEdges {
        /// The feature.
        feature: String,
    },
    /// `counts.len() + 1 != edges.len()`.
    #[error(
        "feature {feature:?}: {counts} counts for {edges} edges (want one count fewer than edges)"
    )]
    CountsMismatch {
        /// The feature.
        feature: String,
        /// The number of edges.
        edges: usize,
        /// The number of counts.
        counts: usize,
    },
    /// A histogram whose counts are all zero (`prediction` for the prediction's).
    #[error("{feature:?}: the reference counts are all zero")]
    EmptyHistogram {
        /// The feature, or `prediction`.
        feature: String,
    },
    /// More bins (or classes) than [`MAX_BINS`].
    #[error("{feature:?}: {bins} bins, at most {MAX_BINS} are supported")]
    TooManyBins {
        /// The feature, or `prediction`.
        feature: String,
        /// The number of bins.
        bins: usize,
    },
    /// Two features with one name, or an empty name.
    #[error("feature name {0:?} is empty or not unique")]
    BadName(String),
    /// A window of zero rows, or too large to allocate.
    #[error("the drift window must hold at least one row and fit in memory, got {0}")]
    BadWindow(usize),
}

impl Reference {
    /// Parses and validates a `reference.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DriftError> {
        let reference: Reference =
            serde_json::from_slice(bytes).map_err(|e| DriftError::Parse(e.to_string()))?;
        reference.validate()?;
        Ok(reference)
    }

    /// Edges finite and strictly increasing, `counts.len() + 1 == edges.len()`,
    /// non-zero totals, names unique and non-empty, at most [`MAX_BINS`] bins.
    pub fn validate(&self) -> Result<(), DriftError> {
        if self.features.is_empty() {
            return Err(DriftError::NoFeatures);
        }
        let mut names = HashSet::with_capacity(self.features.len());
        for f in &self.features {
            if f.name.is_empty() || !names.insert(f.name.as_str()) {
                return Err(DriftError::BadName(f.name.clone()));
            }
            let increasing = f.edges.windows(2).all(|w| w[0] < w[1]);
            if f.edges.len() < 2 || !increasing || !f.edges.iter().all(|e| e.is_finite()) {
                return Err(DriftError::BadEdges {
                    feature: f.name.clone(),
                });
            }
            if f.counts.len() + 1 != f.edges.len() {
                return Err(DriftError::CountsMismatch {
                    feature: f.name.clone(),
                    edges: f.edges.len(),
                    counts: f.counts.len(),
                });
            }
            check_histogram(&f.name, &f.counts)?;
        }
        if !self.prediction.counts.is_empty() {
            check_histogram("prediction", &self.prediction.counts)?;
        }
        Ok(())
    }
}

fn check_histogram(name: &str, counts: &[u64]) -> Result<(), DriftError> {
    if counts.len() > MAX_BINS {
        return Err(DriftError::TooManyBins {
            feature: name.to_string(),
            bins: counts.len(),
        });
    }
    if counts.iter().all(|&c| c == 0) {
        return Err(DriftError::EmptyHistogram {
            feature: name.to_string(),
        });
    }
    Ok(())
}

/// Proportions of a histogram (its total is non-zero: validated).
fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// The bin of `x`: bins are `[edges[i], edges[i+1])`, out-of-range values
/// go to the first or last bin, NaN to the first.
fn bin_of(edges: &[f64], x: f64) -> u16 {
    // The interior edges (all but the first and last): how many are <= x is the bin.
    let interior = &edges[1..edges.len() - 1];
    // At most MAX_BINS - 1 interior edges (validated), so this fits a u16.
    interior.partition_point(|&e| e <= x) as u16
}

/// PSI of live counts against reference proportions, both floored at [`PSI_EPSILON`].
fn psi(expected: &[f64], live: &[u64], live_total: u64) -> f64 {
    let n = live_total as f64;
    expected
        .iter()
        .zip(live)
        .map(|(&e, &c)| {
            let a = (c as f64 / n).max(PSI_EPSILON);
            let e = e.max(PSI_EPSILON);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The binned two-sample KS statistic: max |CDF difference| at the bin edges.
fn ks(expected: &[f64], live: &[u64], live_total: u64) -> f64 {
    let n = live_total as f64;
    let (mut cdf_e, mut cdf_a, mut max) = (0.0f64, 0.0f64, 0.0f64);
    for (&e, &c) in expected.iter().zip(live) {
        cdf_e += e;
        cdf_a += c as f64 / n;
        max = max.max((cdf_e - cdf_a).abs());
    }
    max
}

/// PSI and KS of one distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Score {
    /// Population stability index (0 = identical; above 0.2 a significant shift).
    pub psi: f64,
    /// Binned two-sample Kolmogorov–Smirnov statistic, 0 to 1.
    pub ks: f64,
}

/// The scores of one input feature.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeatureScore {
    /// The feature's name in the reference.
    pub name: String,
    /// Population stability index (0 = identical; above 0.2 a significant shift).
    pub psi: f64,
    /// Binned two-sample Kolmogorov–Smirnov statistic, 0 to 1.
    pub ks: f64,
}

/// The window's drift against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DriftScores {
    /// Rows in the window.
    pub rows: usize,
    /// Predictions in the prediction window.
    pub predictions: usize,
    /// Rows (and predictions) needed before scores are given.
    pub min_rows: usize,
    /// One score per feature, in column order; empty while `rows < min_rows`.
    pub features: Vec<FeatureScore>,
    /// The prediction distribution's score; None while `predictions <
    /// min_rows` or if the reference has no prediction histogram.
    pub prediction: Option<Score>,
    /// The largest PSI of the features and the prediction; None if nothing is scored yet.
    pub max_psi: Option<f64>,
}

impl DriftScores {
    /// Whether some PSI exceeds [`PSI_ALERT_THRESHOLD`].
    pub fn drifted(&self) -> bool {
        self.max_psi.is_some_and(|p| p > PSI_ALERT_THRESHOLD)
    }
}

/// A ring of the last `capacity` samples' bin indices (`width` per sample)
/// with running counts per bin.
#[derive(Debug)]
struct Ring {
    /// Bin indices, sample-major; grows until `capacity * width`, then is overwritten.
    bins: Vec<u16>,
    /// Where the next sample is written once the ring is full.
    next: usize,
    /// Running counts: `counts[offsets[j] + bin]` for column `j`.
    counts: Vec<u64>,
    capacity: usize,
}

impl Ring {
    fn new(capacity: usize, total_bins: usize) -> Self {
        Self {
            bins: Vec::new(),
            next: 0,
            counts: vec![0; total_bins],
            capacity,
        }
    }

    fn len(&self, width: usize) -> usize {
        self.bins.len().checked_div(width).unwrap_or(0)
    }

    /// Adds one sample whose column `j` falls in bin `bin(j)`.
    fn push(&mut self, offsets: &[usize], bin: impl Fn(usize) -> u16) {
        let width = offsets.len();
        if self.bins.len() < self.capacity * width {
            for (j, &offset) in offsets.iter().enumerate() {
                let b = bin(j);
                self.bins.push(b);
                self.counts[offset + b as usize] += 1;
            }
        } else {
            let start = self.next * width;
            for (j, &offset) in offsets.iter().enumerate() {
                let old = self.bins[start + j];
                self.counts[offset + old as usize] -= 1;
                let b = bin(j);
                self.bins[start + j] = b;
                self.counts[offset + b as usize] += 1;
            }
            self.next = (self.next + 1) % self.capacity;
        }
    }
}

#[derive(Debug)]
struct Window {
    rows: Ring,
    predictions: Ring,
}

/// The drift of one model version's inputs and predictions (see the module
/// doc). Shared by the request path (`observe`) and a periodic publisher.
#[derive(Debug)]
pub struct DriftMonitor {
    model: String,
    version: u64,
    reference: Reference,
    /// Reference proportions per feature, computed once.
    expected: Vec<Vec<f64>>,
    expected_prediction: Vec<f64>,
    /// Start of each feature's bins in the running counts.
    offsets: Vec<usize>,
    window: usize,
    state: Mutex<Window>,
}

impl DriftMonitor {
    /// `window`: the number of most recent rows (and predictions) compared with the reference:
    /// a sliding, count-based window.
    pub fn new(
        model: &str,
        version: u64,
        reference: Reference,
        window: usize,
    ) -> Result<Self, DriftError> {
        reference.validate()?;
        let features = reference.features.len();
        if window == 0
            || window
                .checked_mul(features)
                .is_none_or(|n| n > isize::MAX as usize / 2)
        {
            return Err(DriftError::BadWindow(window));
        }
        let mut offsets = Vec::with_capacity(features);
        let mut total_bins = 0;
        for f in &reference.features {
            offsets.push(total_bins);
            total_bins += f.counts.len();
        }
        let expected = reference
            .features
            .iter()
            .map(|f| proportions(&f.counts))
            .collect();
        let expected_prediction = if reference.prediction.counts.is_empty() {
            Vec::new()
        } else {
            proportions(&reference.prediction.counts)
        };
        let classes = reference.prediction.counts.len();
        metrics::describe_gauge!(
            DRIFT_SCORE,
            "Drift of a model version's inputs (per feature) and predictions against its reference: PSI or binned KS over the last rows"
        );
        metrics::describe_gauge!(DRIFT_WINDOW_ROWS, "Rows in a model version's drift window");
        Ok(Self {
            model: model.to_string(),
            version,
            reference,
            expected,
            expected_prediction,
            offsets,
            window,
            state: Mutex::new(Window {
                rows: Ring::new(window, total_bins),
                predictions: Ring::new(window, classes),
            }),
        })
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The reference the window is compared with.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The number of input features (the row width `observe` expects).
    pub fn features(&self) -> usize {
        self.offsets.len()
    }

    /// Rows (and predictions) needed before scores are given: `min(window, 100)`.
    pub fn min_rows(&self) -> usize {
        self.window.min(MIN_SCORED_ROWS)
    }

    /// Rows of one answered request or batch: `rows` is row-major, `rows.len() == n * features`;
    /// `predictions` the predicted class index of each row (may be empty if the model has no
    /// class output).
    ///
    /// Rows whose length is not a multiple of the feature count are ignored
    /// as a whole (the caller fed another shape); a class index outside the
    /// reference's classes is ignored.
    pub fn observe(&self, rows: &[f32], predictions: &[usize]) {
        let width = self.offsets.len();
        let rows_ok = rows.len().is_multiple_of(width);
        if !rows_ok {
            tracing::debug!(
                model = %self.model,
                version = self.version,
                values = rows.len(),
                features = width,
                "drift: rows ignored, not a multiple of the feature count"
            );
        }
        let classes = self.expected_prediction.len();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if rows_ok && width > 0 {
            let n = rows.len() / width;
            // Only the last `window` rows can stay in the window.
            let skip = n.saturating_sub(self.window);
            for row in rows.chunks_exact(width).skip(skip) {
                state.rows.push(&self.offsets, |j| {
                    bin_of(&self.reference.features[j].edges, f64::from(row[j]))
                });
            }
        }
        if classes > 0 {
            let skip = predictions.len().saturating_sub(self.window);
            for &class in predictions.iter().skip(skip).filter(|&&c| c < classes) {
                state.predictions.push(&[0], |_| class as u16);
            }
        }
    }

    /// Current scores: PSI and binned KS per feature and for the prediction
    /// distribution, over the current window vs the reference. A statistic is
    /// absent while its window holds fewer than [`DriftMonitor::min_rows`].
    pub fn scores(&self) -> DriftScores {
        let (rows, predictions, row_counts, prediction_counts) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let rows = state.rows.len(self.offsets.len());
            let predictions = state.predictions.len(1);
            let min = self.min_rows();
            (
                rows,
                predictions,
                (rows >= min).then(|| state.rows.counts.clone()),
                (predictions >= min && !self.expected_prediction.is_empty())
                    .then(|| state.predictions.counts.clone()),
            )
        };
        let features: Vec<FeatureScore> = match &row_counts {
            Some(counts) => self
                .reference
                .features
                .iter()
                .zip(&self.expected)
                .zip(&self.offsets)
                .map(|((f, expected), &offset)| {
                    let live = &counts[offset..offset + f.counts.len()];
                    FeatureScore {
                        name: f.name.clone(),
                        psi: psi(expected, live, rows as u64),
                        ks: ks(expected, live, rows as u64),
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let prediction = prediction_counts.map(|live| Score {
            psi: psi(&self.expected_prediction, &live, predictions as u64),
            ks: ks(&self.expected_prediction, &live, predictions as u64),
        });
        let max_psi = features
            .iter()
            .map(|f| f.psi)
            .chain(prediction.map(|p| p.psi))
            .reduce(f64::max);
        DriftScores {
            rows,
            predictions,
            min_rows: self.min_rows(),
            features,
            prediction,
            max_psi,
        }
    }

    /// Sets the gauges `inference_drift_score{model, version, feature, statistic}` (statistic =
    /// "psi" | "ks"; feature = the feature name, or "prediction") from `scores()`, and
    /// `inference_drift_window_rows{model, version}`. Scores not available yet
    /// are not set. Called periodically by the module.
    pub fn publish(&self) {
        let scores = self.scores();
        let version = self.version.to_string();
        let set = |feature: &str, statistic: &'static str, value: f64| {
            metrics::gauge!(
                DRIFT_SCORE,
                "model" => self.model.clone(),
                "version" => version.clone(),
                "feature" => feature.to_string(),
                "statistic" => statistic,
            )
            .set(value);
        };
        for f in &scores.features {
            set(&f.name, "psi", f.psi);
            set(&f.name, "ks", f.ks);
        }
        if let Some(p) = scores.prediction {
            set("prediction", "psi", p.psi);
            set("prediction", "ks", p.ks);
        }
        metrics::gauge!(
            DRIFT_WINDOW_ROWS,
            "model" => self.model.clone(),
            "version" => version.clone(),
        )
        .set(scores.rows as f64);
        if scores.max_psi.is_some() {
            let outcome = if scores.drifted() {
                "drifted"
            } else {
                "stable"
            };
            metrics::counter!(
                DRIFT_CHECKS,
                "model" => self.model.clone(),
                "version" => version,
                "outcome" => outcome,
            )
            .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const PIXELS: usize = 64;

    fn pixel_edges() -> Vec<f64> {
        (0..=17).map(|i| i as f64 - 0.5).collect()
    }

    /// Digits-like rows: 8×8 images, ink (1..=16) likelier near the centre,
    /// the border columns almost always 0 (as in the real digits set).
    fn digits_like(rng: &mut StdRng, n: usize) -> Vec<f32> {
        let mut rows = Vec::with_capacity(n * PIXELS);
        for _ in 0..n {
            for p in 0..PIXELS {
                let (r, c) = ((p / 8) as f64, (p % 8) as f64);
                let d = ((r - 3.5).powi(2) + (c - 3.5).powi(2)).sqrt();
                let ink = (0.9 - d / 5.0).clamp(0.01, 0.9);
                let v = if rng.random::<f64>() < ink {
                    rng.random_range(1..=16)
                } else {
                    0
                };
                rows.push(v as f32);
            }
        }
        rows
    }

    fn classes(rng: &mut StdRng, n: usize) -> Vec<usize> {
        (0..n).map(|_| rng.random_range(0..10)).collect()
    }

    /// A reference built from `n` digits-like rows, the way the generator does.
    fn digits_reference(seed: u64, n: usize) -> Reference {
        let mut rng = StdRng::seed_from_u64(seed);
        let rows = digits_like(&mut rng, n);
        let edges = pixel_edges();
        let features = (0..PIXELS)
            .map(|j| {
                let mut counts = vec![0u64; 17];
                for row in rows.chunks_exact(PIXELS) {
                    counts[bin_of(&edges, f64::from(row[j])) as usize] += 1;
                }
                FeatureReference {
                    name: format!("pixel_{j}"),
                    edges: edges.clone(),
                    counts,
                }
            })
            .collect();
        let mut prediction = vec![0u64; 10];
        for c in classes(&mut rng, n) {
            prediction[c] += 1;
        }
        Reference {
            features,
            prediction: PredictionReference { counts: prediction },
        }
    }

    fn small_reference() -> Reference {
        Reference {
            features: vec![
                FeatureReference {
                    name: "a".into(),
                    edges: vec![0.0, 1.0, 2.0, 3.0],
                    counts: vec![50, 30, 20],
                },
                FeatureReference {
                    name: "b".into(),
                    edges: vec![-1.0, 0.0, 1.0],
                    counts: vec![10, 90],
                },
            ],
            prediction: PredictionReference {
                counts: vec![25, 75],
            },
        }
    }

    #[test]
    fn monitors_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DriftMonitor>();
    }

    #[test]
    fn values_fall_in_their_bins_and_the_outer_ones() {
        let edges = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(bin_of(&edges, 0.0), 0);
        assert_eq!(bin_of(&edges, 0.99), 0);
        assert_eq!(bin_of(&edges, 1.0), 1);
        assert_eq!(bin_of(&edges, 2.5), 2);
        assert_eq!(bin_of(&edges, 3.0), 2);
        assert_eq!(bin_of(&edges, -7.0), 0);
        assert_eq!(bin_of(&edges, 1e9), 2);
        assert_eq!(bin_of(&edges, f64::NAN), 0);
        assert_eq!(bin_of(&[0.0, 1.0], 0.5), 0);
    }

    #[test]
    fn the_reference_distribution_itself_scores_zero() {
        let monitor = DriftMonitor::new("m", 1, small_reference(), 100).unwrap();
        // Exactly the reference's proportions: a = 50/30/20 %, b = 10/90 %; classes 25/75 %.
        let mut rows = Vec::new();
        let mut predictions = Vec::new();
        for i in 0..100 {
            let a = if i < 50 {
                0.5
            } else if i < 80 {
                1.5
            } else {
                2.5
            };
            // Interleave b so that its bins do not line up with a's.
            let b = if i % 10 == 3 { -0.5 } else { 0.5 };
            rows.extend([a, b]);
            predictions.push(usize::from(i % 4 != 0));
        }
        monitor.observe(&rows, &predictions);
        let scores = monitor.scores();
        assert_eq!((scores.rows, scores.predictions), (100, 100));
        for f in &scores.features {
            assert!(f.psi.abs() < 1e-12 && f.ks.abs() < 1e-12, "{f:?}");
        }
        let p = scores.prediction.unwrap();
        assert!(p.psi.abs() < 1e-12 && p.ks.abs() < 1e-12, "{p:?}");
        assert!(scores.max_psi.unwrap().abs() < 1e-12);
        assert!(!scores.drifted());
    }

    #[test]
    fn a_sample_of_the_same_distribution_stays_stable() {
        let monitor = DriftMonitor::new("digits", 1, digits_reference(1, 2000), 1000).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        monitor.observe(&digits_like(&mut rng, 1000), &classes(&mut rng, 1000));
        let scores = monitor.scores();
        assert_eq!(scores.features.len(), PIXELS);
        let max_psi = scores.max_psi.unwrap();
        let max_ks = scores.features.iter().map(|f| f.ks).fold(0.0, f64::max);
        assert!(max_psi < 0.1, "max PSI {max_psi}");
        assert!(max_ks < 0.1, "max KS {max_ks}");
        assert!(scores.prediction.unwrap().psi < 0.1);
    }

    #[test]
    fn shifted_pixels_drift_within_one_window_and_the_window_slides_back() {
        let window = 1000;
        let monitor = DriftMonitor::new("digits", 2, digits_reference(1, 2000), window).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let shifted: Vec<f32> = digits_like(&mut rng, window)
            .iter()
            .map(|v| v + 4.0)
            .collect();
        monitor.observe(&shifted, &classes(&mut rng, window));
        let scores = monitor.scores();
        let max_psi = scores.max_psi.unwrap();
        assert!(max_psi > PSI_ALERT_THRESHOLD, "max PSI {max_psi}");
        assert!(scores.drifted());
        // The predictions were not shifted: their PSI is not what alerted.
        assert!(scores.prediction.unwrap().psi < 0.1);
        let pixel_0 = &scores.features[0];
        assert!(pixel_0.ks > 0.9, "{pixel_0:?}");

        // `window` normal rows push every shifted row out.
        for _ in 0..10 {
            monitor.observe(&digits_like(&mut rng, window / 10), &[]);
        }
        let scores = monitor.scores();
        assert_eq!(scores.rows, window);
        let max_psi = scores.max_psi.unwrap();
        assert!(max_psi < 0.1, "max PSI {max_psi} after sliding");
        assert!(!scores.drifted());
    }

    #[test]
    fn half_a_window_of_shifted_rows_already_alerts() {
        let monitor = DriftMonitor::new("digits", 2, digits_reference(1, 2000), 1000).unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        monitor.observe(&digits_like(&mut rng, 1000), &[]);
        assert!(!monitor.scores().drifted());
        let shifted: Vec<f32> = digits_like(&mut rng, 500).iter().map(|v| v + 4.0).collect();
        monitor.observe(&shifted, &[]);
        assert!(monitor.scores().drifted());
    }

    #[test]
    fn a_prediction_shift_is_scored_on_its_own() {
        let monitor = DriftMonitor::new("m", 1, small_reference(), 200).unwrap();
        monitor.observe(&[], &[0; 200]);
        let scores = monitor.scores();
        assert!(scores.features.is_empty(), "no rows yet");
        let p = scores.prediction.unwrap();
        assert!(p.psi > 1.0 && (p.ks - 0.75).abs() < 1e-12, "{p:?}");
        assert_eq!(scores.max_psi, Some(p.psi));
    }

    #[test]
    fn too_few_rows_are_not_scored() {
        let monitor = DriftMonitor::new("m", 1, small_reference(), 1000).unwrap();
        assert_eq!(monitor.min_rows(), 100);
        monitor.observe(&[0.5; 2 * 99], &[1; 99]);
        let scores = monitor.scores();
        assert_eq!((scores.rows, scores.predictions), (99, 99));
        assert!(scores.features.is_empty() && scores.prediction.is_none());
        assert_eq!(scores.max_psi, None);
        monitor.observe(&[0.5; 2], &[1]);
        assert_eq!(monitor.scores().features.len(), 2);

        let tiny = DriftMonitor::new("m", 1, small_reference(), 10).unwrap();
        assert_eq!(tiny.min_rows(), 10);
        tiny.observe(&[0.5; 2 * 25], &[]);
        assert_eq!(tiny.scores().rows, 10);
        assert!(tiny.scores().max_psi.is_some());
    }

    #[test]
    fn misshapen_rows_and_unknown_classes_are_ignored() {
        let monitor = DriftMonitor::new("m", 1, small_reference(), 100).unwrap();
        monitor.observe(&[0.5, 0.5, 0.5], &[0, 1, 2, 99]);
        let scores = monitor.scores();
        assert_eq!((scores.rows, scores.predictions), (0, 2));
    }

    #[test]
    fn a_batch_larger_than_the_window_keeps_its_last_rows() {
        let monitor = DriftMonitor::new("m", 1, small_reference(), 100).unwrap();
        let mut rows = vec![2.5f32; 2 * 150];
        rows[2 * 50..].fill(0.5);
        monitor.observe(&rows, &[]);
        let scores = monitor.scores();
        assert_eq!(scores.rows, 100);
        // All 100 kept rows are 0.5: feature a entirely in its first bin.
        assert!(
            (scores.features[0].ks - 0.5).abs() < 1e-12,
            "{:?}",
            scores.features[0]
        );
    }

    #[test]
    fn bad_references_are_refused() {
        let with = |change: fn(&mut Reference)| {
            let mut r = small_reference();
            change(&mut r);
            r.validate()
        };
        assert_eq!(small_reference().validate(), Ok(()));
        assert_eq!(with(|r| r.features.clear()), Err(DriftError::NoFeatures));
        assert_eq!(
            with(|r| r.features[0].edges = vec![0.0, 2.0, 1.0, 3.0]),
            Err(DriftError::BadEdges {
                feature: "a".into()
            })
        );
        assert_eq!(
            with(|r| r.features[0].edges = vec![0.0, 1.0, 1.0, 3.0]),
            Err(DriftError::BadEdges {
                feature: "a".into()
            })
        );
        assert_eq!(
            with(|r| r.features[0].edges[3] = f64::INFINITY),
            Err(DriftError::BadEdges {
                feature: "a".into()
            })
        );
        assert_eq!(
            with(|r| r.features[1].counts.push(1)),
            Err(DriftError::CountsMismatch {
                feature: "b".into(),
                edges: 3,
                counts: 3
            })
        );
        assert_eq!(
            with(|r| r.features[1].counts = vec![0, 0]),
            Err(DriftError::EmptyHistogram {
                feature: "b".into()
            })
        );
        assert_eq!(
            with(|r| r.prediction.counts = vec![0, 0]),
            Err(DriftError::EmptyHistogram {
                feature: "prediction".into()
            })
        );
        assert_eq!(
            with(|r| r.features[1].name = "a".into()),
            Err(DriftError::BadName("a".into()))
        );
        assert_eq!(
            with(|r| r.features[0].name = String::new()),
            Err(DriftError::BadName(String::new()))
        );
        // A model without a class output ships no prediction histogram.
        assert_eq!(with(|r| r.prediction.counts.clear()), Ok(()));
        assert_eq!(
            DriftMonitor::new("m", 1, small_reference(), 0).err(),
            Some(DriftError::BadWindow(0))
        );
        let mut bad = small_reference();
        bad.features[0].counts.push(1);
        assert!(matches!(
            DriftMonitor::new("m", 1, bad, 10),
            Err(DriftError::CountsMismatch { .. })
        ));
    }

    #[test]
    fn the_reference_file_format_parses() {
        let json =
            br#"{"features": [{"name": "pixel_0", "edges": [-0.5, 0.5, 1.5], "counts": [3, 1]}],
                        "prediction": {"counts": [2, 2]}}"#;
        let r = Reference::from_json(json).unwrap();
        assert_eq!(r.features[0].counts, vec![3, 1]);
        assert!(matches!(
            Reference::from_json(br#"{"features": []}"#),
            Err(DriftError::Parse(_))
        ));
        assert_eq!(
            Reference::from_json(br#"{"features": [], "prediction": {"counts": []}}"#),
            Err(DriftError::NoFeatures)
        );
    }

    #[test]
    fn publish_sets_the_gauges() {
        kit::metrics::install();
        let model = "drift-publish-test";
        let monitor = DriftMonitor::new(model, 3, small_reference(), 100).unwrap();
        let gauge = |feature: &str, statistic: &str| -> Option<f64> {
            let needle = format!(
                "{DRIFT_SCORE}{{model=\"{model}\",version=\"3\",feature=\"{feature}\",statistic=\"{statistic}\"}} "
            );
            kit::metrics::render()
                .lines()
                .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
        };
        monitor.publish();
        assert_eq!(gauge("a", "psi"), None, "nothing to score yet");

        // Feature a all in its last bin, b as the reference; predictions all class 0.
        let rows: Vec<f32> = (0..100)
            .flat_map(|i| [2.5, if i < 10 { -0.5 } else { 0.5 }])
            .collect();
        monitor.observe(&rows, &[0; 100]);
        monitor.publish();
        let scores = monitor.scores();
        assert_eq!(gauge("a", "psi"), Some(scores.features[0].psi));
        assert!(gauge("a", "psi").unwrap() > PSI_ALERT_THRESHOLD);
        assert_eq!(gauge("a", "ks"), Some(scores.features[0].ks));
        assert!(gauge("b", "psi").unwrap().abs() < 1e-12);
        assert_eq!(gauge("prediction", "ks"), Some(0.75));
        let rows_line = format!("{DRIFT_WINDOW_ROWS}{{model=\"{model}\",version=\"3\"}} 100");
        assert!(kit::metrics::render().lines().any(|l| l == rows_line));
    }
}
