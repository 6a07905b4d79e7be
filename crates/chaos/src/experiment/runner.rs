//! The run: start the background load, check the hypothesis before, run
//! the method while checking every `interval`, check after (retrying
//! within `after_within`), then the rollbacks and the clean-up, which run
//! whatever happened before them: a deviation, a failed action, Ctrl-C.
//!
//! A deviation during the method stops the method at once (the fault has
//! shown what it shows; the rollbacks end it). A deviation in the
//! before-check skips the method: the system was not in its steady state
//! to begin with, so the experiment could not show anything.

use super::actions::Actors;
use super::background::{Background, LoadSnapshot, NO_DATA};
use super::journal::{phase_name, reading_line, ActivityRecord, Check, Journal, Reading, Status};
use super::model::{Action, Experiment, Phase};
use super::probes::{measure, First, Probing};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Cancelled on Ctrl-C / SIGTERM: the method stops, rollbacks run.
    pub cancel: CancellationToken,
    /// Print each check and action on stderr as it happens.
    pub progress: bool,
}

struct Run<'a> {
    experiment: &'a Experiment,
    options: &'a RunOptions,
    started: Instant,
    http: reqwest::Client,
    actors: Actors,
    load: Option<Background>,
    firsts: Mutex<HashMap<String, First>>,
    baselines: Mutex<HashMap<String, f64>>,
    journal: Mutex<Journal>,
}

enum MethodEnd {
    Done,
    Failed(String),
    Deviated,
    Interrupted,
}

/// Runs `experiment` to its end and returns the journal.
pub async fn run(experiment: &Experiment, options: RunOptions) -> Journal {
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut journal = Journal {
        title: experiment.title.clone(),
        status: Status::Ok,
        deviated: false,
        started_unix_ms,
        duration_s: 0.0,
        checks: Vec::new(),
        activities: Vec::new(),
        deviations: Vec::new(),
        clean_up: Vec::new(),
        error: None,
    };
    // No redirects followed: a redirect's status is what a probe reads.
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            journal.status = Status::Aborted;
            journal.error = Some(format!("cannot build an HTTP client: {e}"));
            return journal;
        }
    };
    let tracker = TaskTracker::new();
    let load = match &experiment.load {
        Some(section) => match Background::start(section, &experiment.base_dir, &tracker) {
            Ok(load) => Some(load),
            Err(e) => {
                journal.status = Status::Aborted;
                journal.error = Some(e);
                return journal;
            }
        },
        None => None,
    };
    let run = Run {
        experiment,
        options: &options,
        started: Instant::now(),
        actors: Actors::new(http.clone()),
        http,
        load,
        firsts: Mutex::new(HashMap::new()),
        baselines: Mutex::new(HashMap::new()),
        journal: Mutex::new(journal),
    };
    run.run().await;
    let Run {
        load,
        journal,
        started,
        ..
    } = run;
    if let Some(load) = load {
        load.stop().await;
    }
    tracker.close();
    tracker.wait().await;
    let mut journal = journal.into_inner().unwrap_or_else(PoisonError::into_inner);
    journal.duration_s = started.elapsed().as_secs_f64();
    journal
}

impl Run<'_> {
    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn say(&self, line: String) {
        if self.options.progress {
            eprintln!("[{:>7.1}s] {line}", self.at());
        }
    }

    async fn run(&self) {
        let cancel = &self.options.cancel;
        if let Some(warmup) = self
            .experiment
            .load
            .as_ref()
            .map(|l| l.warmup.map_or(Duration::from_secs(2), |d| d.0))
        {
            self.say(format!(
                "load warming up for {}",
                humantime::format_duration(warmup)
            ));
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(warmup) => {}
            }
        }
        let mut steady = true;
        if !cancel.is_cancelled() && self.experiment.hypothesis.is_some() {
            steady = self.check(Phase::Before).await;
            if !steady {
                self.journal().status = Status::Deviated;
            }
        }
        if steady && !cancel.is_cancelled() {
            match self.method().await {
                MethodEnd::Done => {
                    if !self.after().await {
                        self.journal().status = Status::Deviated;
                    }
                }
                MethodEnd::Deviated => self.journal().status = Status::Deviated,
                MethodEnd::Failed(error) => {
                    let mut journal = self.journal();
                    journal.status = Status::Aborted;
                    journal.error = Some(error);
                }
                MethodEnd::Interrupted => self.journal().status = Status::Interrupted,
            }
        }
        if cancel.is_cancelled() && self.journal().status == Status::Ok {
            self.journal().status = Status::Interrupted;
        }
        for action in &self.experiment.rollbacks {
            // Rollbacks run to the end even after Ctrl-C: they undo the
            // damage.
            let _ = self.act(action, "rollbacks").await;
        }
        let notes = self.actors.clean_up().await;
        for note in &notes {
            self.say(format!("clean-up: {note}"));
        }
        let mut journal = self.journal();
        journal.clean_up = notes;
        journal.deviated = journal.status == Status::Deviated;
    }

    async fn method(&self) -> MethodEnd {
        let actions = async {
            for action in &self.experiment.method {
                if let Err(e) = self.act(action, "method").await {
                    return MethodEnd::Failed(format!(
                        "{} ({}): {e}",
                        action.name,
                        action.spec.kind()
                    ));
                }
            }
            MethodEnd::Done
        };
        let during = async {
            let Some(hypothesis) = &self.experiment.hypothesis else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(hypothesis.interval).await;
                if !self.check(Phase::During).await {
                    return MethodEnd::Deviated;
                }
            }
        };
        tokio::select! {
            _ = self.options.cancel.cancelled() => MethodEnd::Interrupted,
            end = actions => end,
            end = during => end,
        }
    }

    /// The after-check, retried every `interval` within `after_within`.
    async fn after(&self) -> bool {
        let Some(hypothesis) = &self.experiment.hypothesis else {
            return true;
        };
        // A load with a `duration` is let finish first, so the after-check
        // counts everything it did.
        let finite = self
            .experiment
            .load
            .as_ref()
            .is_some_and(|l| l.duration.is_some());
        if let (true, Some(load)) = (finite, &self.load) {
            self.say("waiting for the load to finish".to_string());
            tokio::select! {
                _ = self.options.cancel.cancelled() => return false,
                _ = load.finished() => {}
            }
        }
        let deadline = Instant::now() + hypothesis.after_within;
        loop {
            if self.check(Phase::After).await {
                return true;
            }
            if Instant::now() >= deadline || self.options.cancel.is_cancelled() {
                let mut journal = self.journal();
                let last = journal.checks.last().cloned();
                if let Some(last) = last {
                    journal
                        .deviations
                        .extend(last.readings.into_iter().filter(|r| !r.ok));
                }
                return false;
            }
            tokio::select! {
                _ = self.options.cancel.cancelled() => {}
                _ = tokio::time::sleep(hypothesis.interval) => {}
            }
        }
    }

    /// One action with its pauses and repeats; recorded in the journal.
    async fn act(&self, action: &Action, section: &'static str) -> Result<(), String> {
        if let Some(before) = action.pauses.before {
            tokio::time::sleep(before.0).await;
        }
        let (count, every) = action
            .repeat
            .map_or((1, Duration::ZERO), |r| (r.count.max(1), r.every.0));
        for i in 0..count {
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            self.act_once(action, section).await?;
        }
        if let Some(after) = action.pauses.after {
            tokio::time::sleep(after.0).await;
        }
        Ok(())
    }

    async fn act_once(&self, action: &Action, section: &'static str) -> Result<(), String> {
        let started_s = self.at();
        let outcome = self.actors.run(&action.spec).await;
        let (ok, note) = match &outcome {
            Ok(note) => (true, note.clone()),
            Err(e) => (false, e.clone()),
        };
        self.say(format!(
            "{section}: {} ({}): {}{note}",
            action.name,
            action.spec.kind(),
            if ok { "" } else { "FAILED: " }
        ));
        self.journal().activities.push(ActivityRecord {
            name: action.name.clone(),
            kind: action.spec.kind().to_string(),
            section,
            started_s,
            duration_s: self.at() - started_s,
            ok,
            note,
        });
        outcome.map(|_| ())
    }

    /// Checks every probe meant for `phase`; records the check. Before and
    /// during, a deviation is recorded at once; after, only once the
    /// retries are spent (see [`Run::after`]).
    async fn check(&self, phase: Phase) -> bool {
        let Some(hypothesis) = &self.experiment.hypothesis else {
            return true;
        };
        let snapshot: Option<LoadSnapshot> = self.load.as_ref().map(Background::snapshot);
        let probing = Probing {
            http: &self.http,
            load: snapshot.as_ref(),
            firsts: &self.firsts,
        };
        let at_s = self.at();
        let mut readings = Vec::new();
        for probe in hypothesis.probes.iter().filter(|p| p.when.contains(&phase)) {
            let measured = measure(probe, &probing).await;
            // A window without a finished request says nothing either way
            // (during a pause of the load); before and after it is an
            // error like any other.
            if phase == Phase::During && matches!(&measured.value, Err(e) if e == NO_DATA) {
                continue;
            }
            let tolerance = probe.tolerance.clone().unwrap_or_default();
            let baseline = self
                .baselines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&probe.name)
                .copied();
            let (value, error, ok, why) = match measured.value {
                Ok(value) => match tolerance.check(value, baseline) {
                    Ok(()) => (Some(value), None, true, None),
                    Err(why) => (Some(value), None, false, Some(why)),
                },
                Err(e) => (None, Some(e), false, None),
            };
            if phase == Phase::Before {
                if let Some(value) = value {
                    self.baselines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(probe.name.clone(), value);
                }
            }
            let reading = Reading {
                probe: probe.name.clone(),
                phase,
                at_s,
                value,
                error,
                tolerance: tolerance.to_string(),
                ok,
                why,
                detail: measured.detail,
            };
            self.say(reading_line(&reading));
            readings.push(reading);
        }
        let ok = readings.iter().all(|r| r.ok);
        self.say(format!(
            "{} check: {}",
            phase_name(phase),
            if ok { "ok" } else { "DEVIATED" }
        ));
        let mut journal = self.journal();
        if !ok && phase != Phase::After {
            journal
                .deviations
                .extend(readings.iter().filter(|r| !r.ok).cloned());
        }
        journal.checks.push(Check {
            phase,
            at_s,
            ok,
            readings,
        });
        ok
    }
}
