//! The platform measures its own cost, in `reliable up` and `serve`.
//!
//! Every `cost.tick` (on the injected clock) it samples the process's own
//! `/metrics` ([`crate::cost_sample`]), folds what changed since the last
//! sample into 5-minute buckets (CPU and requests per module, route and
//! model; memory per module; the process's CPU and RSS; LLM tokens per
//! key and model) and adds them to the store ([`crate::cost_store`],
//! 35 days, pruned hourly). [`CostLive::allocation`] prices a window of
//! buckets by OpenCost's rules ([`cost::measured`]) for
//! `GET /api/v1/cost/allocation` ([`crate::cost_api`]) and `reliable cost
//! --url`; [`CostLive::view`] is the console panel's data.
//!
//! Memory: the last sample (one number per series; series are bounded by
//! the metric labels' own bounds) and, while the store does not answer,
//! at most [`MAX_UNSAVED`] rows waiting for it (the oldest go first, with
//! a warning). A read holds steps × series rows, at most
//! [`crate::cost_store::MAX_READ_ROWS`].
//!
//! A restart loses at most the interval between the last tick and the
//! stop: the first tick of a process counts from its start
//! (`process_start_time_seconds`), every later one from the previous.

use crate::cost_sample::{deltas, Snapshot};
use crate::cost_store::{CostStore, RETENTION};
use chrono::{DateTime, Duration as Span, Utc};
use cost::measured::{allocate_measured, merge, CostView, Measured, Options};
use cost::{AllocationSet, IdleOptions, Pricing, Window};
use kit::tasks::TaskSpawner;
use kit::Clock;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rows kept for a store that does not answer.
pub const MAX_UNSAVED: usize = 50_000;
/// How often buckets older than [`RETENTION`] are deleted.
const PRUNE_EVERY: Span = Span::hours(1);
/// The example prices compiled in, used without `cost.pricing`.
const EXAMPLE_PRICING: &str = include_str!("../../../cost.example.yaml");

/// Configuration section `cost`: the platform's own cost measurement
/// (docs/operations/cost.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// How often the process's own metrics are sampled into the 5-minute
    /// cost buckets.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// The pricing file (`cost.yaml`, see cost.example.yaml) for
    /// `GET /api/v1/cost/allocation` and `reliable cost --url`. Without
    /// one the compiled-in cost.example.yaml is used, and every answer
    /// says its prices are examples.
    pub pricing: Option<PathBuf>,
    /// The CPU cores this process may use: idle cost is these cores over
    /// the time it ran, minus the CPU it used. Default: the cores the
    /// operating system lets it run on.
    pub capacity_cores: Option<f64>,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(10),
            pricing: None,
            capacity_cores: None,
        }
    }
}

/// Where the prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PricingSource {
    /// `cost.pricing`.
    File,
    /// The compiled-in cost.example.yaml: example prices.
    Example,
}

impl CostConfig {
    pub fn validate(&self) -> Result<(), kit::config::ConfigError> {
        if self.tick < Duration::from_millis(100) {
            return Err(kit::config::ConfigError::invalid(
                "cost.tick",
                "must be at least 100ms",
            ));
        }
        if let Some(cores) = self.capacity_cores {
            if !cores.is_finite() || cores <= 0.0 || cores > 100_000.0 {
                return Err(kit::config::ConfigError::invalid(
                    "cost.capacity_cores",
                    format!("must be a number of cores above 0, got {cores}"),
                ));
            }
        }
        self.prices()
            .map(|_| ())
            .map_err(|e| kit::config::ConfigError::invalid("cost.pricing", e))
    }

    /// The prices and where they come from.
    pub fn prices(&self) -> Result<(Pricing, PricingSource), String> {
        let Some(path) = &self.pricing else {
            let pricing = Pricing::parse(EXAMPLE_PRICING).map_err(|e| e.to_string())?;
            return Ok((pricing, PricingSource::Example));
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let pricing = Pricing::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((pricing, PricingSource::File))
    }

    fn capacity(&self) -> f64 {
        self.capacity_cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64))
    }
}

/// Why a priced answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The window or step (the client's).
    #[error(transparent)]
    Window(#[from] cost::WindowError),
    /// The store (ours).
    #[error("the cost store does not answer: {0}")]
    Store(#[from] kit::storage::StoreError),
}

/// The running measurement. Clones share it.
#[derive(Clone)]
pub struct CostLive {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CostStore>,
    clock: Arc<dyn Clock>,
    pricing: Pricing,
    source: PricingSource,
    capacity_cores: f64,
    previous: Mutex<Option<Snapshot>>,
    unsaved: Mutex<Vec<Measured>>,
    last_prune: Mutex<Option<DateTime<Utc>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl CostLive {
    /// A measurement that does not tick by itself ([`Self::tick`]).
    pub fn new(
        config: &CostConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn CostStore>,
    ) -> anyhow::Result<Self> {
        let (pricing, source) = config.prices().map_err(anyhow::Error::msg)?;
        if source == PricingSource::Example {
            tracing::info!("cost: no cost.pricing, using cost.example.yaml's example prices");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                pricing,
                source,
                capacity_cores: config.capacity(),
                previous: Mutex::default(),
                unsaved: Mutex::default(),
                last_prune: Mutex::default(),
            }),
        })
    }

    /// The measurement, ticking every `cost.tick` on a task of `tasks`.
    pub fn start(
        config: &CostConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn CostStore>,
        tasks: &TaskSpawner,
    ) -> anyhow::Result<Self> {
        let live = Self::new(config, clock, store)?;
        let ticking = live.clone();
        // Without it the cost report stops growing: serve, but say so.
        crate::metrics_tick::spawn(tasks, "cost-meter", config.tick, move |text| {
            let ticking = ticking.clone();
            async move {
                let snapshot = Snapshot::parse(ticking.now(), &text)
                    .with_process_cpu(crate::cost_sample::process_cpu_seconds());
                ticking.record(snapshot).await;
            }
        });
        Ok(live)
    }

    pub fn currency(&self) -> &str {
        self.inner.pricing.currency.as_str()
    }

    pub fn pricing_source(&self) -> PricingSource {
        self.inner.source
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// One sample of `metrics` at the clock's time: its increases into the
    /// store (kept for the next tick when it fails), and hourly pruning.
    #[cfg(test)]
    pub async fn tick(&self, metrics: &str) {
        self.record(Snapshot::parse(self.inner.clock.now(), metrics))
            .await;
    }

    /// One sample (taken at the clock's time): see [`Self::tick`].
    async fn record(&self, snapshot: Snapshot) {
        let now = self.inner.clock.now();
        let rows = {
            let mut previous = lock(&self.inner.previous);
            let from = previous.take().or_else(|| {
                // The first sample counts from the process's start.
                let start = snapshot.process_start?;
                let start = DateTime::from_timestamp_millis((start * 1000.0) as i64)?;
                (start < now).then(|| Snapshot::zero(start))
            });
            let rows = from.map(|from| deltas(&from, &snapshot));
            *previous = Some(snapshot);
            rows.unwrap_or_default()
        };
        let pending = {
            let mut unsaved = lock(&self.inner.unsaved);
            unsaved.extend(rows);
            merge(std::mem::take(&mut *unsaved))
        };
        if !pending.is_empty() {
            if let Err(error) = self.inner.store.add(&pending).await {
                tracing::warn!(error = %error, rows = pending.len(), "cost buckets not saved; retrying next tick");
                let mut kept = pending;
                let excess = kept.len().saturating_sub(MAX_UNSAVED);
                if excess > 0 {
                    kept.sort_by_key(|r| r.bucket);
                    kept.drain(..excess);
                    tracing::warn!(
                        dropped = excess,
                        "cost buckets dropped: the store has not answered for long"
                    );
                }
                lock(&self.inner.unsaved).extend(kept);
            }
        }
        let due = lock(&self.inner.last_prune).is_none_or(|last| now - last >= PRUNE_EVERY);
        if due {
            match self.inner.store.prune(now - RETENTION).await {
                Ok(_) => *lock(&self.inner.last_prune) = Some(now),
                Err(error) => tracing::warn!(error = %error, "cost buckets not pruned"),
            }
        }
    }

    fn options(&self, idle: IdleOptions) -> Options {
        Options {
            capacity_cores: self.inner.capacity_cores,
            idle,
        }
    }

    /// The allocation sets of `window`, one per `step`.
    pub async fn allocation(
        &self,
        window: &Window,
        step: Option<Span>,
        idle: IdleOptions,
    ) -> Result<Vec<AllocationSet>, CostError> {
        // Steps are checked before the store is asked.
        window.steps(step, cost::measured::MAX_STEPS)?;
        let rows = self.inner.store.read(window, step).await?;
        Ok(allocate_measured(
            &self.inner.pricing,
            window,
            step,
            &rows,
            self.options(idle),
        )?)
    }

    /// The console's cost panel over `window` in `step`s.
    pub async fn view(&self, window: &Window, step: Option<Span>) -> Result<CostView, CostError> {
        window.steps(step, cost::measured::MAX_STEPS)?;
        let rows = self.inner.store.read(window, step).await?;
        Ok(cost::measured::view(
            &self.inner.pricing,
            window,
            step,
            &rows,
            self.options(IdleOptions::default()),
            10,
        )?)
    }
}

#[cfg(test)]
#[path = "cost_live_tests.rs"]
mod tests;
