//! `--prometheus-push URL`: the run's metrics, pushed to a Prometheus
//! Pushgateway every few seconds and once at the end, so a load test shows
//! up on the same dashboards as the server it loads.
//!
//! Each push is a `PUT {URL}/metrics/job/reliable_load/instance/<run id>`
//! in the text exposition format (`exposition`). The observer only builds
//! bodies; a thread it owns (`pushgateway`) sends them, and `finish()`
//! joins it after the final push, so nothing outlives the run. A failed
//! push is counted and printed once; it never fails or slows the run.

use super::exposition::{NameMetrics, RunMetrics};
use super::pushgateway::{self, PushError, PushTally};
use crate::observe::Observer;
use crate::plan::Plan;
use crate::results::{Results, Stats, Tick};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often to push when `--prometheus-push-every` is not given.
pub const DEFAULT_PUSH_EVERY: Duration = Duration::from_secs(5);

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

impl PrometheusPush {
    /// Starts the push thread. `url` is the Pushgateway's base URL;
    /// `every` is rounded to whole seconds (at least one).
    pub fn new(url: &str, run_id: &str, every: Duration) -> Result<Self, PushError> {
        let (endpoint, bodies, worker) = pushgateway::start(url, run_id)?;
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
