//! The orders storage port and its two adapters.
//!
//! [`OrderStore`] is all the module knows about persistence: SQLite backs
//! `reliable up`, PostgreSQL backs `reliable serve` with any number of
//! replicas. Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! The guarantees live here, in transactions:
//! - [`OrderStore::create`] stores the idempotency key, the order and its
//!   `orders.created` outbox event in one transaction, so a 201 always has
//!   its event and a replayed key never creates a second order;
//! - a transition is a compare-and-set on the order's `version` with its
//!   outbox event in the same transaction;
//! - [`OrderStore::relay_batch`] publishes the oldest unpublished event of
//!   each order and marks it, oldest first; on PostgreSQL the rows stay
//!   locked (`FOR UPDATE SKIP LOCKED`) until marked, so relay replicas
//!   never publish the same event concurrently.

mod common;
mod postgres;
mod rows;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::domain::{
    Action, CustomerId, IdempotencyKey, IllegalTransition, Order, OrderEvent, OrderId,
};
use async_trait::async_trait;
use bus::{BusError, Event, Publisher};
use chrono::{DateTime, Utc};
use kit::storage::{Pool, PoolConfig, Schema};
use std::sync::Arc;

pub use kit::storage::StoreError;

/// The orders module's tables (schema `orders` on PostgreSQL, `orders.db`
/// on SQLite) and their migrations.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The idempotency record stored with a new order: the key, what the
/// request meant, and the response to replay.
#[derive(Debug, Clone)]
pub struct IdempotentCreate<'a> {
    pub key: &'a IdempotencyKey,
    pub fingerprint: &'a str,
    pub response_status: u16,
    pub response_body: &'a str,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The key was used before with the same request: the original response.
    Replayed {
        status: u16,
        body: String,
    },
    /// The key was used before with a different request.
    KeyReused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    Done(Order),
    Illegal(IllegalTransition),
    NotFound,
}

/// Outbox backlog, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub unpublished: i64,
    pub oldest: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Creates `order` with its `event`, unless the key was seen (and has
    /// not expired at `now`).
    async fn create(
        &self,
        order: &Order,
        event: &Event,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError>;
    async fn find(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;
    /// A customer's orders in creation order after cursor `after` (0 for
    /// the first page), with each order's cursor.
    async fn list(
        &self,
        customer: &CustomerId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Order)>, StoreError>;
    /// Replaces `before` by `after` if nobody changed it meanwhile (same
    /// `version`), storing `event` with it. False on a lost race.
    async fn replace(
        &self,
        before: &Order,
        after: &Order,
        event: &Event,
    ) -> Result<bool, StoreError>;
    /// Publishes up to `limit` events (the oldest unpublished one of each
    /// order) and marks them published at `now`. Returns how many.
    async fn relay_batch(
        &self,
        limit: u32,
        publisher: &dyn Publisher,
        now: DateTime<Utc>,
    ) -> Result<usize, RelayError>;
    /// Records that the in-process bus delivered these events.
    async fn mark_delivered(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Marks events published but never delivered as unpublished again
    /// (in-process bus after a restart: its memory is gone).
    async fn requeue_undelivered(&self) -> Result<u64, StoreError>;
    async fn backlog(&self) -> Result<Backlog, StoreError>;
    /// Deletes outbox rows published before `published_before` and
    /// idempotency keys expired at `now`.
    async fn purge(
        &self,
        published_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// The pool, for readiness ([`kit::storage::DatabaseReady`]).
    fn pool(&self) -> Pool;

    /// Applies `action` through the state machine, retrying lost races.
    async fn transition(
        &self,
        id: &OrderId,
        action: Action,
        traceparent: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<TransitionOutcome, StoreError> {
        loop {
            let Some(before) = self.find(id).await? else {
                return Ok(TransitionOutcome::NotFound);
            };
            let status = match before.status.apply(action) {
                Ok(status) => status,
                Err(illegal) => return Ok(TransitionOutcome::Illegal(illegal)),
            };
            let after = Order {
                status,
                version: before.version + 1,
                updated_at: now,
                ..before.clone()
            };
            let event = OrderEvent::of(&after, traceparent.clone(), now);
            if self.replace(&before, &after, &event).await? {
                return Ok(TransitionOutcome::Done(after));
            }
        }
    }
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies its migrations.
pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Arc<dyn OrderStore>, StoreError> {
    Ok(match kit::storage::open(url, pool, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteStore::new(pool)),
        Pool::Postgres(pool) => Arc::new(PostgresStore::new(pool)),
    })
}

/// The answer to a request whose key is already stored (and not expired).
fn replay_or_conflict(
    idempotency: &IdempotentCreate<'_>,
    fingerprint: String,
    status: i64,
    body: String,
) -> CreateOutcome {
    if fingerprint != idempotency.fingerprint {
        return CreateOutcome::KeyReused;
    }
    CreateOutcome::Replayed {
        status: u16::try_from(status).unwrap_or(201),
        body,
    }
}
