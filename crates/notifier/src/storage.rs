//! The notifier's storage port: processed events and the dead-letter store.
//!
//! Both adapters run the same SQL (both engines accept `$n` parameters,
//! `ON CONFLICT DO NOTHING` and `RETURNING`), so one macro implements the
//! port for each pool type; `tests/conformance.rs` runs against both.

use async_trait::async_trait;
use bus::Event;
use chrono::{DateTime, Utc};
use kit::storage::time::{from_micros, to_micros};
use kit::storage::{Pool, PoolConfig, Schema};
use std::sync::Arc;

pub use kit::storage::StoreError;

/// The notifier's tables (schema `notifier` on PostgreSQL, `notifier.db`
/// on SQLite) and their migrations.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// An event whose notifications failed for good, kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub event: Event,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at: DateTime<Utc>,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// True if the event's notifications are done (delivered or dead).
    async fn is_processed(&self, event_id: &str) -> Result<bool, StoreError>;
    /// Records the event as done; a second call is a no-op.
    async fn mark_processed(&self, event_id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Stores a dead letter and marks the event done, in one transaction.
    async fn dead_letter(
        &self,
        event: &Event,
        attempts: u32,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Dead letters with id above `after`, oldest first.
    async fn list_dead(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
    async fn find_dead(&self, id: i64) -> Result<Option<DeadLetter>, StoreError>;
    /// Removes a dead letter whose replay was delivered.
    async fn resolve_dead(&self, id: i64) -> Result<bool, StoreError>;
    /// Counts a failed replay.
    async fn replay_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn dead_count(&self) -> Result<i64, StoreError>;
    /// The pool, for readiness ([`kit::storage::DatabaseReady`]).
    fn pool(&self) -> Pool;
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies its migrations.
pub async fn connect(
    url: &str,
    pool: &PoolConfig,
) -> Result<Arc<dyn NotificationStore>, StoreError> {
    Ok(match kit::storage::open(url, pool, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteNotificationStore(pool)),
        Pool::Postgres(pool) => Arc::new(PostgresNotificationStore(pool)),
    })
}

pub struct SqliteNotificationStore(sqlx::SqlitePool);
pub struct PostgresNotificationStore(sqlx::PgPool);

const DEAD_COLUMNS: &str =
    "id, event_id, subject, order_id, payload, traceparent, occurred_us, attempts, last_error, failed_us";

fn payload_text(event: &Event) -> String {
    String::from_utf8_lossy(&event.payload).into_owned()
}

macro_rules! dead_letter_from {
    ($row:expr) => {{
        let row = $row;
        DeadLetter {
            id: row.try_get("id")?,
            event: Event {
                id: row.try_get("event_id")?,
                subject: row.try_get("subject")?,
                key: row.try_get("order_id")?,
                payload: row.try_get::<String, _>("payload")?.into(),
                traceparent: row.try_get("traceparent")?,
                occurred_at: from_micros(row.try_get("occurred_us")?)?,
            },
            attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
            last_error: row.try_get("last_error")?,
            failed_at: from_micros(row.try_get("failed_us")?)?,
        }
    }};
}

macro_rules! notification_store {
    ($store:ty) => {
        #[async_trait]
        impl NotificationStore for $store {
            async fn is_processed(&self, event_id: &str) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT 1 FROM processed_events WHERE event_id = $1")
                    .bind(event_id)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.is_some())
            }

            async fn mark_processed(&self, event_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO processed_events (event_id, processed_us) VALUES ($1, $2)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(event_id)
                .bind(to_micros(now))
                .execute(&self.0)
                .await?;
                Ok(())
            }

            async fn dead_letter(
                &self,
                event: &Event,
                attempts: u32,
                error: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.0.begin().await?;
                let first = sqlx::query(
                    "INSERT INTO processed_events (event_id, processed_us) VALUES ($1, $2)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
                if first.rows_affected() == 1 {
                    sqlx::query(
                        "INSERT INTO dead_letters (event_id, subject, order_id, payload, traceparent,
                           occurred_us, attempts, last_error, failed_us)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&event.id)
                    .bind(&event.subject)
                    .bind(&event.key)
                    .bind(payload_text(event))
                    .bind(&event.traceparent)
                    .bind(to_micros(event.occurred_at))
                    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                    .bind(error)
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_dead(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.0)
                .await?;
                rows.iter().map(|row| Ok(dead_letter_from!(row))).collect()
            }

            async fn find_dead(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
                let row = sqlx::query(&format!("SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.0)
                    .await?;
                row.map(|row| Ok(dead_letter_from!(&row))).transpose()
            }

            async fn resolve_dead(&self, id: i64) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                    .bind(id)
                    .execute(&self.0)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn replay_failed(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE dead_letters SET attempts = attempts + 1, last_error = $1, failed_us = $2 WHERE id = $3",
                )
                .bind(error)
                .bind(to_micros(now))
                .bind(id)
                .execute(&self.0)
                .await?;
                Ok(())
            }

            async fn dead_count(&self) -> Result<i64, StoreError> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM dead_letters")
                    .fetch_one(&self.0)
                    .await?;
                Ok(row.try_get("n")?)
            }

            fn pool(&self) -> Pool {
                self.0.clone().into()
            }
        }
    };
}

use sqlx::Row;
notification_store!(SqliteNotificationStore);
notification_store!(PostgresNotificationStore);
