//! SQLite adapter: the embedded store of `reliable up` (one process).
//!
//! Every transaction starts with its write, so SQLite takes the write lock
//! at once and never has to upgrade a read lock (which fails with
//! `SQLITE_BUSY` under concurrency instead of waiting).

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
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

pub struct SqliteStore {
    pool: SqlitePool,
}

shared_statements!(SqliteStore, Sqlite);

fn event_of(row: &SqliteRow) -> Result<Event, StoreError> {
    raw_event_from!(row).into_event()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:PATH`)
    /// and applies migrations.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_sqlite(url, config, &super::SCHEMA).await?,
        ))
    }

    /// A store on a pool opened by `kit::storage` (see [`super::connect`]).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
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
}

#[async_trait]
impl OrderStore for SqliteStore {
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
        Pool::Sqlite(self.pool.clone())
    }
}
