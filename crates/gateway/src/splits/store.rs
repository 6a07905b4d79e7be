//! Where runtime splits are kept: one row per route in `route_splits`, in
//! the gateway's database ([`crate::database`]). One SQL text serves both
//! engines (`$n` parameters, `ON CONFLICT ... DO UPDATE`, times as Unix
//! microseconds), as the key store's does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::time::{from_micros, to_micros};
use kit::storage::{Pool, StoreError};
use sqlx::{PgPool, Row, SqlitePool};
use std::sync::Arc;

/// A split as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSplit {
    /// The route's name.
    pub route: String,
    /// The route's pools when the split was set: a route since pointed
    /// at other pools ignores the row.
    pub baseline_pool: String,
    pub canary_pool: String,
    /// The canary's share in hundredths of a percent (0..=10000).
    pub basis_points: u32,
    pub updated_at: DateTime<Utc>,
    /// Who set it and why.
    pub updated_by: String,
}

/// The split store port.
#[async_trait]
pub trait SplitStore: Send + Sync + 'static {
    /// Inserts or replaces the row of `split.route`.
    async fn save(&self, split: &StoredSplit) -> Result<(), StoreError>;
    /// Every stored split.
    async fn load(&self) -> Result<Vec<StoredSplit>, StoreError>;
}

/// The store on the gateway's open database.
pub fn on(pool: Pool) -> Arc<dyn SplitStore> {
    match pool {
        Pool::Sqlite(pool) => Arc::new(SqliteSplitStore { pool }),
        Pool::Postgres(pool) => Arc::new(PostgresSplitStore { pool }),
    }
}

struct SqliteSplitStore {
    pool: SqlitePool,
}

struct PostgresSplitStore {
    pool: PgPool,
}

const SAVE: &str = "INSERT INTO route_splits
        (route, baseline_pool, canary_pool, basis_points, updated_at, updated_by)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (route) DO UPDATE SET
        baseline_pool = excluded.baseline_pool,
        canary_pool = excluded.canary_pool,
        basis_points = excluded.basis_points,
        updated_at = excluded.updated_at,
        updated_by = excluded.updated_by";

const LOAD: &str = "SELECT route, baseline_pool, canary_pool, basis_points, updated_at, updated_by
    FROM route_splits ORDER BY route";

macro_rules! split_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn stored(row: &$row) -> Result<StoredSplit, StoreError> {
                let route: String = row.try_get("route")?;
                let points: i64 = row.try_get("basis_points")?;
                let basis_points = u32::try_from(points)
                    .ok()
                    .filter(|p| *p <= 10_000)
                    .ok_or_else(|| StoreError::Corrupt(format!("split of route `{route}`")))?;
                Ok(StoredSplit {
                    baseline_pool: row.try_get("baseline_pool")?,
                    canary_pool: row.try_get("canary_pool")?,
                    basis_points,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                    updated_by: row.try_get("updated_by")?,
                    route,
                })
            }
        }

        #[async_trait]
        impl SplitStore for $store {
            async fn save(&self, split: &StoredSplit) -> Result<(), StoreError> {
                sqlx::query(SAVE)
                    .bind(&split.route)
                    .bind(&split.baseline_pool)
                    .bind(&split.canary_pool)
                    .bind(i64::from(split.basis_points))
                    .bind(to_micros(split.updated_at))
                    .bind(&split.updated_by)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn load(&self) -> Result<Vec<StoredSplit>, StoreError> {
                sqlx::query(LOAD)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::stored)
                    .collect()
            }
        }
    };
}

split_store!(SqliteSplitStore, sqlx::sqlite::SqliteRow);
split_store!(PostgresSplitStore, sqlx::postgres::PgRow);
