//! Runs a [`Plan`]: setup, the scenarios on their timeline, teardown.
//!
//! - `schedule`: when each arrival of the open model is due;
//! - `timer`: a sub-millisecond sleep inside the runtime (timerfd);
//! - `client`: TCP/TLS, HTTP/1.1 and HTTP/2 connections;
//! - `exchange`: one request from template to checks and captures;
//! - `harvest`: the open model's answers read when its thread wakes
//!   anyway, timed by the kernel's receive timestamps;
//! - `worker`: a scenario's threads, slots and dispatchers;
//! - `phase`: setup and teardown (closed model, counted, capture checks).
//!
//! The collector here wakes once a second: it swaps every thread's
//! interval stats for empty ones, folds them into the run's totals and
//! the capped series, tells the observers, and evaluates the thresholds
//! that may abort the run.

mod client;
mod exchange;
mod harvest;
mod phase;
mod schedule;
mod timer;
mod wire;
mod worker;

use crate::observe::Observer;
use crate::plan::{Plan, ScenarioPlan};
use crate::results::{Point, Results, ScenarioResults, Series, Stats, Tick};
use crate::scenario::State;
use crate::start_at::StartAt;
use crate::threshold::Threshold;
use client::Connector;
use exchange::Prepared;
use schedule::Schedule;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use worker::{ScenarioRun, Shard};

pub use phase::SetupError;
pub(crate) use timer::PreciseTimer;

/// Requests still in flight when their scenario ends get this long (or
/// their timeout, if shorter) before they count as timeouts, so a target
/// that never answers cannot hold the run past its end.
pub const GRACEFUL_STOP: Duration = Duration::from_secs(1);

/// Lead time between planning the load phase and its first arrival, so
/// the threads and their connections are up before anything is due.
const LEAD: Duration = Duration::from_millis(200);

/// How the engine runs, beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Generator threads per scenario (never more than its connections);
    /// `None` chooses: one per core in the closed model, and in the open
    /// model one per 25,000/s of the peak rate, at most
    /// one per core.
    pub threads: Option<usize>,
    /// Set to end the load early, as a failed abort threshold does (a
    /// drill stops its load once the canary is decided).
    pub stop: Option<Arc<AtomicBool>>,
}

/// The open-model rate one generator thread is given before a second
/// one starts. Measured on 2 cores against nginx: one thread holds
/// 50,000/s at 17 us of CPU per request, and at 20,000/s one thread spends
/// less CPU per request than two (each timer wake-up finds twice the
/// arrivals due, and no thread wakes for another's few); see
/// docs/performance.md, "Load generator".
const OPEN_RATE_PER_THREAD: f64 = 25_000.0;

/// Threads when the caller does not say: one per core for the closed
/// model, which is bound by CPU; for the open model, which is bound by
/// wake-ups, as few as its peak rate needs.
fn automatic_threads(executor: &crate::plan::Executor) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match executor.peak_rate() {
        None => cores,
        Some(rate) => {
            let wanted = (rate / OPEN_RATE_PER_THREAD).ceil();
            // The plan refuses rates that are not finite and positive;
            // anything else still ends between 1 and `cores`.
            if wanted.is_finite() && wanted >= 1.0 {
                (wanted.min(cores as f64) as usize).max(1)
            } else {
                1
            }
        }
    }
}

/// Runs the plan. Errors are only for what stops a run from being
/// meaningful (setup could not seed its pools); errors of requests during
/// the load are counted in the results.
pub async fn run(
    plan: &Plan,
    options: &EngineOptions,
    observers: &mut [Box<dyn Observer>],
) -> Result<Results, SetupError> {
    run_at(plan, options, observers, None).await
}

/// [`run`], with the load phase waiting for `start_at` after setup (so
/// agents on several machines begin their load together). A start that
/// setup has already overrun is an error, and nothing is sent.
pub async fn run_at(
    plan: &Plan,
    options: &EngineOptions,
    observers: &mut [Box<dyn Observer>],
    start_at: Option<&StartAt>,
) -> Result<Results, SetupError> {
    let state = Arc::new(State::new(&plan.pools));
    let mut results = Results {
        setup: phase::run("setup", &plan.setup, &state, true).await?,
        ..Results::default()
    };
    if let Some(start_at) = start_at {
        start_at.wait(&chrono::Utc::now).await?;
    }
    load_phase(plan, options, &state, observers, &mut results).await;
    // Teardown runs even after an abort; its failures are reported, not
    // fatal.
    results.teardown = match phase::run("teardown", &plan.teardown, &state, false).await {
        Ok(teardown) => teardown,
        Err(e) => {
            eprintln!("load: teardown: {e}");
            Vec::new()
        }
    };
    for observer in observers.iter_mut() {
        observer.finish(plan, &results);
    }
    Ok(results)
}

/// A started scenario, as the collector sees it.
struct Running {
    scenario: usize,
    shards: Vec<Arc<Shard>>,
    /// Per shard, the stats swapped out of it last second, emptied and
    /// ready to swap in again: the collector holds a shard's lock only for
    /// a swap, never for the merge of its histograms (which takes long
    /// enough to make the generator thread late).
    spares: Vec<Vec<Stats>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

async fn load_phase(
    plan: &Plan,
    options: &EngineOptions,
    state: &Arc<State>,
    observers: &mut [Box<dyn Observer>],
    results: &mut Results,
) {
    let stop = options
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let zero = Instant::now() + LEAD;
    results.started_unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        + u64::try_from(LEAD.as_millis()).unwrap_or(0);
    results.scenarios = plan.scenarios.iter().map(empty_results).collect();
    results.series = plan
        .scenarios
        .iter()
        .flat_map(|s| {
            s.requests.iter().map(|r| Series {
                scenario: s.name.clone(),
                name: r.name.clone(),
                points: Vec::new(),
            })
        })
        .collect();
    let series_offsets: Vec<usize> = plan
        .scenarios
        .iter()
        .scan(0, |offset, s| {
            let here = *offset;
            *offset += s.requests.len();
            Some(here)
        })
        .collect();

    let mut pending: Vec<usize> = (0..plan.scenarios.len()).collect();
    let mut running: Vec<Running> = Vec::new();
    let mut second = 1u64;
    let mut aborted_at: Option<Instant> = None;
    loop {
        // Start what is due.
        let now = Instant::now();
        pending.retain(|&i| {
            let scenario = &plan.scenarios[i];
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            if zero + scenario.start > now + LEAD {
                return true;
            }
            running.push(start(i, scenario, zero, options, state, &stop));
            false
        });
        let tick_at = zero + Duration::from_secs(second);
        // Wake for the next scenario's start if it comes before the tick,
        // so its threads are up before its first arrival.
        let next_start = pending
            .iter()
            .map(|&i| {
                (zero + plan.scenarios[i].start)
                    .checked_sub(LEAD)
                    .unwrap_or(zero)
            })
            .min();
        if let Some(next_start) = next_start.filter(|&s| s < tick_at) {
            tokio::time::sleep_until(next_start.into()).await;
            continue;
        }
        tokio::time::sleep_until(tick_at.into()).await;
        let finished = collect(
            plan,
            &mut running,
            &series_offsets,
            tick_at.saturating_duration_since(zero).as_secs_f64(),
            observers,
            results,
        );
        for scenario in finished {
            close_scenario(plan, scenario, zero, aborted_at, results);
        }
        if aborted_at.is_none() {
            if let Some(reason) = abort_reason(&plan.thresholds, results, tick_at - zero) {
                eprintln!("load: aborting: threshold {reason} failed");
                results.aborted_by = Some(reason);
                stop.store(true, Ordering::SeqCst);
                aborted_at = Some(tick_at);
            }
        }
        if running.is_empty() && pending.is_empty() {
            break;
        }
        second += 1;
    }
    results.elapsed = Instant::now().saturating_duration_since(zero);
}

fn empty_results(scenario: &ScenarioPlan) -> ScenarioResults {
    let schedule = Schedule::of(&scenario.executor);
    ScenarioResults {
        name: scenario.name.clone(),
        executor: scenario.executor.kind(),
        target_rate: schedule.as_ref().map(Schedule::mean_rate),
        connections: scenario.connections,
        start: scenario.start,
        duration: scenario.executor.duration(),
        scheduled: 0,
        dropped: 0,
        requests: scenario
            .requests
            .iter()
            .map(|r| (r.name.clone(), Stats::default()))
            .collect(),
    }
}

fn start(
    index: usize,
    scenario: &ScenarioPlan,
    zero: Instant,
    options: &EngineOptions,
    state: &Arc<State>,
    stop: &Arc<AtomicBool>,
) -> Running {
    let start = zero + scenario.start;
    let threads = options
        .threads
        .unwrap_or_else(|| automatic_threads(&scenario.executor))
        .clamp(1, scenario.connections.max(1));
    let cumulative_weights = scenario
        .requests
        .iter()
        .scan(0u64, |sum, r| {
            *sum += u64::from(r.weight);
            Some(*sum)
        })
        .collect();
    let run = Arc::new(ScenarioRun {
        requests: scenario.requests.iter().map(Prepared::new).collect(),
        cumulative_weights,
        connector: Connector::new(scenario.http2, scenario.insecure_tls),
        schedule: Schedule::of(&scenario.executor).map(|s| s.with_warmup(scenario.warmup)),
        state: state.clone(),
        start,
        measure_from: start + scenario.warmup,
        end: start + scenario.duration(),
        grace: GRACEFUL_STOP,
        stop: stop.clone(),
        threads,
        connections: scenario.connections.max(1),
    });
    let mut shards = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let shard = Arc::new(Shard::new(scenario.requests.len()));
        shards.push(shard.clone());
        let run = run.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("load-{}-{thread}", scenario.name))
            .spawn(move || worker::run_thread(run, shard, thread));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => eprintln!("load: cannot start generator thread {thread}: {e}"),
        }
    }
    Running {
        scenario: index,
        spares: shards
            .iter()
            .map(|_| vec![Stats::default(); scenario.requests.len()])
            .collect(),
        shards,
        threads: handles,
    }
}

/// Folds every thread's last second into the results, tells the
/// observers, and returns the scenarios whose threads have all ended.
fn collect(
    plan: &Plan,
    running: &mut Vec<Running>,
    series_offsets: &[usize],
    t: f64,
    observers: &mut [Box<dyn Observer>],
    results: &mut Results,
) -> Vec<usize> {
    let mut tick = Tick {
        t,
        in_flight: 0,
        queued: 0,
        rows: Vec::new(),
    };
    let mut finished = Vec::new();
    running.retain_mut(|scenario| {
        let all_done = scenario
            .shards
            .iter()
            .all(|s| s.done.load(Ordering::SeqCst));
        let mut second: Vec<Stats> =
            vec![Stats::default(); plan.scenarios[scenario.scenario].requests.len()];
        for (shard, spare) in scenario.shards.iter().zip(scenario.spares.iter_mut()) {
            tick.in_flight += shard.in_flight.load(Ordering::Relaxed);
            tick.queued += shard.queued();
            if let Ok(mut interval) = shard.interval.lock() {
                std::mem::swap(&mut *interval, spare);
            }
            for (into, from) in second.iter_mut().zip(spare.iter_mut()) {
                into.merge(from);
                from.reset();
            }
        }
        for (request, stats) in second.into_iter().enumerate() {
            if let Some(series) = results
                .series
                .get_mut(series_offsets[scenario.scenario] + request)
            {
                series.push(Point::of(t, &stats));
            }
            if let Some((_, total)) = results.scenarios[scenario.scenario]
                .requests
                .get_mut(request)
            {
                total.merge(&stats);
            }
            if stats.sent > 0 || stats.completed() > 0 || stats.skipped_empty_pool > 0 {
                tick.rows.push((scenario.scenario, request, stats));
            }
        }
        if all_done {
            for handle in scenario.threads.drain(..) {
                let _ = handle.join();
            }
            finished.push(scenario.scenario);
            false
        } else {
            true
        }
    });
    for observer in observers.iter_mut() {
        observer.tick(plan, &tick);
    }
    finished
}

/// Sets a finished scenario's schedule counts.
fn close_scenario(
    plan: &Plan,
    index: usize,
    zero: Instant,
    aborted_at: Option<Instant>,
    results: &mut Results,
) {
    let scenario = &plan.scenarios[index];
    let outcome = &mut results.scenarios[index];
    let sent: u64 = outcome.requests.iter().map(|(_, s)| s.sent).sum();
    match Schedule::of(&scenario.executor).map(|s| s.with_warmup(scenario.warmup)) {
        Some(schedule) => {
            let mut until = scenario.duration();
            if let Some(aborted) = aborted_at {
                until = until.min(aborted.saturating_duration_since(zero + scenario.start));
            }
            outcome.scheduled = schedule.count_between(scenario.warmup, until.max(scenario.warmup));
            let skipped: u64 = outcome
                .requests
                .iter()
                .map(|(_, s)| s.skipped_empty_pool)
                .sum();
            outcome.dropped = outcome.scheduled.saturating_sub(sent + skipped);
        }
        None => {
            outcome.scheduled = sent;
            outcome.dropped = 0;
        }
    }
}

/// The first `abort_on_fail` threshold that fails now, past its delay, on
/// something measured. A threshold whose key matches nothing yet (a
/// scenario that starts later) has no evidence against it: at the end of
/// the run it fails, but it does not cut the run short before its
/// scenario has even started.
fn abort_reason(thresholds: &[Threshold], results: &Results, elapsed: Duration) -> Option<String> {
    thresholds
        .iter()
        .filter(|t| t.abort_on_fail && elapsed >= t.delay_abort_eval)
        .find(|t| {
            let verdict = t.evaluate(results);
            verdict.observed.is_some() && !verdict.passed
        })
        .map(|t| format!("{}: {}", t.key, t.expression))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Executor, Stage};

    #[test]
    fn the_open_model_gets_threads_by_its_peak_rate_and_the_closed_one_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let constant = |rate| Executor::ConstantArrivalRate {
            rate,
            duration: Duration::from_secs(1),
        };
        assert_eq!(automatic_threads(&constant(20_000.0)), 1);
        assert_eq!(automatic_threads(&constant(0.5)), 1);
        assert_eq!(automatic_threads(&constant(50_000.0)), 2.min(cores));
        assert_eq!(automatic_threads(&constant(1e9)), cores);
        assert_eq!(automatic_threads(&constant(f64::NAN)), 1);
        let ramp = Executor::RampingArrivalRate {
            start_rate: 10.0,
            stages: vec![
                Stage {
                    target: 60_000.0,
                    duration: Duration::from_secs(1),
                },
                Stage {
                    target: 100.0,
                    duration: Duration::from_secs(1),
                },
            ],
        };
        assert_eq!(automatic_threads(&ramp), 3.min(cores));
        let closed = Executor::ConstantConnections {
            duration: Duration::from_secs(1),
        };
        assert_eq!(automatic_threads(&closed), cores);
    }
}
