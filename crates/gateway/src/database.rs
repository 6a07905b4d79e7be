//! The gateway's one database: API keys ([`crate::keys`]) and the canary
//! splits changed at runtime ([`crate::splits`]). Schema `gateway` on
//! PostgreSQL, its own file (`gateway.db`) on SQLite; one migration
//! sequence for both tables, so the module opens one pool and both stores
//! share it.

use kit::storage::{Pool, PoolConfig, Schema, StoreError};

/// The gateway's tables (API keys, route splits): schema `gateway` on
/// PostgreSQL, `gateway.db` on SQLite.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// Opens the database `url` names (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies the gateway's migrations.
pub async fn open(url: &str, pool: &PoolConfig) -> Result<Pool, StoreError> {
    kit::storage::open(url, pool, &SCHEMA).await
}
