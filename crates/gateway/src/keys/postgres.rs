//! PostgreSQL adapter of [`KeyStore`]: `reliable serve`. The gateway's
//! tables (and its own `_sqlx_migrations`) live in a `gateway` schema, so
//! it can share one database with other modules without their migration
//! histories colliding.

use super::{
    insert_error, is_unique_violation, ApiKey, KeyHash, KeyName, KeyStore, KeyStoreError, NewKey,
    RawKey, StoredKey,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresKeyStore {
    pool: PgPool,
}

const COLUMNS: &str = "id, name, display_prefix, scopes, rate, created_at, revoked_at";

fn stored(row: &PgRow) -> Result<StoredKey, KeyStoreError> {
    RawKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("display_prefix")?,
        scopes: row.try_get("scopes")?,
        rate: row.try_get("rate")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    }
    .try_into()
}

impl PostgresKeyStore {
    /// Connects to `url`, creates the `gateway` schema if needed, migrates.
    pub async fn connect(url: &str) -> Result<Self, KeyStoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("reliable-gateway");
        let mut first = sqlx::PgConnection::connect_with(&options).await?;
        sqlx::query("CREATE SCHEMA IF NOT EXISTS gateway")
            .execute(&mut first)
            .await
            .or_else(|e| {
                // Two replicas racing to create it: the loser's error is fine.
                if is_unique_violation(&e) {
                    Ok(Default::default())
                } else {
                    Err(e)
                }
            })?;
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.options([("search_path", "gateway")]))
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl KeyStore for PostgresKeyStore {
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, KeyStoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (name, key_hash, display_prefix, scopes, rate, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(new.name.as_str())
        .bind(key.hash().as_str())
        .bind(key.display_prefix())
        .bind(new.scopes.to_stored())
        .bind(new.rate.map(|q| q.to_string()))
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| insert_error(e, &new.name))?;
        stored(&row)
    }

    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, KeyStoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(stored)
        .transpose()
    }

    async fn list(&self) -> Result<Vec<StoredKey>, KeyStoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(stored)
            .collect()
    }

    async fn revoke(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, KeyStoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), KeyStoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
