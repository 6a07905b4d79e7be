//! Storage mechanics every module shares, so its adapters keep only their
//! SQL.
//!
//! - [`PoolConfig`]: the `[<module>.database]` config section (pool size,
//!   waits), validated with the module's config;
//! - [`open_sqlite`] / [`open_postgres`] (or [`open`] for either, from the
//!   URL): the pool, the module's own schema (PostgreSQL) or file (SQLite),
//!   its migrations, safe under concurrent replica start (see `open.rs`);
//! - [`StoreError`]: the one storage error, with
//!   [`is_unavailable`](StoreError::is_unavailable) and the one mapping to
//!   problem+json ([`StoreError::to_problem`]);
//! - [`DatabaseReady`]: the one readiness check, `<module>-database`;
//! - [`time`]: the one representation of stored times (Unix microseconds);
//! - [`ReadReplica`]: an optional read replica with its lag measured and
//!   bounded (`replica.rs`).
//!
//! Why here: each module once had its own error enum, pool opening with
//! hard-coded sizes, `CREATE SCHEMA` race handling and time format, and
//! they had drifted apart within weeks.

mod config;
mod error;
mod lag;
mod open;
mod replica;
pub mod time;

pub use config::PoolConfig;
pub use error::{is_unique_violation, StoreError};
pub use open::{open_postgres, open_sqlite, Backend, Schema};
pub use replica::{DatabaseReadUrl, Fallback, ReadReplica, ReplicaRole, ReplicaSettings, Route};
/// `migrate!("./migrations/sqlite")`: the migrations in that directory
/// (relative to the calling crate), embedded at build time, for a
/// [`Schema`]. sqlx's own macro, taken from sqlx-macros directly: sqlx's
/// `macros` feature would also build both database drivers for the
/// compiler.
pub use sqlx_macros::migrate;

use crate::health::ReadinessCheck;
use sqlx::{PgPool, SqlitePool};
use std::future::Future;
use std::pin::Pin;

/// A module's open connection pool, whichever engine is behind it.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// A cheap round trip: is the database reachable?
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes every connection (tests: a database going away).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl From<SqlitePool> for Pool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

impl From<PgPool> for Pool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

/// Opens the database `url` names (`sqlite:PATH` or `postgres://...`) for
/// `schema`'s module; see [`open_sqlite`] and [`open_postgres`].
pub async fn open(url: &str, config: &PoolConfig, schema: &Schema) -> Result<Pool, StoreError> {
    Ok(match Backend::of(url)? {
        Backend::Sqlite => Pool::Sqlite(open_sqlite(url, config, schema).await?),
        Backend::Postgres => Pool::Postgres(open_postgres(url, config, schema).await?),
    })
}

/// Readiness of a module's database: ready while a `SELECT 1` answers.
pub struct DatabaseReady {
    name: String,
    pool: Pool,
}

impl DatabaseReady {
    /// The check `<module>-database` on `pool`.
    pub fn new(module: &str, pool: Pool) -> Self {
        Self {
            name: format!("{module}-database"),
            pool,
        }
    }
}

impl ReadinessCheck for DatabaseReady {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.pool.ping().await.map_err(|e| e.to_string()) })
    }
}
