//! Setup and teardown: requests sent a given number of times, a few at a
//! time, to seed data (and clean it up), not to measure.
//!
//! Setup exists so the test does not start on an empty database, so it
//! checks what it seeded: a capture that matched nothing on a successful
//! response is a mistake in the file (a wrong JSON pointer), and setup
//! fails with the capture, its line and the counts, rather than leaving a
//! silently empty pool for every later request to skip on.

use super::client::Connector;
use super::exchange::{Executed, Prepared, SharedHttp2, Slot};
use crate::plan::SetupStep;
use crate::results::{Outcome, PhaseResults, Stats};
use crate::scenario::{Render, State};
use crate::start_at::StartAtError;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why setup could not seed what the scenarios need.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetupError {
    #[error("{phase} step `{step}`: capture `{capture}` (line {line}) matched {matched} of {answered} successful responses; check the pointer or header name")]
    CaptureMissed {
        phase: &'static str,
        step: String,
        capture: String,
        line: usize,
        matched: u64,
        answered: u64,
    },
    #[error("{phase} step `{step}`: {failed} of {sent} requests failed ({detail})")]
    Failed {
        phase: &'static str,
        step: String,
        failed: u64,
        sent: u64,
        detail: String,
    },
    /// `--start-at` was already past when setup finished.
    #[error("after setup: {0}")]
    StartAt(#[from] StartAtError),
}

/// One step's running tally, shared by its concurrent senders.
#[derive(Default)]
struct Tally {
    stats: Stats,
    /// Per capture: values kept.
    matched: Vec<u64>,
}

/// Runs the steps in order. With `strict`, a step whose requests failed
/// or whose captures missed ends the phase with an error.
pub(crate) async fn run(
    phase: &'static str,
    steps: &[SetupStep],
    state: &Arc<State>,
    strict: bool,
) -> Result<Vec<PhaseResults>, SetupError> {
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let tally = run_step(step, state).await;
        let stats = tally.stats;
        let captured: BTreeMap<String, u64> = step
            .request
            .captures
            .iter()
            .zip(&tally.matched)
            .map(|(c, n)| (c.label.clone(), *n))
            .collect();
        if strict {
            if stats.errors() > 0 {
                return Err(SetupError::Failed {
                    phase,
                    step: step.request.name.clone(),
                    failed: stats.errors(),
                    sent: stats.sent,
                    detail: describe_failures(&stats),
                });
            }
            for (capture, matched) in step.request.captures.iter().zip(&tally.matched) {
                if *matched < stats.ok {
                    return Err(SetupError::CaptureMissed {
                        phase,
                        step: step.request.name.clone(),
                        capture: capture.label.clone(),
                        line: capture.line,
                        matched: *matched,
                        answered: stats.ok,
                    });
                }
            }
        }
        out.push(PhaseResults {
            phase,
            name: step.request.name.clone(),
            stats,
            captured,
        });
    }
    Ok(out)
}

fn describe_failures(stats: &Stats) -> String {
    let mut parts = Vec::new();
    if stats.transport_errors > 0 {
        parts.push(format!("{} transport errors", stats.transport_errors));
    }
    if stats.timeouts > 0 {
        parts.push(format!("{} timeouts", stats.timeouts));
    }
    let statuses: Vec<String> = stats
        .status_counts
        .iter()
        .map(|(code, n)| format!("{code} x{n}"))
        .collect();
    if !statuses.is_empty() {
        parts.push(format!("statuses {}", statuses.join(", ")));
    }
    parts.join("; ")
}

async fn run_step(step: &SetupStep, state: &Arc<State>) -> Tally {
    let request = Arc::new(Prepared::new(&step.request));
    let tally = Arc::new(Mutex::new(Tally {
        matched: vec![0; step.request.captures.len()],
        ..Tally::default()
    }));
    let next = Arc::new(AtomicU64::new(0));
    let connector = Connector::new(false, step.insecure_tls);
    let http2: SharedHttp2 = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..step.concurrency.max(1) {
        let mut slot = Slot::new(connector.clone(), http2.clone(), None);
        let (request, tally, next, state) =
            (request.clone(), tally.clone(), next.clone(), state.clone());
        let repeat = step.repeat;
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(rand::random::<u64>() ^ worker as u64);
            while next.fetch_add(1, Ordering::Relaxed) < repeat {
                let sent_at = Instant::now();
                let deadline = sent_at + request.plan.timeout;
                let executed = {
                    let mut render = Render {
                        state: &state,
                        rng: &mut rng,
                    };
                    slot.execute(&request, &mut render, deadline.into()).await
                };
                settle_step(&request, executed, sent_at, &state, &tally);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    match Arc::try_unwrap(tally) {
        Ok(tally) => tally.into_inner().unwrap_or_default(),
        Err(shared) => shared
            .lock()
            .map(|t| Tally {
                stats: t.stats.clone(),
                matched: t.matched.clone(),
            })
            .unwrap_or_default(),
    }
}

fn settle_step(
    request: &Prepared,
    executed: Executed,
    sent_at: Instant,
    state: &State,
    tally: &Mutex<Tally>,
) {
    let Ok(mut tally) = tally.lock() else {
        return;
    };
    let Executed::Sent { outcome, answer } = executed else {
        tally.stats.skipped_empty_pool += 1;
        return;
    };
    let plan = &request.plan;
    let ok_status = matches!(outcome, Outcome::Status(code) if plan.expect_status.contains(code));
    tally.stats.sent += 1;
    tally
        .stats
        .record_outcome(outcome, ok_status, sent_at.elapsed());
    let Some(answer) = answer else {
        return;
    };
    tally.stats.bytes_received += answer.body_bytes;
    for check in &plan.checks {
        let passed = check.passes(answer.status, &answer.headers, &answer.body);
        tally.stats.record_check(&check.name, passed);
    }
    if ok_status {
        for (i, capture) in plan.captures.iter().enumerate() {
            if let Some(value) = capture.extract(&answer.headers, &answer.body) {
                state.push(capture.pool, value);
                tally.matched[i] += 1;
            }
        }
    }
}
