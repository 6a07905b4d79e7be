//! Runs and decisions, persisted in the canary module's database
//! (SQLite in `reliable up`, its own schema in PostgreSQL in `serve`).
//!
//! The guarantees kept here:
//! - at most one unfinished run per target, whichever controller replica
//!   starts it: a unique index on `active_target`, cleared when the run
//!   finishes, so the second start fails on the insert itself;
//! - a run's state and the decision that changed it are written in one
//!   transaction, so a restarted controller reads a state that matches
//!   the last decision it recorded.
//!
//! The tables are tiny (a state document per run, one row per look), so
//! one SQL text serves both engines; only the placeholder style differs
//! (`$1` for PostgreSQL, `?1` for SQLite).

use crate::controller::{Decision, RunState};
use chrono::Utc;
use kit::storage::time::to_micros;
use kit::storage::{Pool, PoolConfig, Schema, StoreError};
use sqlx::Row;

/// The canary runs' tables (schema `canary` on PostgreSQL, `canary.db`
/// on SQLite) and their migrations.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// Finished runs kept (with their decisions); older ones are pruned.
const FINISHED_RUNS_KEPT: i64 = 200;

/// The canary module's storage.
#[derive(Clone)]
pub struct RunStore {
    pool: Pool,
}

fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

fn micros(at: std::time::SystemTime) -> i64 {
    to_micros(at.into())
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stored run: its state and the spec text it runs.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub state: RunState,
    pub spec: String,
}

impl RunStore {
    /// Opens (and migrates) the store at `url`.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self {
            pool: kit::storage::open(url, config, &SCHEMA).await?,
        })
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Records a new run; [`StoreError::Conflict`] when another unfinished
    /// run holds its target.
    pub async fn insert(&self, state: &RunState, spec: &str) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO canary_runs (id, target, active_target, name, spec, phase, state, started_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let document = serde_json::to_string(state).map_err(corrupt)?;
        let active = (!state.phase.is_finished()).then(|| state.target.clone());
        let now = to_micros(Utc::now());
        let what = || format!("an unfinished canary on {}", state.target);
        macro_rules! bound {
            ($q:expr) => {
                $q.bind(&state.id)
                    .bind(&state.target)
                    .bind(&active)
                    .bind(&state.name)
                    .bind(spec)
                    .bind(state.phase.as_str())
                    .bind(&document)
                    .bind(micros(state.started_at))
                    .bind(now)
            };
        }
        let result = match &self.pool {
            Pool::Sqlite(p) => bound!(sqlx::query(&sqlite(SQL)))
                .execute(p)
                .await
                .map(|_| ()),
            Pool::Postgres(p) => bound!(sqlx::query(SQL)).execute(p).await.map(|_| ()),
        };
        result.map_err(|e| StoreError::conflict_if_unique(e, what))
    }

    /// Saves `state` and, in the same transaction, the decision that
    /// produced it (its sequence number is the run's look count).
    pub async fn save(
        &self,
        state: &RunState,
        decision: Option<&Decision>,
    ) -> Result<(), StoreError> {
        const UPDATE: &str = "UPDATE canary_runs SET phase = $1, state = $2, active_target = $3, updated_at = $4 WHERE id = $5";
        const DECIDED: &str = "INSERT INTO canary_decisions (run_id, seq, at, decision) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, seq) DO NOTHING";
        let document = serde_json::to_string(state).map_err(corrupt)?;
        let active = (!state.phase.is_finished()).then(|| state.target.clone());
        let now = to_micros(Utc::now());
        let decided = decision
            .map(|d| serde_json::to_string(d).map(|text| (micros(d.at), text)))
            .transpose()
            .map_err(corrupt)?;
        let seq = state.looks as i64;
        macro_rules! save_in {
            ($pool:expr, $update:expr, $insert:expr) => {{
                let mut tx = $pool.begin().await?;
                sqlx::query($update)
                    .bind(state.phase.as_str())
                    .bind(&document)
                    .bind(&active)
                    .bind(now)
                    .bind(&state.id)
                    .execute(&mut *tx)
                    .await?;
                if let Some((at, text)) = &decided {
                    sqlx::query($insert)
                        .bind(&state.id)
                        .bind(seq)
                        .bind(*at)
                        .bind(text)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }};
        }
        match &self.pool {
            Pool::Sqlite(p) => save_in!(p, &sqlite(UPDATE), &sqlite(DECIDED)),
            Pool::Postgres(p) => save_in!(p, UPDATE, DECIDED),
        }
        if state.phase.is_finished() {
            self.prune().await?;
        }
        Ok(())
    }

    /// Runs with the given phase filter: `unfinished` only, or all, newest
    /// first, at most `limit`.
    pub async fn list(&self, unfinished: bool, limit: i64) -> Result<Vec<StoredRun>, StoreError> {
        let sql = if unfinished {
            "SELECT state, spec FROM canary_runs WHERE active_target IS NOT NULL ORDER BY started_at DESC LIMIT $1"
        } else {
            "SELECT state, spec FROM canary_runs ORDER BY started_at DESC LIMIT $1"
        };
        let rows: Vec<(String, String)> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(&sqlite(sql))
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?,
            Pool::Postgres(p) => sqlx::query(sql)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?,
        };
        rows.into_iter()
            .map(|(state, spec)| {
                Ok(StoredRun {
                    state: serde_json::from_str(&state).map_err(corrupt)?,
                    spec,
                })
            })
            .collect()
    }

    /// One run by id.
    pub async fn get(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        const SQL: &str = "SELECT state, spec FROM canary_runs WHERE id = $1";
        let row: Option<(String, String)> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(&sqlite(SQL))
                .bind(id)
                .fetch_optional(p)
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
                .transpose()?,
            Pool::Postgres(p) => sqlx::query(SQL)
                .bind(id)
                .fetch_optional(p)
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
                .transpose()?,
        };
        row.map(|(state, spec)| {
            Ok(StoredRun {
                state: serde_json::from_str(&state).map_err(corrupt)?,
                spec,
            })
        })
        .transpose()
    }

    /// A run's decisions with a sequence number above `after`, oldest
    /// first, at most `limit`.
    pub async fn decisions(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Decision)>, StoreError> {
        const SQL: &str = "SELECT seq, decision FROM canary_decisions WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        let rows: Vec<(i64, String)> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(&sqlite(SQL))
                .bind(id)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?,
            Pool::Postgres(p) => sqlx::query(SQL)
                .bind(id)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?,
        };
        rows.into_iter()
            .map(|(seq, text)| Ok((seq, serde_json::from_str(&text).map_err(corrupt)?)))
            .collect()
    }

    /// Whether a run (finished or not) was started from exactly `spec`.
    pub async fn has_spec(&self, spec: &str) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM canary_runs WHERE spec = $1";
        let count: i64 = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(&sqlite(SQL))
                    .bind(spec)
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(p) => sqlx::query_scalar(SQL).bind(spec).fetch_one(p).await?,
        };
        Ok(count > 0)
    }

    /// Drops the oldest finished runs beyond the ones kept.
    async fn prune(&self) -> Result<(), StoreError> {
        const RUNS: &str = "DELETE FROM canary_runs WHERE active_target IS NULL AND id NOT IN (SELECT id FROM canary_runs WHERE active_target IS NULL ORDER BY started_at DESC LIMIT $1)";
        const ORPHANS: &str =
            "DELETE FROM canary_decisions WHERE run_id NOT IN (SELECT id FROM canary_runs)";
        match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query(&sqlite(RUNS))
                    .bind(FINISHED_RUNS_KEPT)
                    .execute(p)
                    .await?;
                sqlx::query(ORPHANS).execute(p).await?;
            }
            Pool::Postgres(p) => {
                sqlx::query(RUNS)
                    .bind(FINISHED_RUNS_KEPT)
                    .execute(p)
                    .await?;
                sqlx::query(ORPHANS).execute(p).await?;
            }
        }
        Ok(())
    }
}
