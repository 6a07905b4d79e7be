//! Work done on the process's own `/metrics` text at a steady tick: the
//! live SLO evaluator, the console's traffic sampler and the cost meter.
//! One loop for the three, so each says only what its tick does.
//!
//! Why the exposition text: it is what Prometheus would scrape, so what
//! the platform judges, shows and prices is what a dashboard would see.

use kit::tasks::{OnFailure, TaskSpawner};
use std::future::Future;
use std::time::Duration;

/// Runs `tick` on the rendered metrics every `every` on a supervised
/// task named `task`, until the platform stops. A late tick is delayed,
/// not bunched. The task never ends on its own; if it dies, readiness
/// fails so someone looks (each caller's page or figures would freeze).
pub fn spawn<F, Fut>(tasks: &TaskSpawner, task: &'static str, every: Duration, mut tick: F)
where
    F: FnMut(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = tasks.stop_token();
    tasks.spawn(task, OnFailure::Unready, async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok::<(), std::convert::Infallible>(()),
                _ = interval.tick() => tick(kit::metrics::render()).await,
            }
        }
    });
}
