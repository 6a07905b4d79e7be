//! Supervised background tasks.
//!
//! A background task that dies quietly is the worst kind of failure: the
//! process stays up and ready while an outbox stops draining or a cache
//! stops being invalidated. So no module spawns a bare task. Each module
//! gets a [`TaskSpawner`] scoped to its name, and every task it spawns
//! declares what its death means ([`OnFailure`]):
//!
//! - [`OnFailure::Unready`]: the process keeps serving what it can, but
//!   `/readyz` fails (the [`Supervisor::readiness_check`]) so the pod is
//!   taken out of rotation and someone looks;
//! - [`OnFailure::Exit`]: the process cannot do its job at all; the
//!   platform stops (exit code non-zero) and the orchestrator restarts it.
//!
//! A task has died when it returns an error, panics, or returns before its
//! module was asked to stop. Every death is logged with the module and task
//! names and counted in `reliable_task_failures_total{module,task}`.
//!
//! Each module's tasks are stopped together ([`TaskSpawner::shutdown`]),
//! so the binary can stop modules in the reverse of their start order.
//!
//! Every poll of a task is timed on the thread's CPU clock and counted in
//! `reliable_cost_cpu_seconds_total{module,route="task:<name>"}`, so a
//! module's background work is part of its cost (crate::cpu_cost).

use crate::health::ReadinessCheck;
use futures::FutureExt;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The counter of background tasks that died.
pub const TASK_FAILURES: &str = "reliable_task_failures_total";

/// What the death of a background task means for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Readiness turns false; the process keeps running.
    Unready,
    /// The process stops with an error.
    Exit,
}

/// One task that died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub module: &'static str,
    pub task: &'static str,
    pub on_failure: OnFailure,
    /// What went wrong (error text, panic message, or an early return).
    pub reason: String,
}

impl Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "background task {}/{} died: {}",
            self.module, self.task, self.reason
        )
    }
}

/// Watches every background task of the process.
#[derive(Clone, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    failures: Mutex<Vec<TaskFailure>>,
    fatal: CancellationToken,
}

impl Supervisor {
    pub fn new() -> Self {
        describe();
        Self::default()
    }

    /// A spawner for `module`'s tasks, stopped by its own
    /// [`TaskSpawner::shutdown`].
    pub fn for_module(&self, module: &'static str) -> TaskSpawner {
        TaskSpawner {
            supervisor: self.clone(),
            module,
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Resolves with the first failure of an [`OnFailure::Exit`] task.
    pub async fn fatal(&self) -> TaskFailure {
        self.inner.fatal.cancelled().await;
        self.failures()
            .into_iter()
            .find(|f| f.on_failure == OnFailure::Exit)
            .unwrap_or_else(|| TaskFailure {
                module: "platform",
                task: "unknown",
                on_failure: OnFailure::Exit,
                reason: "a fatal task failure was signalled".to_string(),
            })
    }

    /// Every failure so far, oldest first.
    pub fn failures(&self) -> Vec<TaskFailure> {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fails while any task of one of `modules` (all, if empty) has died.
    pub fn readiness_check(&self, modules: &[&'static str]) -> Arc<dyn ReadinessCheck> {
        Arc::new(TasksAlive {
            supervisor: self.clone(),
            modules: modules.to_vec(),
        })
    }

    fn record(&self, failure: TaskFailure) {
        tracing::error!(
            module = failure.module,
            task = failure.task,
            on_failure = ?failure.on_failure,
            reason = %failure.reason,
            "background task died"
        );
        metrics::counter!(TASK_FAILURES, "module" => failure.module, "task" => failure.task)
            .increment(1);
        let fatal = failure.on_failure == OnFailure::Exit;
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(failure);
        if fatal {
            self.inner.fatal.cancel();
        }
    }
}

fn describe() {
    metrics::describe_counter!(
        TASK_FAILURES,
        "Background tasks that returned an error, panicked or ended before shutdown"
    );
}

/// Spawns and stops one module's background tasks.
#[derive(Clone)]
pub struct TaskSpawner {
    supervisor: Supervisor,
    module: &'static str,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl TaskSpawner {
    /// The module whose tasks these are.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Cancelled when the module is asked to stop; tasks select on it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` in the background under supervision. It should run
    /// until [`Self::stop_token`] is cancelled; returning earlier, with an
    /// error or by panicking counts as its death.
    pub fn spawn<F, E>(&self, task: &'static str, on_failure: OnFailure, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let supervisor = self.supervisor.clone();
        let module = self.module;
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            // Every poll's CPU goes to `reliable_cost_cpu_seconds_total`
            // under `route="task:<name>"` (cpu_cost).
            let measured = crate::cpu_cost::TaskCpu::new(future, module, task);
            let outcome = AssertUnwindSafe(measured).catch_unwind().await;
            let reason = match outcome {
                Ok(Ok(())) if stop.is_cancelled() => return,
                Ok(Ok(())) => "ended before shutdown".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            supervisor.record(TaskFailure {
                module,
                task,
                on_failure,
                reason,
            });
        });
    }

    /// Cancels the stop token and waits for every task of this module.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

struct TasksAlive {
    supervisor: Supervisor,
    modules: Vec<&'static str>,
}

impl ReadinessCheck for TasksAlive {
    fn name(&self) -> &str {
        "background-tasks"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let dead: Vec<String> = self
            .supervisor
            .failures()
            .into_iter()
            .filter(|f| self.modules.is_empty() || self.modules.contains(&f.module))
            .map(|f| format!("{}/{}", f.module, f.task))
            .collect();
        Box::pin(async move {
            if dead.is_empty() {
                Ok(())
            } else {
                Err(format!("dead: {}", dead.join(", ")))
            }
        })
    }
}

#[cfg(test)]
mod tests;
