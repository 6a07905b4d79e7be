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
use super::{
    is_unique_violation, Backlog, CreateOutcome, IdempotentCreate, OrderStore, RelayError,
    StoreError,
};
use crate::domain::{CustomerId, Order, OrderId};
use async_trait::async_trait;
use bus::{Event, Publisher};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row};
use std::str::FromStr;
use std::time::Duration;

const SCHEMA: &str = "orders";

pub struct PostgresStore {
    pool: PgPool,
}

shared_statements!(PostgresStore, Postgres);

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

    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_db().await
    }
}
