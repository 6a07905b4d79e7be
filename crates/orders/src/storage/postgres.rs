//! PostgreSQL adapter: the store of `reliable serve`, any number of
//! replicas on one database.
//!
//! The relay selects the oldest unpublished event of each order `FOR UPDATE
//! SKIP LOCKED` and keeps the transaction open while it publishes, so a
//! second replica skips those rows instead of publishing them again, and an
//! event of an order is never taken while an older one of the same order is
//! still unpublished (per-order order across replicas).

use super::common::shared_statements;
use super::rows::{
    from_micros, items_json, micros, payload_text, raw_event_from, raw_order_from, EVENT_COLUMNS,
    ORDER_COLUMNS,
};
use super::{Backlog, CreateOutcome, IdempotentCreate, OrderStore, RelayError, StoreError};
use crate::domain::{CustomerId, Order, OrderId};
use async_trait::async_trait;
use bus::{Event, Publisher};
use chrono::{DateTime, Utc};
use kit::storage::{is_unique_violation, Pool, PoolConfig};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};

pub struct PostgresStore {
    pool: PgPool,
}

shared_statements!(PostgresStore, Postgres);

fn event_of(row: &PgRow) -> Result<Event, StoreError> {
    raw_event_from!(row).into_event()
}

impl PostgresStore {
    /// Connects to `url` and applies migrations, safe with replicas
    /// starting together (`kit::storage`).
    ///
    /// Tables (and sqlx's migration history) live in schema `orders`, so
    /// modules sharing one database never see each other's migrations.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_postgres(url, config, &super::SCHEMA).await?,
        ))
    }

    /// A store on a pool opened by `kit::storage` (see [`super::connect`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl OrderStore for PostgresStore {
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
        // On error the rows stay unpublished and are retried (JetStream
        // drops the duplicates). Roll back now rather than on drop, so the
        // next attempt does not skip rows still locked by this one.
        if let Err(e) = publisher.publish(&events).await {
            let _ = tx.rollback().await;
            return Err(e.into());
        }
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

    async fn create(
        &self,
        order: &Order,
        event: &Event,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        self.create_order(order, event, idempotency, now).await
    }

    async fn find(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.find_order(id).await
    }

    async fn list(
        &self,
        customer: &CustomerId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Order)>, StoreError> {
        self.list_orders(customer, after, limit).await
    }

    async fn replace(
        &self,
        before: &Order,
        after: &Order,
        event: &Event,
    ) -> Result<bool, StoreError> {
        self.replace_order(before, after, event).await
    }

    async fn requeue_undelivered(&self) -> Result<u64, StoreError> {
        self.requeue().await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.backlog_of().await
    }

    async fn purge(
        &self,
        published_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.purge_rows(published_before, now).await
    }

    fn pool(&self) -> Pool {
        Pool::Postgres(self.pool.clone())
    }
}
