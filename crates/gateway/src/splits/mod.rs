//! Canary splits changed at runtime: the canary's share of each route
//! with a `canary_pool`, what [`kit::traffic::TrafficSplits`] and the
//! admin API (`PUT /admin/v1/routes/{name}/split`) change.
//!
//! The request path reads a route's share with one relaxed atomic load
//! (hundredths of a percent in an `AtomicU32` the route holds): no lock,
//! no allocation per request. Everything else here runs per change, not
//! per request.
//!
//! What holds:
//! - a change is written to the database first and applied in memory only
//!   once it is stored, so no replica serves a share the others cannot
//!   read back; with the database down nothing changes (503);
//! - every replica reads the table back every `gateway.split_refresh` and
//!   applies what another replica wrote, so a scaled-out gateway
//!   converges within that time;
//! - at start the stored shares win over `canary_percent`, so a restart in
//!   the middle of a canary keeps the canary's share; a stored share set
//!   for other pools than the route now has is stale and ignored (the
//!   route was reconfigured, e.g. promoted);
//! - without a database, shares live in memory and a restart goes back
//!   to the config.
//!
//! Each change is logged (route, old and new share, who), recorded on the
//! platform's change timeline (`split_changed`, [`Splits::record_changes`]) and counted in
//! `gateway_split_changes_total{gateway_route}` by the replica that made
//! it; `gateway_canary_weight_percent{gateway_route}` is each replica's
//! share in force.

mod store;

pub use store::{on, SplitStore, StoredSplit};

use crate::routes::Route;
use kit::changes::{ChangeEvent, ChangeKind, ChangeRecorder};
use kit::storage::StoreError;
use kit::traffic::{basis_points, SplitError, SplitState};
use kit::Clock;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A share of 100%, in the hundredths of a percent the routes hold.
pub const FULL_SHARE: u32 = 10_000;

pub const SPLIT_CHANGES_TOTAL: &str = "gateway_split_changes_total";
pub const CANARY_WEIGHT_PERCENT: &str = "gateway_canary_weight_percent";

/// Who changed a split last, and when.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    at: chrono::DateTime<chrono::Utc>,
    by: String,
}

/// One route's split.
struct Cell {
    route: &'static str,
    baseline: &'static str,
    canary: &'static str,
    /// Shared with the route: what the request path reads.
    share: Arc<AtomicU32>,
    change: Mutex<Option<Change>>,
    /// A stale stored row was reported once already.
    warned_stale: AtomicBool,
}

impl Cell {
    fn state(&self) -> SplitState {
        let change = self
            .change
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        SplitState {
            name: self.route.to_string(),
            baseline: self.baseline.to_string(),
            canary: self.canary.to_string(),
            percent: percent(self.share.load(Ordering::Relaxed)),
            updated_at: change.as_ref().map(|c| c.at),
            updated_by: change.map(|c| c.by),
        }
    }

    /// Puts `points` in force; returns the share it replaced.
    fn apply(&self, points: u32, change: Change) -> u32 {
        let old = self.share.swap(points, Ordering::Relaxed);
        *self.change.lock().unwrap_or_else(|e| e.into_inner()) = Some(change);
        metrics::gauge!(CANARY_WEIGHT_PERCENT, "gateway_route" => self.route).set(percent(points));
        old
    }
}

fn percent(points: u32) -> f64 {
    f64::from(points) / 100.0
}

/// The splits of every route with a canary pool.
pub(crate) struct Splits {
    cells: Vec<Cell>,
    /// Routes without a canary pool (a change to one is a 409, not a 404).
    plain: BTreeSet<&'static str>,
    store: Option<Arc<dyn SplitStore>>,
    clock: Arc<dyn Clock>,
    /// One change or refresh at a time in this process, so a refresh that
    /// read the table before a change was stored cannot undo it here.
    writing: tokio::sync::Mutex<()>,
    /// Where changes made by this replica are recorded (the platform's
    /// change timeline; none until the module is wired).
    changes: RwLock<ChangeRecorder>,
}

impl Splits {
    pub(crate) fn new(
        routes: &[Route],
        store: Option<Arc<dyn SplitStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut cells: Vec<Cell> = Vec::new();
        let mut plain = BTreeSet::new();
        for route in routes {
            match route.split() {
                Some((baseline, canary, share)) => {
                    let points = share.load(Ordering::Relaxed);
                    metrics::gauge!(CANARY_WEIGHT_PERCENT, "gateway_route" => route.name)
                        .set(percent(points));
                    cells.push(Cell {
                        route: route.name,
                        baseline,
                        canary,
                        share,
                        change: Mutex::new(None),
                        warned_stale: AtomicBool::new(false),
                    });
                }
                None => {
                    plain.insert(route.name);
                }
            }
        }
        cells.sort_by_key(|c| c.route);
        Self {
            cells,
            plain,
            store,
            clock,
            writing: tokio::sync::Mutex::new(()),
            changes: RwLock::new(ChangeRecorder::discard()),
        }
    }

    /// Records this replica's changes to `recorder` from now on (changes
    /// another replica made and this one only applies are that one's).
    pub(crate) fn record_changes(&self, recorder: ChangeRecorder) {
        *self.changes.write().unwrap_or_else(|e| e.into_inner()) = recorder;
    }

    fn cell(&self, name: &str) -> Result<&Cell, SplitError> {
        match self.cells.iter().find(|c| c.route == name) {
            Some(cell) => Ok(cell),
            None if self.plain.contains(name) => Err(SplitError::NoCanary(name.to_string())),
            None => Err(SplitError::UnknownName(name.to_string())),
        }
    }

    pub(crate) fn list(&self) -> Vec<SplitState> {
        self.cells.iter().map(Cell::state).collect()
    }

    pub(crate) fn get(&self, name: &str) -> Result<SplitState, SplitError> {
        self.cell(name).map(Cell::state)
    }

    /// Stores, then applies, the canary's share of route `name`. `actor`
    /// is who asked (`key:<name>`, `canary:<name>`), `by` that and why.
    pub(crate) async fn set(
        &self,
        name: &str,
        percent: f64,
        actor: &str,
        by: &str,
    ) -> Result<SplitState, SplitError> {
        let cell = self.cell(name)?;
        let points = basis_points(percent)?;
        let _writing = self.writing.lock().await;
        let change = Change {
            at: kit::storage::time::truncate(self.clock.now()),
            by: by.to_string(),
        };
        if let Some(store) = &self.store {
            let row = StoredSplit {
                route: cell.route.to_string(),
                baseline_pool: cell.baseline.to_string(),
                canary_pool: cell.canary.to_string(),
                basis_points: points,
                updated_at: change.at,
                updated_by: change.by.clone(),
            };
            store.save(&row).await.map_err(|e| unavailable(&e))?;
        }
        let at = change.at;
        let old = cell.apply(points, change);
        if old == points {
            tracing::debug!(
                gateway_route = cell.route,
                percent = self::percent(points),
                by,
                "canary split set again"
            );
        } else {
            tracing::info!(
                gateway_route = cell.route,
                from = self::percent(old),
                to = self::percent(points),
                by,
                "canary split changed"
            );
            metrics::counter!(SPLIT_CHANGES_TOTAL, "gateway_route" => cell.route).increment(1);
            let recorder = self
                .changes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            recorder.record(ChangeEvent::new(
                at,
                ChangeKind::SplitChanged,
                crate::SERVICE,
                actor,
                cell.route,
                format!(
                    "canary share {}% -> {}% ({} over {}); {by}",
                    self::percent(old),
                    self::percent(points),
                    cell.canary,
                    cell.baseline
                ),
            ));
        }
        Ok(cell.state())
    }

    /// Reads the stored splits and applies those that differ from what is
    /// in force; returns how many routes changed share. A stored split of
    /// an unknown route, or set for other pools, is ignored.
    pub(crate) async fn refresh(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let _writing = self.writing.lock().await;
        let rows = store.load().await?;
        let mut changed = 0;
        for row in rows {
            let Some(cell) = self.cells.iter().find(|c| c.route == row.route) else {
                tracing::debug!(gateway_route = %row.route, "stored split of a route without a canary pool ignored");
                continue;
            };
            if row.baseline_pool != cell.baseline || row.canary_pool != cell.canary {
                if !cell.warned_stale.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        gateway_route = cell.route,
                        stored = %format!("{} -> {}", row.baseline_pool, row.canary_pool),
                        configured = %format!("{} -> {}", cell.baseline, cell.canary),
                        "stored canary split was set for other pools; the configured share holds"
                    );
                }
                continue;
            }
            let change = Change {
                at: row.updated_at,
                by: row.updated_by,
            };
            let current = cell
                .change
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if cell.share.load(Ordering::Relaxed) == row.basis_points
                && current.as_ref() == Some(&change)
            {
                continue;
            }
            let by = change.by.clone();
            let old = cell.apply(row.basis_points, change);
            if old != row.basis_points {
                changed += 1;
                tracing::info!(
                    gateway_route = cell.route,
                    from = percent(old),
                    to = percent(row.basis_points),
                    by = %by,
                    "canary split applied from the database"
                );
            }
        }
        Ok(changed)
    }
}

fn unavailable(e: &StoreError) -> SplitError {
    tracing::error!(
        error = e as &dyn std::error::Error,
        "storing a canary split failed"
    );
    SplitError::Unavailable(e.to_string())
}
