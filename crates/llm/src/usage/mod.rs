//! The usage ledger: how many tokens each API key used, on which model and
//! backend, kept in the module's database so a restart loses no
//! accounting.
//!
//! - [`UsageStore`] is the storage port: one row per completed request,
//!   written in batches, each batch in one transaction and at most once
//!   ([`BatchId`]), and read back as sums per key, model and backend
//!   ([`UsageStore::summary`]). SQLite backs `reliable up`, PostgreSQL
//!   `reliable serve`, with one SQL text (`store.rs`) and one conformance
//!   suite (`tests/usage_conformance.rs`).
//! - [`Ledger`] is the write path (`ledger.rs`): a request hands its record
//!   to a bounded queue and goes on; the [`LedgerWriter`] task writes the
//!   queue in batches and keeps a batch through database outages.
//!
//! The guarantee: a record [`Ledger::record`] accepted is written exactly
//! once unless the process dies (a kill, or a database still down when the
//! shutdown drain deadline passes, which is logged with the count). A
//! full queue makes requests wait rather than drop their records.

mod ledger;
mod store;

pub use kit::storage::StoreError;
pub use ledger::{ledger, Ledger, LedgerWriter, DRAIN_DEADLINE, MAX_BATCH};
pub use store::{PostgresUsageStore, SqliteUsageStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::{Pool, PoolConfig, Schema};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The usage tables (schema `llm` on PostgreSQL, the module's own file on
/// SQLite) and their migrations.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// The key name recorded for requests without an API key.
pub const ANONYMOUS: &str = "anonymous";

/// One completed request's token usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// When the request completed (stored at microsecond resolution).
    pub at: DateTime<Utc>,
    /// The API key's name, or [`ANONYMOUS`].
    pub key: String,
    /// The public model name the client asked for.
    pub model: String,
    /// The backend that served it, by its name in the config.
    pub backend: String,
    /// Counts above `i64::MAX` (a broken backend's report) are stored as
    /// `i64::MAX`.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The backend reported no usage and the gateway estimated it.
    pub estimated: bool,
    pub outcome: Outcome,
}

/// How a request ended, as far as usage is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Served by the first backend tried.
    Ok,
    /// Served by a fallback backend after another failed.
    Fallback,
    /// The client went away before the answer was complete.
    ClientCancel,
    /// Every backend tried failed.
    BackendError,
    /// The backend's stream broke off midway.
    StreamAbort,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Ok,
        Self::Fallback,
        Self::ClientCancel,
        Self::BackendError,
        Self::StreamAbort,
    ];

    /// The stored (and metric label) form, e.g. `client-cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fallback => "fallback",
            Self::ClientCancel => "client-cancel",
            Self::BackendError => "backend-error",
            Self::StreamAbort => "stream-abort",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of [`Outcome`]'s forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown outcome `{0}` (expected ok, fallback, client-cancel, backend-error or stream-abort)"
)]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, UnknownOutcome> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_string()))
    }
}

/// Which records [`UsageStore::summary`] adds up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Only this API key's name (or [`ANONYMOUS`]); every key if none.
    pub key: Option<String>,
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive; nothing matches when `to <= from`.
    pub to: DateTime<Utc>,
}

/// The usage of one (key, model, backend) over a query's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub key: String,
    pub model: String,
    pub backend: String,
    pub requests: u64,
    /// Saturates at `u64::MAX`.
    pub prompt_tokens: u64,
    /// Saturates at `u64::MAX`.
    pub completion_tokens: u64,
    /// Requests whose tokens the gateway estimated.
    pub estimated_requests: u64,
}

/// Names one batch of records, so that writing it again (a retry after a
/// commit whose answer was lost) is recognised and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchId(u128);

impl BatchId {
    /// A new random id (128 bits: no two batches share one).
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The stored form: 32 lowercase hex digits.
    pub fn to_stored(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// What [`UsageStore::record`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The records are stored now.
    Written,
    /// A batch with this id was stored before; nothing was written.
    AlreadyWritten,
}

/// Where usage records are kept.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Stores `records` in one transaction, one row each, unless a batch
    /// named `batch` was stored before. Retrying a failed call with the same
    /// `batch` and records is always safe.
    async fn record(&self, batch: BatchId, records: &[UsageRecord])
        -> Result<Recorded, StoreError>;
    /// Sums per (key, model, backend) of the records in the query's window,
    /// sorted by key, model and backend (byte order, on either engine).
    async fn summary(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;
    /// The pool, for readiness ([`kit::storage::DatabaseReady`]).
    fn pool(&self) -> Pool;
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies its migrations.
pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Arc<dyn UsageStore>, StoreError> {
    Ok(match kit::storage::open(url, pool, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteUsageStore::new(pool)),
        Pool::Postgres(pool) => Arc::new(PostgresUsageStore::new(pool)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_stored_form() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
            assert_eq!(
                serde_json::to_value(outcome).expect("json"),
                outcome.as_str()
            );
        }
        for bad in ["", "OK", "cancel", "client_cancel", "ok "] {
            assert!(bad.parse::<Outcome>().is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_ids_are_fixed_width_hex_and_distinct() {
        let (a, b) = (BatchId::random(), BatchId::random());
        assert_ne!(a, b);
        assert_eq!(a.to_stored().len(), 32);
        assert_eq!(BatchId(1).to_stored(), format!("{:032}", 1));
        assert_eq!(BatchId(u128::MAX).to_string(), "f".repeat(32));
    }
}
