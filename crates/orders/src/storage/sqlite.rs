//! SQLite adapter: the embedded store of `reliable up` (one process).
//!
//! Every transaction starts with its write, so SQLite takes the write lock
//! at once and never has to upgrade a read lock (which fails with
//! `SQLITE_BUSY` under concurrency instead of waiting).

use super::rows::{
    from_micros, items_json, micros, payload_text, raw_event_from, raw_order_from, EVENT_COLUMNS,
    ORDER_COLUMNS,
};
use super::{
    is_unique_violation, Backlog, CreateOutcome, IdempotentCreate, OrderStore, RelayError,
    StoreError,
};
use crate::domain::{CustomerId, Order, OrderId};
use async_trait::async_trait;
use bus::{Event, Publisher};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
}

fn order_of(row: &SqliteRow) -> Result<(i64, Order), StoreError> {
    raw_order_from!(row).into_order()
}

fn event_of(row: &SqliteRow) -> Result<Event, StoreError> {
    raw_event_from!(row).into_event()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:PATH`)
    /// and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn insert_event(
        tx: &mut Transaction<'_, Sqlite>,
        event: &Event,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, order_id, subject, payload, traceparent, occurred_us)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.id)
        .bind(&event.key)
        .bind(&event.subject)
        .bind(payload_text(event)?)
        .bind(&event.traceparent)
        .bind(micros(event.occurred_at))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// `UPDATE outbox SET <column> = now WHERE id IN (ids)`.
    async fn stamp(
        &self,
        column: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::<Sqlite>::new(format!("UPDATE outbox SET {column} = "));
        query.push_bind(micros(now)).push(" WHERE id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        query.push(")");
        query.build().execute(&self.pool).await?;
        Ok(())
    }

    /// What an existing key means for a new request.
    async fn existing_key(
        &self,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, response_status, response_body, expires_us
             FROM idempotency_keys WHERE key = ?",
        )
        .bind(idempotency.key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if from_micros(row.try_get("expires_us")?)? <= now {
            sqlx::query("DELETE FROM idempotency_keys WHERE key = ? AND expires_us <= ?")
                .bind(idempotency.key.as_str())
                .bind(micros(now))
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        Ok(Some(super::replay_or_conflict(
            idempotency,
            row.try_get("fingerprint")?,
            row.try_get::<i64, _>("response_status")?,
            row.try_get("response_body")?,
        )))
    }
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn create(
        &self,
        order: &Order,
        event: &Event,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        loop {
            let mut tx = self.pool.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, response_status, response_body, expires_us)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(idempotency.key.as_str())
            .bind(idempotency.fingerprint)
            .bind(i64::from(idempotency.response_status))
            .bind(idempotency.response_body)
            .bind(micros(idempotency.expires_at))
            .execute(&mut *tx)
            .await;
            match claimed {
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    match self.existing_key(idempotency, now).await? {
                        Some(outcome) => return Ok(outcome),
                        None => continue,
                    }
                }
                other => other?,
            };
            sqlx::query(
                "INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version, created_us, updated_us)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(order.id.as_str())
            .bind(order.customer_id.as_str())
            .bind(order.currency.as_str())
            .bind(items_json(order))
            .bind(order.total_minor)
            .bind(order.status.as_str())
            .bind(order.version)
            .bind(micros(order.created_at))
            .bind(micros(order.updated_at))
            .execute(&mut *tx)
            .await?;
            Self::insert_event(&mut tx, event).await?;
            tx.commit().await?;
            return Ok(CreateOutcome::Created);
        }
    }

    async fn find(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| order_of(&r).map(|(_, o)| o)).transpose()
    }

    async fn list(
        &self,
        customer: &CustomerId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Order)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(customer.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_of).collect()
    }

    async fn replace(
        &self,
        before: &Order,
        after: &Order,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE orders SET status = ?, version = ?, updated_us = ? WHERE id = ? AND version = ?",
        )
        .bind(after.status.as_str())
        .bind(after.version)
        .bind(micros(after.updated_at))
        .bind(before.id.as_str())
        .bind(before.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn relay_batch(
        &self,
        limit: u32,
        publisher: &dyn Publisher,
        now: DateTime<Utc>,
    ) -> Result<usize, RelayError> {
        // One relay per process on SQLite: no row locks needed.
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM outbox o WHERE published_us IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_id = o.order_id
                               AND p.published_us IS NULL AND p.seq < o.seq)
             ORDER BY seq LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        let events = rows.iter().map(event_of).collect::<Result<Vec<_>, _>>()?;
        if events.is_empty() {
            return Ok(0);
        }
        publisher.publish(&events).await?;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        self.stamp("published_us", &ids, now).await?;
        Ok(events.len())
    }

    async fn mark_delivered(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.stamp("delivered_us", ids, now).await
    }

    async fn requeue_undelivered(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET published_us = NULL WHERE published_us IS NOT NULL AND delivered_us IS NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(occurred_us) AS oldest FROM outbox WHERE published_us IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog {
            unpublished: row.try_get("n")?,
            oldest: row
                .try_get::<Option<i64>, _>("oldest")?
                .map(from_micros)
                .transpose()?,
        })
    }

    async fn purge(
        &self,
        published_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let events = sqlx::query("DELETE FROM outbox WHERE published_us < ?")
            .bind(micros(published_before))
            .execute(&self.pool)
            .await?;
        let keys = sqlx::query("DELETE FROM idempotency_keys WHERE expires_us <= ?")
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        Ok(events.rows_affected() + keys.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
