//! PostgreSQL adapter: the store of `reliable serve`, any number of
//! replicas on one database.
//!
//! The relay selects the oldest unpublished event of each order `FOR UPDATE
//! SKIP LOCKED` and keeps the transaction open while it publishes, so a
//! second replica skips those rows instead of publishing them again, and an
//! event of an order is never taken while an older one of the same order is
//! still unpublished (per-order order across replicas).

use super::rows::{
    from_micros, items_json, micros, payload_text, raw_event_from, raw_order_from, EVENT_COLUMNS,
    ORDER_COLUMNS,
};
use super::{
    is_unique_violation, replay_or_conflict, Backlog, CreateOutcome, IdempotentCreate, OrderStore,
    RelayError, StoreError,
};
use crate::domain::{CustomerId, Order, OrderId};
use async_trait::async_trait;
use bus::{Event, Publisher};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

const SCHEMA: &str = "orders";

pub struct PostgresStore {
    pool: PgPool,
}

/// `CREATE SCHEMA IF NOT EXISTS`, tolerating a replica that won the race.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    match created {
        Err(e) if !is_unique_violation(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

fn order_of(row: &PgRow) -> Result<(i64, Order), StoreError> {
    raw_order_from!(row).into_order()
}

fn event_of(row: &PgRow) -> Result<Event, StoreError> {
    raw_event_from!(row).into_event()
}

impl PostgresStore {
    /// Connects to `url` and applies migrations (the migrator takes an
    /// advisory lock, so replicas starting together migrate once).
    ///
    /// Tables (and sqlx's migration history) live in schema `orders`, so
    /// modules sharing one database never see each other's migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("reliable-orders");
        create_schema(&options, SCHEMA).await?;
        let options = options.options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn insert_event(
        tx: &mut Transaction<'_, Postgres>,
        event: &Event,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, order_id, subject, payload, traceparent, occurred_us)
             VALUES ($1, $2, $3, $4, $5, $6)",
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

    async fn existing_key(
        &self,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        // An expired key is deleted and the request proceeds as new.
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND expires_us <= $2")
            .bind(idempotency.key.as_str())
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(
            "SELECT fingerprint, response_status, response_body FROM idempotency_keys WHERE key = $1",
        )
        .bind(idempotency.key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(replay_or_conflict(
            idempotency,
            row.try_get("fingerprint")?,
            i64::from(row.try_get::<i32, _>("response_status")?),
            row.try_get("response_body")?,
        )))
    }
}

#[async_trait]
impl OrderStore for PostgresStore {
    async fn create(
        &self,
        order: &Order,
        event: &Event,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        loop {
            let mut tx = self.pool.begin().await?;
            // First, so a concurrent request with the same key waits on the
            // unique index until this one commits, then sees it.
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, response_status, response_body, expires_us)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(idempotency.key.as_str())
            .bind(idempotency.fingerprint)
            .bind(i32::from(idempotency.response_status))
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
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
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
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
            "UPDATE orders SET status = $1, version = $2, updated_us = $3 WHERE id = $4 AND version = $5",
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
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM outbox o WHERE published_us IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_id = o.order_id
                               AND p.published_us IS NULL AND p.seq < o.seq)
             ORDER BY seq LIMIT $1 FOR UPDATE OF o SKIP LOCKED"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let events = rows.iter().map(event_of).collect::<Result<Vec<_>, _>>()?;
        if events.is_empty() {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(0);
        }
        // On error the transaction rolls back on drop: the rows stay
        // unpublished and are retried (JetStream drops the duplicates).
        publisher.publish(&events).await?;
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        sqlx::query("UPDATE outbox SET published_us = $1 WHERE id = ANY($2)")
            .bind(micros(now))
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(events.len())
    }

    async fn mark_delivered(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET delivered_us = $1 WHERE id = ANY($2)")
            .bind(micros(now))
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        let events = sqlx::query("DELETE FROM outbox WHERE published_us < $1")
            .bind(micros(published_before))
            .execute(&self.pool)
            .await?;
        let keys = sqlx::query("DELETE FROM idempotency_keys WHERE expires_us <= $1")
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
