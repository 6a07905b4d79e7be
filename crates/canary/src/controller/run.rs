//! The driver: one tracked task per run, and the [`Controller`] that
//! starts, stops and resumes them.

use super::judging::{self, SideQueries};
use super::{apply, decide, Action, Decision, Look, Phase, RunState};
use crate::metrics::MetricsSource;
use crate::spec::{self, CanaryPlan, RestartPolicy};
use crate::store::{RunStore, StoredRun};
use crate::target::{Target, TargetError};
use kit::changes::{ChangeKind, ChangeRecorder};
use kit::storage::StoreError;
use kit::Clock;
use slo::Slo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Builds the target a plan names (in process or over HTTP).
pub type TargetFactory =
    Arc<dyn Fn(&CanaryPlan) -> Result<Arc<dyn Target>, TargetError> + Send + Sync>;
/// Builds the metrics source a plan reads (in process or Prometheus).
pub type SourceFactory = Arc<dyn Fn(&CanaryPlan) -> Arc<dyn MetricsSource> + Send + Sync>;

/// Counter of rollbacks, labelled by `canary` (the spec's name).
pub const ROLLBACKS_TOTAL: &str = "canary_rollbacks_total";
/// Counter of decisions by `canary` and `action`.
pub const DECISIONS_TOTAL: &str = "canary_decisions_total";
/// Gauge: the weight a run set, by `canary` and `target`.
pub const WEIGHT_PERCENT: &str = "canary_weight_percent";

/// Longest wait for a live run's driver to carry out an abort or a promotion.
const COMMAND_WAIT: Duration = Duration::from_secs(30);

/// Pause between attempts to land a rollback on an unreachable target.
const ROLLBACK_RETRY: Duration = Duration::from_secs(1);

/// Why a run could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("the canary spec is invalid: {0}")]
    Spec(#[from] yamlspec::SpecError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{0}")]
    Metrics(String),
    /// Another unfinished run holds the target.
    #[error("a canary is already running on {0}; abort it or wait for it to finish")]
    AlreadyRunning(String),
    #[error("no canary run {0}")]
    NotFound(String),
    #[error("canary run {id} is {phase}; it cannot be changed")]
    Finished { id: String, phase: &'static str },
    #[error("the canary store failed")]
    Store(#[source] StoreError),
}

impl From<StoreError> for ControllerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A person's command to a live run.
#[derive(Debug)]
enum Command {
    Abort { by: String },
    Promote { by: String },
}

/// A live run's command channel.
#[derive(Clone)]
pub struct RunHandle {
    commands: mpsc::Sender<Command>,
}

struct Inner {
    store: RunStore,
    slos: Vec<Slo>,
    targets: TargetFactory,
    sources: SourceFactory,
    clock: Arc<dyn Clock>,
    tracker: TaskTracker,
    stop: CancellationToken,
    live: Mutex<HashMap<String, RunHandle>>,
    decisions: broadcast::Sender<(String, Decision)>,
    /// The platform's change timeline: steps, rollbacks, promotions.
    changes: std::sync::RwLock<ChangeRecorder>,
}

/// Starts, follows, aborts, promotes and resumes canary runs.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

fn now_of(clock: &dyn Clock) -> SystemTime {
    clock.now().into()
}

fn new_id(name: &str, now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let suffix: u32 = rand::random();
    format!("{name}-{secs}-{suffix:08x}")
}

impl Controller {
    /// A controller over `store`, judging with `slos`. Its runs are tasks
    /// on `tracker`, stopped by `stop` (a stopped run stays unfinished in
    /// the store and is resumed by the next controller).
    pub fn new(
        store: RunStore,
        slos: Vec<Slo>,
        targets: TargetFactory,
        sources: SourceFactory,
        clock: Arc<dyn Clock>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let (decisions, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                store,
                slos,
                targets,
                sources,
                clock,
                tracker,
                stop,
                live: Mutex::new(HashMap::new()),
                decisions,
                changes: std::sync::RwLock::new(ChangeRecorder::discard()),
            }),
        }
    }

    /// Records steps, rollbacks and promotions on the platform's change
    /// timeline from now on (`ChangeRecorder::from_ports` in the module).
    pub fn record_changes(&self, recorder: ChangeRecorder) {
        *self
            .inner
            .changes
            .write()
            .unwrap_or_else(|e| e.into_inner()) = recorder;
    }

    /// Records a canary spec read again from `watch_dir` (a
    /// `config_reload` naming the file and the run it started).
    pub fn note_spec_reload(&self, file: &std::path::Path, run: &RunState) {
        note_change(
            &self.inner,
            run,
            ChangeKind::ConfigReload,
            format!(
                "canary spec {} read from watch_dir: started run {}",
                file.display(),
                run.id
            ),
        );
    }

    /// Cancelled when the controller stops.
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    /// The metrics source `plan` reads.
    pub fn source_for(&self, plan: &CanaryPlan) -> Arc<dyn MetricsSource> {
        (self.inner.sources)(plan)
    }

    /// Every decision of every live run, as it is made.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, Decision)> {
        self.inner.decisions.subscribe()
    }

    pub fn store(&self) -> &RunStore {
        &self.inner.store
    }

    /// The SLOs specs are checked against.
    pub fn slos(&self) -> &[Slo] {
        &self.inner.slos
    }

    /// Checks `spec` and starts it: the target must exist and have a
    /// canary side, the metrics must be readable, and no other unfinished
    /// run may hold the target. Sets the first step's weight.
    pub async fn start(&self, spec_text: &str) -> Result<RunState, ControllerError> {
        let plan = spec::compile(spec_text, &self.inner.slos)?;
        let target = (self.inner.targets)(&plan)?;
        let split = target.split().await?;
        let queries = judging::queries(&plan, &split)?;
        let source = (self.inner.sources)(&plan);
        let now = now_of(&*self.inner.clock);
        // The window's first read: proves the source answers before any
        // traffic moves, and (in process) marks the window's start.
        source.read(&queries.flat(), now, now).await.map_err(|e| {
            ControllerError::Metrics(format!(
                "the metrics cannot be read, so the canary does not start: {e}"
            ))
        })?;
        let state = RunState::new(new_id(&plan.name, now), &plan, now);
        match self.inner.store.insert(&state, spec_text).await {
            Err(StoreError::Conflict(_)) => {
                return Err(ControllerError::AlreadyRunning(plan.target_key()))
            }
            other => other?,
        }
        let reason = format!("canary {} step 1: {}%", plan.name, state.weight);
        if let Err(e) = target.set_weight(state.weight, &reason).await {
            let mut failed = state.clone();
            failed.phase = Phase::RolledBack;
            failed.weight = 0.0;
            failed.reason = Some(format!("the first weight could not be set: {e}"));
            // Whatever happened there, leave the target at 0.
            let _ = target.set_weight(0.0, "canary failed to start").await;
            self.inner.store.save(&failed, None).await?;
            return Err(e.into());
        }
        tracing::info!(canary = %plan.name, run = %state.id, target = %state.target, weight = state.weight, "canary started");
        note_change(
            &self.inner,
            &state,
            ChangeKind::CanaryStep,
            format!(
                "canary {} started: {}% to the canary",
                plan.name, state.weight
            ),
        );
        metrics::gauge!(WEIGHT_PERCENT, "canary" => plan.name.clone(), "target" => state.target.clone())
            .set(state.weight);
        self.spawn(plan, state.clone(), target, source, queries);
        Ok(state)
    }

    /// Picks up the runs a previous controller left unfinished: resumes
    /// each (setting its recorded weight again, so the split is known) or
    /// rolls it back, as its spec's `on_restart` says. Returns them.
    pub async fn resume_unfinished(&self) -> Result<Vec<RunState>, ControllerError> {
        let mut out = Vec::new();
        for StoredRun { mut state, spec } in self.inner.store.list(true, 1000).await? {
            if self.is_live(&state.id) {
                continue;
            }
            let plan = match spec::compile(&spec, &self.inner.slos) {
                Ok(plan) => plan,
                Err(e) => {
                    // The SLOs changed under it: it cannot be judged any more.
                    tracing::error!(run = %state.id, error = %e, "stored canary no longer compiles; rolling it back");
                    self.finish_elsewhere(
                        &mut state,
                        None,
                        Phase::RolledBack,
                        format!("spec no longer valid after restart: {e}"),
                    )
                    .await?;
                    out.push(state);
                    continue;
                }
            };
            let target = match (self.inner.targets)(&plan) {
                Ok(t) => t,
                Err(e) => {
                    self.finish_elsewhere(
                        &mut state,
                        None,
                        Phase::RolledBack,
                        format!("target gone after restart: {e}"),
                    )
                    .await?;
                    out.push(state);
                    continue;
                }
            };
            let rollback = plan.on_restart == RestartPolicy::Rollback;
            let resumed = async {
                let split = target.split().await?;
                let queries = judging::queries(&plan, &split)?;
                Ok::<_, ControllerError>(queries)
            }
            .await;
            match resumed {
                Ok(queries) if !rollback => {
                    let now = now_of(&*self.inner.clock);
                    if state.phase == Phase::Running {
                        target
                            .set_weight(
                                state.weight,
                                &format!("canary {} resumed after a controller restart", plan.name),
                            )
                            .await?;
                    }
                    // A new process has a new window: compare from now on.
                    state.started_at = now;
                    state.step_started_at = now;
                    let source = (self.inner.sources)(&plan);
                    let _ = source.read(&queries.flat(), now, now).await;
                    state.reason = None;
                    self.inner.store.save(&state, None).await?;
                    tracing::warn!(canary = %plan.name, run = %state.id, weight = state.weight, "canary resumed after a controller restart");
                    self.spawn(plan, state.clone(), target, source, queries);
                }
                other => {
                    let why = match other {
                        Err(e) => format!("could not resume after a controller restart: {e}"),
                        Ok(_) => "rolled back after a controller restart (on_restart: rollback)"
                            .to_string(),
                    };
                    self.finish_elsewhere(&mut state, Some(&*target), Phase::RolledBack, why)
                        .await?;
                }
            }
            out.push(state);
        }
        Ok(out)
    }

    /// Finishes a run that has no live driver: rolls the target back (if
    /// given) and records why.
    async fn finish_elsewhere(
        &self,
        state: &mut RunState,
        target: Option<&dyn Target>,
        phase: Phase,
        why: String,
    ) -> Result<(), ControllerError> {
        if let Some(target) = target {
            if phase != Phase::Promoted {
                land_rollback(target, &why, &self.inner.stop).await;
            }
        }
        state.phase = phase;
        state.weight = if phase == Phase::Promoted { 100.0 } else { 0.0 };
        state.reason = Some(why.clone());
        let decision = Decision {
            at: now_of(&*self.inner.clock),
            step: state.step,
            weight: state.weight,
            action: if phase == Phase::Promoted {
                Action::Promote
            } else {
                Action::Rollback
            },
            summary: why,
            judgement: None,
        };
        state.looks += 1;
        self.inner.store.save(state, Some(&decision)).await?;
        note_decision(&self.inner, state, &decision);
        Ok(())
    }

    fn is_live(&self, id: &str) -> bool {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// The run `id`, or the unfinished run on target `id`.
    pub async fn find(&self, id: &str) -> Result<StoredRun, ControllerError> {
        if let Some(run) = self.inner.store.get(id).await? {
            return Ok(run);
        }
        self.inner
            .store
            .list(true, 1000)
            .await?
            .into_iter()
            .find(|r| r.state.target == id)
            .ok_or_else(|| ControllerError::NotFound(id.to_string()))
    }

    /// Stops a run and rolls it back (`by` is logged and recorded).
    pub async fn abort(&self, id: &str, by: &str) -> Result<RunState, ControllerError> {
        self.command(id, Command::Abort { by: by.to_string() })
            .await
    }

    /// Promotes a run now, whatever the judge says (`by` is logged).
    pub async fn promote(&self, id: &str, by: &str) -> Result<RunState, ControllerError> {
        self.command(id, Command::Promote { by: by.to_string() })
            .await
    }

    async fn command(&self, id: &str, command: Command) -> Result<RunState, ControllerError> {
        let run = self.find(id).await?;
        if run.state.phase.is_finished() {
            return Err(ControllerError::Finished {
                id: run.state.id,
                phase: run.state.phase.as_str(),
            });
        }
        let handle = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run.state.id)
            .cloned();
        let mut decisions = self.subscribe();
        let undelivered = match handle {
            Some(handle) => match handle.commands.send(command).await {
                Ok(()) => {
                    // Wait for the driver to carry it out and record it
                    // (bounded: a driver stopping meanwhile leaves the run
                    // unfinished, and the answer says so).
                    let carried_out = async {
                        loop {
                            match decisions.recv().await {
                                Ok((rid, d))
                                    if rid == run.state.id
                                        && !matches!(
                                            d.action,
                                            Action::Hold | Action::Advance { .. }
                                        ) =>
                                {
                                    break
                                }
                                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    };
                    let _ = tokio::time::timeout(COMMAND_WAIT, carried_out).await;
                    None
                }
                Err(mpsc::error::SendError(command)) => Some(command),
            },
            None => Some(command),
        };
        if let Some(command) = undelivered {
            // No driver here (it died, or runs nowhere): act directly.
            let plan = spec::compile(&run.spec, &self.inner.slos)?;
            let target = (self.inner.targets)(&plan)?;
            let mut state = run.state.clone();
            match command {
                Command::Abort { by } => {
                    self.finish_elsewhere(
                        &mut state,
                        Some(&*target),
                        Phase::Aborted,
                        format!("aborted by {by}"),
                    )
                    .await?
                }
                Command::Promote { by } => {
                    target.promote(&format!("promoted by {by}")).await?;
                    self.finish_elsewhere(
                        &mut state,
                        None,
                        Phase::Promoted,
                        format!("promoted by {by} (manual override)"),
                    )
                    .await?
                }
            }
        }
        Ok(self.find(&run.state.id).await?.state)
    }

    fn spawn(
        &self,
        plan: CanaryPlan,
        state: RunState,
        target: Arc<dyn Target>,
        source: Arc<dyn MetricsSource>,
        queries: SideQueries,
    ) {
        let (commands, receiver) = mpsc::channel(4);
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(state.id.clone(), RunHandle { commands });
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move {
            let id = state.id.clone();
            drive(&inner, plan, state, target, source, queries, receiver).await;
            inner
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }
}

/// Sets weight 0, retrying until it lands or the process stops: a
/// rollback that did not reach the target is not a rollback.
async fn land_rollback(target: &dyn Target, why: &str, stop: &CancellationToken) -> bool {
    loop {
        match target.set_weight(0.0, why).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::error!(target = %target.key(), error = %e, "rollback did not land; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(ROLLBACK_RETRY) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
    }
}

async fn drive(
    inner: &Inner,
    plan: CanaryPlan,
    mut state: RunState,
    target: Arc<dyn Target>,
    source: Arc<dyn MetricsSource>,
    queries: SideQueries,
    mut commands: mpsc::Receiver<Command>,
) {
    let flat = queries.flat();
    loop {
        let manual = tokio::select! {
            _ = tokio::time::sleep(plan.judge.interval) => None,
            command = commands.recv() => command,
            _ = inner.stop.cancelled() => {
                tracing::info!(run = %state.id, "controller stopping; the run stays unfinished and resumes on restart");
                return;
            }
        };
        let now = now_of(&*inner.clock);
        let decision = match manual {
            Some(Command::Abort { by }) => Decision {
                at: now,
                step: state.step,
                weight: state.weight,
                action: Action::Rollback,
                summary: format!("aborted by {by}"),
                judgement: None,
            },
            Some(Command::Promote { by }) => Decision {
                at: now,
                step: state.step,
                weight: state.weight,
                action: Action::Promote,
                summary: format!("promoted by {by} (manual override)"),
                judgement: None,
            },
            None if state.phase == Phase::Paused => continue,
            None => {
                let judged = source
                    .read(&flat, state.started_at, now)
                    .await
                    .map(|readings| judging::judge(&plan, &queries, &readings));
                match &judged {
                    Ok(Ok(j)) => decide(&plan, &state, now, Look::Judged(j)),
                    Ok(Err(e)) => {
                        decide(&plan, &state, now, Look::MetricsUnreadable(e.to_string()))
                    }
                    Err(e) => decide(&plan, &state, now, Look::MetricsUnreadable(e.to_string())),
                }
            }
        };
        let decision = carry_out(inner, &plan, &*target, decision).await;
        let aborted = decision.summary.starts_with("aborted by");
        apply(&mut state, &decision);
        if aborted {
            state.phase = Phase::Aborted;
        }
        record(inner, &plan, &state, &decision).await;
        if state.phase.is_finished() {
            return;
        }
    }
}

/// Acts on the target. A change that cannot reach the target becomes a
/// hold (try again next look), except a rollback, which is retried until
/// it lands.
async fn carry_out(
    inner: &Inner,
    plan: &CanaryPlan,
    target: &dyn Target,
    mut decision: Decision,
) -> Decision {
    let reason = format!("canary {}: {}", plan.name, decision.summary);
    let result = match &decision.action {
        Action::Hold | Action::Pause => Ok(()),
        Action::Advance { to } => target.set_weight(*to, &reason).await.map(|_| ()),
        Action::Promote => target.promote(&reason).await.map(|_| ()),
        Action::Rollback => {
            land_rollback(target, &reason, &inner.stop).await;
            Ok(())
        }
    };
    if let Err(e) = result {
        decision.summary = format!("{} (not applied: {e}; will try again)", decision.summary);
        decision.action = Action::Hold;
    }
    decision
}

async fn record(inner: &Inner, plan: &CanaryPlan, state: &RunState, decision: &Decision) {
    let canary = plan.name.clone();
    metrics::counter!(DECISIONS_TOTAL, "canary" => canary.clone(), "action" => decision.action.as_str())
        .increment(1);
    metrics::gauge!(WEIGHT_PERCENT, "canary" => canary.clone(), "target" => state.target.clone())
        .set(state.weight);
    match decision.action {
        Action::Hold => {
            tracing::debug!(canary = %canary, run = %state.id, summary = %decision.summary, "canary look")
        }
        Action::Rollback => {
            metrics::counter!(ROLLBACKS_TOTAL, "canary" => canary.clone()).increment(1);
            tracing::warn!(event = "canary.rollback", canary = %canary, run = %state.id, target = %state.target, reason = %decision.summary, "canary rolled back");
        }
        _ => {
            tracing::info!(event = %format!("canary.{}", decision.action.as_str()), canary = %canary, run = %state.id, target = %state.target, weight = state.weight, summary = %decision.summary, "canary decision")
        }
    }
    note_decision(inner, state, decision);
    // A store that is down loses nothing the target does not know: the
    // next save writes the latest state.
    if let Err(e) = inner.store.save(state, Some(decision)).await {
        tracing::error!(run = %state.id, error = %e, "canary state could not be saved");
    }
    let _ = inner.decisions.send((state.id.clone(), decision.clone()));
}

/// Records one change of run `state` on the platform's timeline.
fn note_change(inner: &Inner, state: &RunState, kind: ChangeKind, summary: String) {
    let recorder = inner
        .changes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    recorder.record(super::timeline::event(
        inner.clock.now(),
        state,
        kind,
        summary,
    ));
}

fn note_decision(inner: &Inner, state: &RunState, decision: &Decision) {
    if let Some((kind, summary)) = super::timeline::decision(state, decision) {
        note_change(inner, state, kind, summary);
    }
}
