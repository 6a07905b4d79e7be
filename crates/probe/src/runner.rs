//! The runner: one supervised task per probe, each checking on its
//! interval and publishing the result three ways: metrics (what SLOs
//! read), the latest outcome in memory (what the status page's current
//! state reads) and the day's totals in the store (its 90-day bars).
//!
//! Scheduling uses tokio's timer (tests pause and advance it); the time a
//! result is filed under and certificate expiry is measured from come from
//! the injected [`Clock`], so tests can land checks on chosen days.

use crate::check::{self, HttpClient, Outcome};
use crate::config::{Check, ProbeSpec};
use crate::store::ProbeStore;
use chrono::{DateTime, Utc};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// `probe_success`: 1 if the last check passed, else 0.
pub const PROBE_SUCCESS: &str = "probe_success";
/// `probe_duration_seconds`: how long the last check took.
pub const PROBE_DURATION: &str = "probe_duration_seconds";
/// `probe_checks_total{result="success|failure"}`: the SLI's counters.
pub const PROBE_CHECKS: &str = "probe_checks_total";
/// `probe_ssl_earliest_cert_expiry`: Unix seconds of the earliest
/// `notAfter` in the chain the last HTTPS check saw.
pub const PROBE_CERT_EXPIRY: &str = "probe_ssl_earliest_cert_expiry";

/// How often the store drops days past retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("probe `{probe}`: {reason}")]
    Client { probe: String, reason: String },
}

/// A probe's last result.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub component: String,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
}

/// The probes' names and components (in config order) and their latest
/// results, shared between the runner and the status page.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// (probe, component), in config order.
    probes: Arc<Vec<(String, String)>>,
    latest: Arc<RwLock<BTreeMap<String, Latest>>>,
}

impl Results {
    pub fn new(specs: &[ProbeSpec]) -> Self {
        Self {
            probes: Arc::new(
                specs
                    .iter()
                    .map(|s| (s.name.clone(), s.component.clone()))
                    .collect(),
            ),
            latest: Arc::default(),
        }
    }

    /// (probe, component), in config order.
    pub fn probes(&self) -> &[(String, String)] {
        &self.probes
    }

    pub fn set(&self, probe: &str, latest: Latest) {
        let mut guard = self.latest.write().unwrap_or_else(|e| e.into_inner());
        guard.insert(probe.to_string(), latest);
    }

    pub fn latest(&self) -> BTreeMap<String, Latest> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Starts one task per probe (and one pruning the store) on `tasks`.
pub fn start(
    specs: &[ProbeSpec],
    store: Option<ProbeStore>,
    clock: Arc<dyn Clock>,
    tasks: &TaskSpawner,
) -> Result<Results, RunnerError> {
    let results = Results::new(specs);
    let mut prepared = Vec::new();
    for spec in specs {
        let ca_file = match &spec.check {
            Check::Http(http) => http.ca_file.as_deref(),
            _ => None,
        };
        let client = HttpClient::new(ca_file).map_err(|reason| RunnerError::Client {
            probe: spec.name.clone(),
            reason,
        })?;
        prepared.push((spec.clone(), client));
    }
    for (spec, client) in prepared {
        let probe = Probe {
            spec,
            client,
            store: store.clone(),
            clock: clock.clone(),
            results: results.clone(),
        };
        let stop = tasks.stop_token();
        tasks.spawn("probe", OnFailure::Unready, async move {
            tokio::select! {
                () = stop.cancelled() => Ok::<(), Infallible>(()),
                never = probe.run_forever() => never,
            }
        });
    }
    if let Some(store) = store {
        let stop = tasks.stop_token();
        tasks.spawn("probe-retention", OnFailure::Unready, async move {
            tokio::select! {
                () = stop.cancelled() => Ok::<(), Infallible>(()),
                never = prune_forever(store, clock) => never,
            }
        });
    }
    Ok(results)
}

struct Probe {
    spec: ProbeSpec,
    client: HttpClient,
    store: Option<ProbeStore>,
    clock: Arc<dyn Clock>,
    results: Results,
}

impl Probe {
    async fn run_forever(self) -> Result<(), Infallible> {
        let labels = [
            ("probe", self.spec.name.clone()),
            ("component", self.spec.component.clone()),
        ];
        // Both series exist from the start, so a ratio has a denominator.
        for result in ["success", "failure"] {
            let mut with_result = labels.to_vec();
            with_result.push(("result", result.to_string()));
            metrics::counter!(PROBE_CHECKS, &with_result).increment(0);
        }
        let mut ticker = tokio::time::interval(self.spec.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.once().await;
        }
    }

    /// One check, published.
    async fn once(&self) {
        let at = self.clock.now();
        let outcome = check::run(&self.spec, &self.client, at).await;
        publish(&self.spec, &outcome);
        if !outcome.success {
            tracing::info!(probe = %self.spec.name, detail = %outcome.detail, "probe failed");
        }
        if let Some(store) = &self.store {
            if let Err(e) = store
                .record(
                    &self.spec.name,
                    &self.spec.component,
                    at,
                    outcome.success,
                    outcome.duration,
                )
                .await
            {
                tracing::warn!(probe = %self.spec.name, error = %e, "probe result not stored");
            }
        }
        self.results.set(
            &self.spec.name,
            Latest {
                component: self.spec.component.clone(),
                at,
                outcome,
            },
        );
    }
}

fn publish(spec: &ProbeSpec, outcome: &Outcome) {
    let labels = [
        ("probe", spec.name.clone()),
        ("component", spec.component.clone()),
    ];
    metrics::gauge!(PROBE_SUCCESS, &labels).set(if outcome.success { 1.0 } else { 0.0 });
    metrics::gauge!(PROBE_DURATION, &labels).set(outcome.duration.as_secs_f64());
    if let Some(expiry) = outcome.cert_expiry {
        metrics::gauge!(PROBE_CERT_EXPIRY, &labels).set(expiry.timestamp() as f64);
    }
    let result = if outcome.success {
        "success"
    } else {
        "failure"
    };
    let mut with_result = labels.to_vec();
    with_result.push(("result", result.to_string()));
    metrics::counter!(PROBE_CHECKS, &with_result).increment(1);
}

async fn prune_forever(store: ProbeStore, clock: Arc<dyn Clock>) -> Result<(), Infallible> {
    let mut ticker = tokio::time::interval(PRUNE_EVERY);
    loop {
        ticker.tick().await;
        match store.prune(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned probe days past retention"),
            Err(e) => tracing::warn!(error = %e, "pruning probe days failed"),
        }
    }
}
