//! The SQL of the key store, written once for both engines: SQLite backs
//! `reliable up` (its own file, `gateway.db`), PostgreSQL `reliable serve`
//! (schema `gateway`). Both accept `$n` parameters and `RETURNING`, and
//! times are Unix microseconds on both (`kit::storage::time`), so one
//! macro implements [`KeyStore`] for each pool type. Opening, migrating and
//! the schema live in `kit::storage`.

use super::{ApiKey, KeyHash, KeyName, KeyStore, NewKey, RawKey, StoredKey, SCHEMA};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::time::to_micros;
use kit::storage::{Pool, PoolConfig, StoreError};
use sqlx::{PgPool, Row, SqlitePool};

const COLUMNS: &str = "id, name, display_prefix, scopes, rate, created_at, revoked_at";

/// [`KeyStore`] on SQLite.
pub struct SqliteKeyStore {
    pool: SqlitePool,
}

/// [`KeyStore`] on PostgreSQL.
pub struct PostgresKeyStore {
    pool: PgPool,
}

impl SqliteKeyStore {
    /// Opens (creating if missing) `url` (`sqlite:PATH`) and migrates.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_sqlite(url, config, &SCHEMA).await?,
        ))
    }

    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

impl PostgresKeyStore {
    /// Connects to `url`, prepares schema `gateway` and migrates.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_postgres(url, config, &SCHEMA).await?,
        ))
    }

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// An insert's error: a taken name (the only unique column a caller
/// chooses; hashes of 256-bit keys do not collide) or the database's.
fn insert_error(e: sqlx::Error, name: &KeyName) -> StoreError {
    StoreError::conflict_if_unique(e, || format!("a key named `{}`", name.as_str()))
}

macro_rules! key_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn stored(row: &$row) -> Result<StoredKey, StoreError> {
                RawKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    display_prefix: row.try_get("display_prefix")?,
                    scopes: row.try_get("scopes")?,
                    rate: row.try_get("rate")?,
                    created_us: row.try_get("created_at")?,
                    revoked_us: row.try_get("revoked_at")?,
                }
                .try_into()
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn create(
                &self,
                key: &ApiKey,
                new: &NewKey,
                now: DateTime<Utc>,
            ) -> Result<StoredKey, StoreError> {
                let row = sqlx::query(&format!(
                    "INSERT INTO api_keys (name, key_hash, display_prefix, scopes, rate, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
                ))
                .bind(new.name.as_str())
                .bind(key.hash().hex())
                .bind(key.display_prefix())
                .bind(new.scopes.to_stored())
                .bind(new.rate.map(|q| q.to_string()))
                .bind(to_micros(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| insert_error(e, &new.name))?;
                Self::stored(&row)
            }

            async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, StoreError> {
                sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"))
                    .bind(hash.hex())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::stored)
                    .transpose()
            }

            async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
                sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::stored)
                    .collect()
            }

            async fn revoke(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                )
                .bind(to_micros(now))
                .bind(name.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            fn pool(&self) -> Pool {
                self.pool.clone().into()
            }
        }
    };
}

key_store!(SqliteKeyStore, sqlx::sqlite::SqliteRow);
key_store!(PostgresKeyStore, sqlx::postgres::PgRow);
