//! Where the platform's own cost measurement is kept: 5-minute buckets
//! ([`cost::measured::Measured`]), 35 days, so `reliable up` restarted
//! still answers "what did last week cost".
//!
//! It lives where the platform keeps its other stores, through
//! `kit::storage`: its own SQLite file (`cost.db` in the data dir) or
//! schema `cost` on PostgreSQL when `database_url` is set (each replica
//! then adds its own measurement into the same buckets). One SQL text
//! serves both engines (`$n` parameters, times in Unix microseconds), as
//! the alert history does. Adding is an upsert that sums, so a tick that
//! lands in a bucket already written adds to it.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cost::measured::{Kind, Measured};
use cost::Window;
use kit::storage::time::to_micros;
use kit::storage::{Pool, PoolConfig, Schema, StoreError};
use sqlx::{PgPool, Row, SqlitePool};
use std::sync::Arc;

/// How long buckets are kept: a month's report and some margin.
pub const RETENTION: Duration = Duration::days(35);
/// The most rows one read returns (steps × series); beyond it the reader
/// is told to use a longer step.
pub const MAX_READ_ROWS: usize = 200_000;

static SCHEMA: Schema = Schema {
    module: "cost",
    sqlite: &kit::storage::migrate!("./migrations/cost/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/cost/postgres"),
    legacy_public_tables: &[],
};

/// `cost.db` in the data dir, or the shared PostgreSQL in `serve`.
pub fn url(config: &crate::settings::Config, embedded: bool) -> String {
    match (embedded, config.shared_database_url()) {
        (false, Some(url)) => url.to_string(),
        _ => format!("sqlite://{}", config.data_dir.join("cost.db").display()),
    }
}

/// Where measured buckets are kept.
#[async_trait]
pub trait CostStore: Send + Sync + 'static {
    /// Adds each row's amounts to its bucket's.
    async fn add(&self, rows: &[Measured]) -> Result<(), StoreError>;
    /// The rows of buckets starting in `window`, summed per `step` from
    /// its start (the whole window without one): each row's `bucket` is
    /// its step's start.
    async fn read(
        &self,
        window: &Window,
        step: Option<Duration>,
    ) -> Result<Vec<Measured>, StoreError>;
    /// Deletes buckets that start before `before`; how many rows went.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Opens the store `url` names (`sqlite:PATH` or `postgres://...`) and
/// migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn CostStore>, StoreError> {
    let config = PoolConfig::with_max_connections(2);
    Ok(match kit::storage::open(url, &config, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteCostStore { pool }),
        Pool::Postgres(pool) => Arc::new(PostgresCostStore { pool }),
    })
}

/// [`CostStore`] on SQLite.
pub struct SqliteCostStore {
    pool: SqlitePool,
}

/// [`CostStore`] on PostgreSQL.
pub struct PostgresCostStore {
    pool: PgPool,
}

const ADD: &str = "INSERT INTO cost_usage
    (bucket, kind, module, route, model, api_key,
     cpu_seconds, requests, byte_seconds, seconds, input_tokens, output_tokens)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (bucket, kind, module, route, model, api_key) DO UPDATE SET
     cpu_seconds = cost_usage.cpu_seconds + excluded.cpu_seconds,
     requests = cost_usage.requests + excluded.requests,
     byte_seconds = cost_usage.byte_seconds + excluded.byte_seconds,
     seconds = cost_usage.seconds + excluded.seconds,
     input_tokens = cost_usage.input_tokens + excluded.input_tokens,
     output_tokens = cost_usage.output_tokens + excluded.output_tokens";

const READ: &str = "SELECT (bucket - $1) / $2 AS step, kind, module, route, model, api_key,
     SUM(cpu_seconds) AS cpu_seconds, SUM(requests) AS requests,
     SUM(byte_seconds) AS byte_seconds, SUM(seconds) AS seconds,
     SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens
    FROM cost_usage WHERE bucket >= $3 AND bucket < $4
    GROUP BY step, kind, module, route, model, api_key
    LIMIT $5";

/// A step in microseconds (at least 1).
fn step_micros(step: Duration) -> i64 {
    step.num_microseconds().unwrap_or(i64::MAX).max(1)
}

macro_rules! cost_store {
    ($store:ty, $row:ty) => {
        impl $store {
            /// A summed row; its bucket is its step's start, computed from
            /// the window's (never rounded to the stored microseconds, so
            /// it stays within the window).
            fn measured(
                row: &$row,
                window: &Window,
                step: Duration,
            ) -> Result<Measured, StoreError> {
                let index: i64 = row.try_get("step")?;
                let kind_text: String = row.try_get("kind")?;
                let kind = Kind::parse(&kind_text)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown kind `{kind_text}`")))?;
                let bucket = i32::try_from(index)
                    .ok()
                    .and_then(|index| step.checked_mul(index))
                    .and_then(|offset| window.start.checked_add_signed(offset))
                    .ok_or_else(|| StoreError::Corrupt(format!("step {index} out of range")))?;
                Ok(Measured {
                    bucket,
                    kind,
                    module: row.try_get("module")?,
                    route: row.try_get("route")?,
                    model: row.try_get("model")?,
                    key: row.try_get("api_key")?,
                    cpu_seconds: row.try_get("cpu_seconds")?,
                    requests: row.try_get("requests")?,
                    byte_seconds: row.try_get("byte_seconds")?,
                    seconds: row.try_get("seconds")?,
                    input_tokens: row.try_get("input_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                })
            }
        }

        #[async_trait]
        impl CostStore for $store {
            async fn add(&self, rows: &[Measured]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for r in rows {
                    sqlx::query(ADD)
                        .bind(to_micros(r.bucket))
                        .bind(r.kind.as_str())
                        .bind(&r.module)
                        .bind(&r.route)
                        .bind(&r.model)
                        .bind(&r.key)
                        .bind(r.cpu_seconds)
                        .bind(r.requests)
                        .bind(r.byte_seconds)
                        .bind(r.seconds)
                        .bind(r.input_tokens)
                        .bind(r.output_tokens)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn read(
                &self,
                window: &Window,
                step: Option<Duration>,
            ) -> Result<Vec<Measured>, StoreError> {
                let start = to_micros(window.start);
                let step = step.unwrap_or(window.end - window.start);
                let rows = sqlx::query(READ)
                    .bind(start)
                    .bind(step_micros(step))
                    .bind(start)
                    .bind(to_micros(window.end))
                    .bind(i64::try_from(MAX_READ_ROWS + 1).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                if rows.len() > MAX_READ_ROWS {
                    return Err(StoreError::Corrupt(format!(
                        "more than {MAX_READ_ROWS} measured rows in the window: use a longer step"
                    )));
                }
                rows.iter()
                    .map(|row| Self::measured(row, window, step))
                    .collect()
            }

            async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM cost_usage WHERE bucket < $1")
                    .bind(to_micros(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

cost_store!(SqliteCostStore, sqlx::sqlite::SqliteRow);
cost_store!(PostgresCostStore, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, minute, 0)
            .single()
            .expect("time")
    }

    fn route(minute: u32, cpu: f64, requests: f64) -> Measured {
        Measured {
            module: "shortener".into(),
            route: "/{slug}".into(),
            cpu_seconds: cpu,
            requests,
            ..Measured::new(at(minute), Kind::Route)
        }
    }

    #[tokio::test]
    async fn on_sqlite_buckets_add_up_survive_a_reopen_sum_per_step_and_prune() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("cost.db").display());
        add_reopen_read_prune(&url).await;
    }

    #[tokio::test]
    async fn on_postgres_buckets_add_up_survive_a_reopen_sum_per_step_and_prune() {
        let url = testkit::postgres().create_database();
        add_reopen_read_prune(&url).await;
    }

    /// One suite for both engines.
    async fn add_reopen_read_prune(url: &str) {
        {
            let store = open(url).await.expect("open");
            store
                .add(&[route(0, 1.0, 10.0), route(5, 2.0, 20.0)])
                .await
                .expect("add");
            // The same bucket again: summed, not replaced.
            store.add(&[route(0, 0.5, 5.0)]).await.expect("add");
        }
        let store = open(url).await.expect("reopen");
        let window = Window {
            start: at(0),
            end: at(10),
        };
        let mut steps = store
            .read(&window, Some(Duration::minutes(5)))
            .await
            .expect("read");
        steps.sort_by_key(|r| r.bucket);
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].bucket, steps[0].cpu_seconds), (at(0), 1.5));
        assert_eq!((steps[1].bucket, steps[1].requests), (at(5), 20.0));
        let whole = store.read(&window, None).await.expect("read");
        assert_eq!(whole.len(), 1);
        assert_eq!((whole[0].bucket, whole[0].requests), (at(0), 35.0));
        assert_eq!(whole[0].route, "/{slug}");
        assert_eq!(store.prune(at(5)).await.expect("prune"), 1);
        let left = store.read(&window, None).await.expect("read");
        assert_eq!(left[0].requests, 20.0);
    }
}
