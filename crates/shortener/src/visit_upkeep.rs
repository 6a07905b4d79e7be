//! Upkeep of the visits table: day partitions ahead of the clock, and
//! retention (`shortener.visit_retention`).
//!
//! The store does the work ([`LinkStore::maintain_visits`]); this module
//! decides when, from the module's clock so tests move time instead of
//! waiting: once at start, then every [`INTERVAL`]. Partitions exist a
//! week ahead, so days of failed rounds (database down) still send no
//! visit to the default partition; a round that fails is logged, counted
//! and tried again after [`RETRY`].

use crate::storage::{LinkStore, StoreError, VisitMaintenance};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use std::sync::Arc;
use std::time::Duration;

/// Time between two rounds.
const INTERVAL: Duration = Duration::from_secs(3600);
/// Time before a failed round is tried again.
const RETRY: Duration = Duration::from_secs(60);

pub(crate) struct VisitUpkeep {
    store: Arc<dyn LinkStore>,
    clock: Arc<dyn Clock>,
    retention: Option<Duration>,
}

impl VisitUpkeep {
    pub fn new(
        store: Arc<dyn LinkStore>,
        clock: Arc<dyn Clock>,
        retention: Option<Duration>,
    ) -> Self {
        Self {
            store,
            clock,
            retention,
        }
    }

    /// One round at the clock's current time.
    pub async fn run_once(&self) -> Result<VisitMaintenance, StoreError> {
        let now = self.clock.now();
        let done = self.store.maintain_visits(now, self.retention).await;
        match &done {
            Ok(report) => {
                metrics::counter!("shortener_visit_partitions_created_total")
                    .increment(report.created.len() as u64);
                metrics::counter!("shortener_visit_partitions_dropped_total")
                    .increment(report.dropped.len() as u64);
                metrics::counter!("shortener_visits_expired_total").increment(report.deleted);
                if report != &VisitMaintenance::default() {
                    tracing::info!(
                        created = ?report.created,
                        dropped = ?report.dropped,
                        deleted = report.deleted,
                        "visit partitions maintained"
                    );
                }
            }
            Err(e) => {
                metrics::counter!("shortener_visit_maintenance_errors_total").increment(1);
                tracing::warn!(
                    error = e as &dyn std::error::Error,
                    "visit maintenance failed; retrying"
                );
            }
        }
        done
    }

    /// Runs rounds on `tasks` until the module stops.
    pub fn spawn(self: Arc<Self>, tasks: &TaskSpawner) {
        let stop = tasks.stop_token();
        // A failed round is retried inside the loop; the task itself only
        // ends at shutdown.
        tasks.spawn("visit-maintenance", OnFailure::Unready, async move {
            loop {
                let wait = match self.run_once().await {
                    Ok(_) => INTERVAL,
                    Err(_) => RETRY,
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return Ok::<(), std::convert::Infallible>(()),
                }
            }
        });
    }
}
