//! The platform's change store: the console's "what changed six hours
//! ago?" timeline, kept in the platform's own storage and bounded.
//!
//! [`ChangeStore`] is the adapter behind both sides of the port in
//! [`kit::changes`]:
//! - [`kit::changes::ChangeLog`]: modules record through a bounded queue to
//!   one writer task (`writer.rs`), so recording never waits for the
//!   database and never fails the change it describes; what cannot be
//!   stored is dropped and counted (`platform_changes_dropped_total`);
//! - [`kit::changes::ChangeFeed`]: the console and `reliable changes list`
//!   read with SQL (`sql.rs`): time, kind and service filters, newest
//!   first, keyset pages by id.
//!
//! Where it lives: the SQLite file `changes.db` under the data dir (`up`,
//! or no database URL), else the schema `changes` of the platform's
//! PostgreSQL, opened and migrated by `kit::storage` like every module's.
//! Bounds: `[changes] max_events` and `max_age` ([`ChangesConfig`]),
//! enforced by the writer.

#![forbid(unsafe_code)]

mod config;
mod sql;
mod writer;

pub use config::ChangesConfig;
pub use writer::{WriterOptions, DROPPED};

use async_trait::async_trait;
use kit::changes::{ChangeEvent, ChangeFeed, ChangeLog, ChangeQuery, ChangeRecorder, StoredChange};
use kit::storage::{Pool, PoolConfig, Schema, StoreError};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use writer::{DropReason, Drops, Message, Writer};

/// The module name of the store: its PostgreSQL schema and SQLite file.
pub const NAME: &str = "changes";

/// The change timeline's table and migrations.
pub static SCHEMA: Schema = Schema {
    module: NAME,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// Where the store is: the platform's PostgreSQL when one is configured,
/// else `changes.db` under `data_dir` (what `up` always uses: pass `None`).
pub fn database_url(configured: Option<&str>, data_dir: &Path) -> String {
    match configured {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", data_dir.join(format!("{NAME}.db")).display()),
    }
}

/// The change timeline: records without blocking, reads with SQL.
/// Cloning shares the store and its writer.
#[derive(Clone)]
pub struct ChangeStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    queue: mpsc::Sender<Message>,
    drops: Arc<Drops>,
}

impl ChangeStore {
    /// Opens (creating and migrating) the store at `url` and starts its
    /// writer on `tasks`; the writer stops, writing what is queued, when
    /// `tasks` shuts down.
    pub async fn open(
        url: &str,
        config: &ChangesConfig,
        clock: Arc<dyn Clock>,
        tasks: &TaskSpawner,
    ) -> Result<Self, StoreError> {
        Self::open_with(url, config, clock, tasks, WriterOptions::default()).await
    }

    /// [`Self::open`] with the queue and batch sizes chosen (tests).
    pub async fn open_with(
        url: &str,
        config: &ChangesConfig,
        clock: Arc<dyn Clock>,
        tasks: &TaskSpawner,
        options: WriterOptions,
    ) -> Result<Self, StoreError> {
        // A small pool: one writer and the occasional console read.
        let pool_config = PoolConfig {
            max_connections: 4,
            sqlite_max_connections: 2,
            ..PoolConfig::default()
        };
        let pool = kit::storage::open(url, &pool_config, &SCHEMA).await?;
        let drops = Arc::new(Drops::new(clock.clone()));
        let (queue, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let writer = Writer::new(pool.clone(), config.clone(), options, clock, drops.clone());
        tasks.spawn(
            "changes-writer",
            OnFailure::Unready,
            writer.run(receiver, tasks.stop_token()),
        );
        Ok(Self {
            inner: Arc::new(Inner { pool, queue, drops }),
        })
    }

    /// This store as the port modules record through.
    pub fn recorder(&self) -> ChangeRecorder {
        ChangeRecorder(Arc::new(self.clone()))
    }

    /// This store as the port the console reads.
    pub fn feed(&self) -> Arc<dyn ChangeFeed> {
        Arc::new(self.clone())
    }

    /// Writes `events` now and says whether they were stored: for a
    /// command-line tool that records its own change and exits.
    pub async fn append(&self, events: &[ChangeEvent]) -> Result<(), StoreError> {
        sql::insert(&self.inner.pool, events).await
    }

    /// Returns once every event recorded before the call is written (or
    /// dropped); at once if the writer has stopped.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.inner.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Events dropped since the store opened (also in [`DROPPED`]).
    pub fn dropped(&self) -> u64 {
        self.inner.drops.total()
    }

    /// How many events are stored now.
    pub async fn count(&self) -> Result<i64, StoreError> {
        sql::count(&self.inner.pool).await
    }

    /// The pool, for readiness ([`kit::storage::DatabaseReady`]) and tests
    /// that take the database away.
    pub fn pool(&self) -> Pool {
        self.inner.pool.clone()
    }
}

impl ChangeLog for ChangeStore {
    fn record(&self, event: ChangeEvent) {
        match self.inner.queue.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.inner.drops.count(DropReason::QueueFull, 1, None)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.inner.drops.count(DropReason::Stopped, 1, None)
            }
        }
    }
}

#[async_trait]
impl ChangeFeed for ChangeStore {
    async fn list(&self, query: &ChangeQuery) -> Result<Vec<StoredChange>, StoreError> {
        sql::list(&self.inner.pool, query).await
    }
}
