//! `--prometheus-push URL`: the run's metrics, pushed to a Prometheus
//! Pushgateway every few seconds and once at the end, so a load test shows
//! up on the same dashboards as the server it loads.
//!
//! Each push is a `PUT {URL}/metrics/job/reliable_load/instance/<run id>`
//! that replaces the run's whole group, so only the newest body matters:
//! when a push is slow, bodies waiting behind it are skipped, never
//! queued without bound. Pushing happens on one thread the observer
//! owns (with its own small Tokio runtime, so it works whatever runtime,
//! if any, calls the observer) and joins in `finish()`. A failed push is
//! counted and printed once; it never fails or slows the run.

use super::exposition::{NameMetrics, RunMetrics};
use crate::observe::Observer;
use crate::plan::Plan;
use crate::results::{Results, Stats, Tick};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often to push when `--prometheus-push-every` is not given.
pub const DEFAULT_PUSH_EVERY: Duration = Duration::from_secs(5);

/// A push that takes longer is abandoned and counted as failed; it also
/// bounds how long `finish()` can wait.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--prometheus-push: `{0}` is not an http:// or https:// URL")]
    Url(String),
    #[error("--prometheus-push: cannot start the push thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("--prometheus-push: cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
    #[error("--prometheus-push: cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What the push thread did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushTally {
    pub pushed: u64,
    pub failed: u64,
}

/// Live metrics for one (scenario, request name).
#[derive(Default)]
struct Live {
    metrics: NameMetrics,
    /// Answers since the last push, for the latency gauges.
    window: Stats,
}

pub struct PrometheusPush {
    endpoint: String,
    every_ticks: u64,
    ticks: u64,
    live: BTreeMap<(String, String), Live>,
    skipped: BTreeMap<String, u64>,
    in_flight: u64,
    queued: u64,
    bodies: Option<mpsc::Sender<String>>,
    worker: Option<JoinHandle<PushTally>>,
    tally: PushTally,
}

/// `20261130T112640Z-4242`: when and which process, enough to tell runs
/// apart in the Pushgateway.
pub fn default_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    )
}

/// A grouping-key value as a plain path segment: anything but letters,
/// digits, `.`, `_` and `-` becomes `_`.
fn path_segment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "run".to_string()
    } else {
        cleaned
    }
}

/// rustls with ring and the Mozilla roots, the same stack as the load
/// connections, so no second crypto library is linked in.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl PrometheusPush {
    /// Starts the push thread. `url` is the Pushgateway's base URL;
    /// `every` is rounded to whole seconds (at least one).
    pub fn new(url: &str, run_id: &str, every: Duration) -> Result<Self, PushError> {
        let base = url::Url::parse(url).map_err(|_| PushError::Url(url.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(PushError::Url(url.to_string()));
        }
        let endpoint = format!(
            "{}/metrics/job/reliable_load/instance/{}",
            base.as_str().trim_end_matches('/'),
            path_segment(run_id)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PushError::Thread)?;
        let client = {
            let _context = runtime.enter();
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls_config().map_err(PushError::Tls)?)
                .timeout(PUSH_TIMEOUT)
                .connect_timeout(PUSH_TIMEOUT / 2)
                .build()
                .map_err(PushError::Client)?
        };
        let (bodies, receiver) = mpsc::channel();
        let target = endpoint.clone();
        let worker = std::thread::Builder::new()
            .name("load-prometheus-push".into())
            .spawn(move || push_loop(&runtime, &client, &target, &receiver))
            .map_err(PushError::Thread)?;
        Ok(Self {
            endpoint,
            every_ticks: every.as_secs().max(1),
            ticks: 0,
            live: BTreeMap::new(),
            skipped: BTreeMap::new(),
            in_flight: 0,
            queued: 0,
            bodies: Some(bodies),
            worker: Some(worker),
            tally: PushTally::default(),
        })
    }

    /// Where the pushes go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Pushes done and failed; final after `finish()`.
    pub fn tally(&self) -> PushTally {
        self.tally
    }

    /// The metrics as of now, closing the latency window.
    fn snapshot(&mut self) -> RunMetrics {
        let mut metrics = RunMetrics {
            dropped: self.skipped.clone(),
            in_flight: self.in_flight,
            queued: self.queued,
            ..RunMetrics::default()
        };
        for (key, live) in &mut self.live {
            if !live.window.latency.is_empty() {
                let latency = &live.window.latency;
                live.metrics.latency_us =
                    Some([0.5, 0.9, 0.99, 0.999].map(|q| latency.value_at_quantile(q)));
            }
            if !live.window.lateness.is_empty() {
                live.metrics.lateness_p999_us = Some(live.window.lateness.value_at_quantile(0.999));
            }
            live.window.reset();
            metrics.names.insert(key.clone(), live.metrics.clone());
        }
        metrics
    }

    fn send(&mut self, body: String) {
        if let Some(bodies) = &self.bodies {
            // The thread only stops when the sender is dropped.
            let _ = bodies.send(body);
        }
    }

    fn stop(&mut self) {
        self.bodies = None;
        if let Some(worker) = self.worker.take() {
            self.tally = worker.join().unwrap_or(PushTally {
                pushed: self.tally.pushed,
                failed: self.tally.failed + 1,
            });
        }
    }
}

fn push_loop(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    endpoint: &str,
    bodies: &mpsc::Receiver<String>,
) -> PushTally {
    let mut tally = PushTally::default();
    while let Ok(mut body) = bodies.recv() {
        // A PUT replaces the group: only the newest body is worth sending.
        while let Ok(newer) = bodies.try_recv() {
            body = newer;
        }
        let sent = runtime.block_on(async {
            // Built inside the runtime: the request's timeout is a Tokio timer.
            client
                .put(endpoint)
                .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(body)
                .send()
                .await
        });
        let failure = match sent {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the Pushgateway answered {}", response.status())),
            Err(error) => Some(error.to_string()),
        };
        match failure {
            None => tally.pushed += 1,
            Some(reason) => {
                if tally.failed == 0 {
                    eprintln!(
                        "reliable load: cannot push metrics to {endpoint}: {reason}; \
                         the run goes on, further failures are only counted"
                    );
                }
                tally.failed += 1;
            }
        }
    }
    tally
}

impl Observer for PrometheusPush {
    fn tick(&mut self, plan: &Plan, tick: &Tick) {
        self.in_flight = tick.in_flight;
        self.queued = tick.queued;
        for (scenario_index, request_index, stats) in &tick.rows {
            let Some(scenario) = plan.scenarios.get(*scenario_index) else {
                continue;
            };
            let Some(request) = scenario.requests.get(*request_index) else {
                continue;
            };
            let live = self
                .live
                .entry((scenario.name.clone(), request.name.clone()))
                .or_default();
            live.metrics.ok += stats.ok;
            live.metrics.unexpected_status += stats.unexpected_status;
            live.metrics.timeouts += stats.timeouts;
            live.metrics.transport_errors += stats.transport_errors;
            for (check, (passed, failed)) in &stats.checks {
                let entry = live.metrics.checks.entry(check.clone()).or_default();
                entry.0 += passed;
                entry.1 += failed;
            }
            let _ = live.window.latency.add(&stats.latency);
            let _ = live.window.lateness.add(&stats.lateness);
            *self.skipped.entry(scenario.name.clone()).or_default() += stats.skipped_empty_pool;
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(self.every_ticks) {
            let body = self.snapshot().text();
            self.send(body);
        }
    }

    /// Pushes the final counts (from the results, which are authoritative)
    /// and waits for the push thread, at most about the push timeout.
    fn finish(&mut self, _plan: &Plan, results: &Results) {
        let mut metrics = self.snapshot();
        metrics.in_flight = 0;
        metrics.queued = 0;
        metrics.dropped.clear();
        for scenario in &results.scenarios {
            let mut skipped = 0;
            for (name, stats) in &scenario.requests {
                let entry = metrics
                    .names
                    .entry((scenario.name.clone(), name.clone()))
                    .or_default();
                entry.ok = stats.ok;
                entry.unexpected_status = stats.unexpected_status;
                entry.timeouts = stats.timeouts;
                entry.transport_errors = stats.transport_errors;
                entry.checks = stats.checks.clone();
                skipped += stats.skipped_empty_pool;
            }
            metrics
                .dropped
                .insert(scenario.name.clone(), scenario.dropped + skipped);
        }
        self.send(metrics.text());
        self.stop();
        if self.tally.failed > 0 {
            eprintln!(
                "reliable load: {} of {} metric pushes to {} failed",
                self.tally.failed,
                self.tally.failed + self.tally.pushed,
                self.endpoint
            );
        }
    }
}

impl Drop for PrometheusPush {
    /// Without `finish()` (a run that failed to start), the thread still
    /// ends and is joined: nothing outlives the observer.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
