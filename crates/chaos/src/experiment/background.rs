//! The `load` section: `reliable load`'s engine (the `load` crate) running
//! for the whole experiment, so probes see what users would see while the
//! method does its damage. An observer folds the engine's per-second
//! stats into two accumulators: the current window (taken, and emptied,
//! once per hypothesis check, so every `load` probe of one check reads
//! the same requests) and the whole run.

use super::model::{LoadMetric, LoadSection};
use load::observe::Observer;
use load::plan::{Executor, Plan, StatusSet};
use load::results::{Results, Stats, Tick};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// A `load` probe's error when its window holds no finished request.
pub const NO_DATA: &str = "no request finished in the window";

/// The quick mode runs until the experiment stops it.
const UNTIL_STOPPED: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Default)]
struct Accumulated {
    all: LoadSnapshot,
    by_request: BTreeMap<String, LoadSnapshot>,
}

/// What the load did in one window and since it started.
#[derive(Debug, Clone, Default)]
pub struct LoadSnapshot {
    pub window: Stats,
    pub run: Stats,
    /// The same, per request name of the scenario file.
    pub by_request: BTreeMap<String, LoadSnapshot>,
}

impl LoadSnapshot {
    fn add(&mut self, stats: &Stats) {
        self.window.merge(stats);
        self.run.merge(stats);
    }

    /// Empties the window; returns what it held with the run so far.
    fn take(&mut self) -> LoadSnapshot {
        LoadSnapshot {
            window: std::mem::take(&mut self.window),
            run: self.run.clone(),
            by_request: BTreeMap::new(),
        }
    }
}

pub struct Background {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Accumulated>>,
    /// Turns true when the engine has returned.
    done: tokio::sync::watch::Receiver<bool>,
}

struct Feed(Arc<Mutex<Accumulated>>);

impl Observer for Feed {
    fn tick(&mut self, plan: &Plan, tick: &Tick) {
        let mut acc = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (scenario, request, stats) in &tick.rows {
            acc.all.add(stats);
            let name = plan
                .scenarios
                .get(*scenario)
                .and_then(|s| s.requests.get(*request))
                .map(|r| r.name.clone());
            if let Some(name) = name {
                acc.by_request.entry(name).or_default().add(stats);
            }
        }
    }

    fn finish(&mut self, _plan: &Plan, _results: &Results) {}
}

impl Background {
    /// Compiles the load and starts it on `tracker`.
    pub fn start(
        section: &LoadSection,
        base_dir: &Path,
        tracker: &TaskTracker,
    ) -> Result<Self, String> {
        let plan = plan(section, base_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Accumulated::default()));
        let options = load::EngineOptions {
            threads: Some(1),
            stop: Some(stop.clone()),
        };
        let feed = Feed(shared.clone());
        let (tx, done) = tokio::sync::watch::channel(false);
        tracker.spawn(async move {
            let mut observers: Vec<Box<dyn Observer>> = vec![Box::new(feed)];
            if let Err(e) = load::run(&plan, &options, &mut observers).await {
                tracing::warn!(error = %e, "the background load could not start");
            }
            let _ = tx.send(true);
        });
        Ok(Self { stop, shared, done })
    }

    /// The window since the previous snapshot (emptied), and the run.
    pub fn snapshot(&self) -> LoadSnapshot {
        let mut acc = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut snapshot = acc.all.take();
        snapshot.by_request = acc
            .by_request
            .iter_mut()
            .map(|(name, s)| (name.clone(), s.take()))
            .collect();
        snapshot
    }

    /// Waits until the load has run its `duration` (and its last
    /// requests have finished).
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|done| *done).await;
    }

    /// Stops the load and waits for its last requests.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.finished().await;
    }
}

fn plan(section: &LoadSection, base_dir: &Path) -> Result<Plan, String> {
    let timeout = section.timeout.map_or(Duration::from_secs(5), |d| d.0);
    let connections = section.connections.unwrap_or(8);
    if let Some(url) = &section.url {
        let url = url::Url::parse(url).map_err(|e| format!("load.url: {e}"))?;
        let method = section.method.as_deref().unwrap_or("GET");
        let spec = load::LoadSpec {
            url,
            method: method
                .parse()
                .map_err(|_| format!("load.method: `{method}` is not a method"))?,
            headers: Vec::new(),
            rate: section.rate,
            duration: section.duration.map_or(UNTIL_STOPPED, |d| d.0),
            warmup: Duration::ZERO,
            connections,
            timeout,
        };
        let mut plan = spec.plan().map_err(|e| format!("load: {e}"))?;
        // A 5xx is a failure here (the quick mode of `reliable load`
        // counts every status as an answer).
        for scenario in &mut plan.scenarios {
            for request in &mut scenario.requests {
                request.expect_status = StatusSet(vec![(100, 499)]);
            }
        }
        return Ok(plan);
    }
    let Some(scenario) = &section.scenario else {
        return Err("load: give `url` or `scenario`".into());
    };
    let path = base_dir.join(scenario);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("load.scenario: cannot read {}: {e}", path.display()))?;
    let target = section
        .target
        .as_deref()
        .map(url::Url::parse)
        .transpose()
        .map_err(|e| format!("load.target: {e}"))?;
    let mut plan = load::scenario::compile(&text, &load::scenario::CompileOptions { target })
        .map_err(|e| format!("load.scenario {}: {e}", path.display()))?;
    for scenario in &mut plan.scenarios {
        match &mut scenario.executor {
            Executor::ConstantArrivalRate { rate, duration } => {
                if let Some(r) = section.rate {
                    *rate = r;
                }
                if let Some(d) = section.duration {
                    *duration = d.0;
                }
            }
            Executor::ConstantConnections { duration } => {
                if let Some(d) = section.duration {
                    *duration = d.0;
                }
            }
            Executor::RampingArrivalRate { .. } => {}
        }
        if let Some(connections) = section.connections {
            scenario.connections = connections;
        }
    }
    Ok(plan)
}

/// A `load` probe's value; `None` when the stats hold no request.
pub fn value(metric: LoadMetric, status: Option<u16>, stats: &Stats) -> Option<f64> {
    let requests = stats.completed();
    if requests == 0 {
        return None;
    }
    let ms = |q: f64| stats.latency.value_at_quantile(q) as f64 / 1000.0;
    Some(match metric {
        LoadMetric::P50Ms => ms(0.50),
        LoadMetric::P90Ms => ms(0.90),
        LoadMetric::P99Ms => ms(0.99),
        LoadMetric::P999Ms => ms(0.999),
        LoadMetric::MaxMs => stats.latency.max() as f64 / 1000.0,
        LoadMetric::MeanMs => stats.latency.mean() / 1000.0,
        LoadMetric::ErrorRate => stats.errors() as f64 / requests as f64,
        LoadMetric::Requests => requests as f64,
        LoadMetric::StatusCount => status
            .and_then(|s| stats.status_counts.get(&s))
            .copied()
            .unwrap_or(0) as f64,
    })
}
