//! A simulated service for the power and A/A tests: requests split
//! between canary and baseline by weight, each failing with a fixed
//! probability and taking a lognormal latency, recorded as a Prometheus
//! histogram (and optionally as exact samples). Seeded, so every figure
//! the tests print is reproducible.

use crate::judge::{Counts, Histogram, Reservoir, Samples};
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

/// Prometheus client default buckets (seconds).
pub const PROMETHEUS_BOUNDS: [f64; 12] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// Requests per second of the whole service.
pub const RPS: u32 = 200;

/// One version's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Version {
    /// Probability a request fails.
    pub error_rate: f64,
    /// Median latency, seconds.
    pub median: f64,
    /// Spread of ln(latency).
    pub sigma: f64,
    /// Multiplies every latency (1.02 = 2% slower).
    pub scale: f64,
    /// Added to every latency, seconds.
    pub shift: f64,
}

/// A 1–3 ms service at 0.1% errors.
pub const HEALTHY: Version = Version {
    error_rate: 0.001,
    median: 0.0018,
    sigma: 0.35,
    scale: 1.0,
    shift: 0.0,
};

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Version {
    /// One request: failed?, latency in seconds.
    pub fn request(&self, rng: &mut StdRng) -> (bool, f64) {
        let bad = rng.random::<f64>() < self.error_rate;
        let latency = self.median * (self.sigma * normal(rng)).exp() * self.scale + self.shift;
        (bad, latency)
    }
}

/// What one side saw over the current window.
#[derive(Debug, Clone)]
pub struct SideWindow {
    pub counts: Counts,
    pub histogram: Histogram,
    /// Exact latencies, kept only when asked.
    pub samples: Option<Vec<f64>>,
    /// A bounded sample of the latencies, kept only when asked.
    pub reservoir: Option<Reservoir>,
}

impl SideWindow {
    pub fn new(keep_samples: bool) -> Self {
        Self {
            counts: Counts::default(),
            histogram: Histogram::empty(PROMETHEUS_BOUNDS.to_vec()).expect("valid bounds"),
            samples: keep_samples.then(Vec::new),
            reservoir: None,
        }
    }

    /// Serves `n` requests of `version`.
    pub fn serve(&mut self, version: &Version, n: u32, rng: &mut StdRng) {
        for _ in 0..n {
            let (bad, latency) = version.request(rng);
            self.counts.total += 1;
            self.counts.bad += u64::from(bad);
            self.histogram.observe(latency).expect("finite latency");
            if let Some(s) = &mut self.samples {
                s.push(latency);
            }
            if let Some(r) = &mut self.reservoir {
                r.observe(latency).expect("finite latency");
            }
        }
    }

    pub fn exact(&self) -> Samples {
        Samples::from_values(self.samples.clone().unwrap_or_default())
    }
}

/// Canary and baseline over the same window.
#[derive(Debug, Clone)]
pub struct Window {
    pub canary: SideWindow,
    pub baseline: SideWindow,
}

impl Window {
    pub fn new(keep_samples: bool) -> Self {
        Self {
            canary: SideWindow::new(keep_samples),
            baseline: SideWindow::new(keep_samples),
        }
    }

    /// A window that also keeps a reservoir of `capacity` latencies a side.
    pub fn with_reservoirs(capacity: usize, rng: &mut StdRng) -> Self {
        let mut window = Self::new(false);
        for side in [&mut window.canary, &mut window.baseline] {
            let seeded = StdRng::seed_from_u64(rng.random());
            side.reservoir = Some(Reservoir::with_rng(capacity, seeded).expect("capacity ≥ 1"));
        }
        window
    }

    /// One second of traffic with `canary_percent` of it on the canary.
    pub fn second(
        &mut self,
        canary: &Version,
        baseline: &Version,
        canary_percent: u32,
        rng: &mut StdRng,
    ) {
        let to_canary = RPS * canary_percent / 100;
        self.canary.serve(canary, to_canary, rng);
        self.baseline.serve(baseline, RPS - to_canary, rng);
    }
}

/// Median and maximum of a non-empty list.
pub fn median_max(values: &mut [u64]) -> (u64, u64) {
    values.sort_unstable();
    (values[values.len() / 2], values[values.len() - 1])
}
