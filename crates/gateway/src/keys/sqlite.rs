//! SQLite adapter of [`KeyStore`]: `reliable up` (its own file,
//! `gateway.db`, so the gateway's migrations never meet another
//! module's). Times are Unix milliseconds.

use super::{
    insert_error, ApiKey, KeyHash, KeyName, KeyStore, KeyStoreError, NewKey, RawKey, StoredKey,
};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteKeyStore {
    pool: SqlitePool,
}

const COLUMNS: &str = "id, name, display_prefix, scopes, rate, created_at, revoked_at";

fn from_ms(ms: i64) -> Result<DateTime<Utc>, KeyStoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| KeyStoreError::Corrupt(format!("timestamp {ms}")))
}

fn stored(row: &SqliteRow) -> Result<StoredKey, KeyStoreError> {
    RawKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("display_prefix")?,
        scopes: row.try_get("scopes")?,
        rate: row.try_get("rate")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_ms)
            .transpose()?,
    }
    .try_into()
}

impl SqliteKeyStore {
    /// Opens (creating if missing) `url` (`sqlite:PATH`) and migrates.
    pub async fn connect(url: &str) -> Result<Self, KeyStoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, KeyStoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (name, key_hash, display_prefix, scopes, rate, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        ))
        .bind(new.name.as_str())
        .bind(key.hash().as_str())
        .bind(key.display_prefix())
        .bind(new.scopes.to_stored())
        .bind(new.rate.map(|q| q.to_string()))
        .bind(now.timestamp_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| insert_error(e, &new.name))?;
        stored(&row)
    }

    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, KeyStoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?"
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
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
                .bind(now.timestamp_millis())
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
