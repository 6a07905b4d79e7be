//! The shortener's storage port and its two adapters.
//!
//! [`LinkStore`] is all the module knows about persistence. SQLite backs
//! `reliable up` (one file, zero setup); PostgreSQL backs `reliable serve`
//! with several replicas. Each adapter carries its own migrations and passes
//! the same conformance suite (`tests/conformance.rs`).
//!
//! Two operations carry the module's concurrency guarantees:
//! - [`LinkStore::claim_visit`] is one conditional `UPDATE` so `max_visits`
//!   holds exactly however many redirects race, on any number of replicas;
//! - [`LinkStore::record_visits`] writes a whole batch in one transaction.
//!
//! [`ReplicaRouted`] (`replica.rs`) puts an optional PostgreSQL read
//! replica behind [`LinkStore::lookup`], the redirect's read, and nothing
//! else.
//!
//! Visits are the one table that grows with traffic. On PostgreSQL it is
//! partitioned by day and written with binary `COPY` (`pg_visit_copy`,
//! `pg_visit_partitions`); [`LinkStore::maintain_visits`] keeps its day
//! partitions ahead of the clock and applies `shortener.visit_retention`.

mod pg_visit_copy;
mod pg_visit_partitions;
mod postgres;
mod replica;
mod sqlite;
mod visit_block;

pub use postgres::PostgresStore;
pub use replica::{NotPostgres, ReplicaRouted};
pub use sqlite::SqliteStore;

pub use kit::storage::StoreError;

use crate::domain::{Link, LinkPatch, NewLink, Slug, Tag, Visit, VisitSummary};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use kit::storage::{Pool, PoolConfig, Schema};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The shortener's tables and migrations. Releases before the shared
/// `kit::storage` kept them in PostgreSQL's `public` schema; the first
/// open by this release moves them into `shortener`.
pub static SCHEMA: Schema = Schema {
    module: crate::SERVICE,
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &["links", "link_tags", "visits"],
};

/// A page request for [`LinkStore::list`]: links with id above `after_id`,
/// in id order (stable under inserts), optionally with a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub tag: Option<Tag>,
    pub after_id: i64,
    pub limit: u32,
}

/// Outcome of [`LinkStore::claim_visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The visit is counted; redirect.
    Granted,
    /// `max_visits` is reached; answer 410.
    Exhausted,
    /// The link no longer exists.
    Gone,
}

/// What one [`LinkStore::maintain_visits`] round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitMaintenance {
    /// Day partitions created (PostgreSQL), oldest first.
    pub created: Vec<NaiveDate>,
    /// Day partitions dropped by retention (PostgreSQL), oldest first.
    pub dropped: Vec<NaiveDate>,
    /// Visits deleted row by row by retention: every expired visit on
    /// SQLite; on PostgreSQL only those in the default partition.
    pub deleted: u64,
}

/// Link changes from every replica: the receiver, and the future that
/// listens and feeds it. The store spawns nothing: the caller runs `pump`
/// as a tracked task. The pump reconnects by itself and ends with `Ok`
/// once `changes` is dropped.
pub struct ChangeFeed {
    pub changes: mpsc::Receiver<LinkChange>,
    pub pump: BoxFuture<'static, Result<(), StoreError>>,
}

/// A link changed on another replica (or this one): drop it from caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    Changed(Slug),
    /// Notifications may have been missed (listener reconnected): drop everything.
    Reset,
}

#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Inserts a link with the given slug; [`StoreError::Conflict`] if it exists.
    async fn create(
        &self,
        slug: &Slug,
        link: &NewLink,
        now: DateTime<Utc>,
    ) -> Result<Link, StoreError>;
    async fn find(&self, slug: &Slug) -> Result<Option<Link>, StoreError>;
    /// The redirect's read of a link: [`LinkStore::find`], or a read
    /// replica's copy of it, at most [`LinkStore::read_staleness`] old.
    async fn lookup(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        self.find(slug).await
    }
    /// How far behind the primary a [`LinkStore::lookup`] may be (zero
    /// without a read replica). The cache does not keep what it loads for
    /// a link that changed less than this long ago.
    fn read_staleness(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// Work the store needs running (a read replica's lag measurement),
    /// until the token is cancelled; the caller runs it as a tracked task.
    fn background(&self, _stop: kit::CancellationToken) -> Option<BoxFuture<'static, ()>> {
        None
    }
    async fn list(&self, query: &ListQuery) -> Result<Vec<Link>, StoreError>;
    /// Applies a patch; `None` if the link does not exist.
    async fn update(
        &self,
        slug: &Slug,
        patch: &LinkPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Link>, StoreError>;
    /// Deletes a link and its visits; false if it did not exist.
    async fn delete(&self, slug: &Slug) -> Result<bool, StoreError>;
    /// Atomically counts one visit if the link is below its `max_visits`.
    async fn claim_visit(&self, link_id: i64) -> Result<Claim, StoreError>;
    /// Stores a batch of visits (skipping those whose link was deleted) and
    /// adds the uncounted ones to their links' `visit_count`.
    async fn record_visits(&self, visits: &[Visit]) -> Result<(), StoreError>;
    async fn visit_summary(
        &self,
        link_id: i64,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<VisitSummary, StoreError>;
    /// Keeps the visits table in shape at time `now`: on PostgreSQL,
    /// creates the day partitions around `now` (and moves any of their
    /// visits out of the default partition); with a `retention`, removes
    /// the visits older than `now - retention` (PostgreSQL: drops the day
    /// partitions that end before it, so a visit is kept up to one day
    /// longer). Safe to run from every replica at once.
    async fn maintain_visits(
        &self,
        now: DateTime<Utc>,
        retention: Option<Duration>,
    ) -> Result<VisitMaintenance, StoreError>;
    /// The pool, for readiness ([`kit::storage::DatabaseReady`]).
    fn pool(&self) -> Pool;
    /// A feed of link changes made by any replica, when the backend has one.
    fn watch_changes(&self) -> Option<ChangeFeed> {
        None
    }
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies its migrations.
pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Arc<dyn LinkStore>, StoreError> {
    Ok(match kit::storage::open(url, pool, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteStore::new(pool)),
        Pool::Postgres(pool) => Arc::new(PostgresStore::new(pool)),
    })
}

/// The oldest visit time `retention` keeps at `now`.
fn retention_cutoff(now: DateTime<Utc>, retention: Duration) -> Result<DateTime<Utc>, StoreError> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .ok_or_else(|| {
            StoreError::Corrupt(format!("visit retention {retention:?} is out of range"))
        })
}

/// The error of an insert into `links`: a taken slug, or the database's.
fn insert_error(error: sqlx::Error, slug: &Slug) -> StoreError {
    StoreError::conflict_if_unique(error, || format!("slug `{slug}`"))
}

/// Converts a row's columns back into domain types.
pub(crate) fn link_from_parts(parts: RawLink, tags: Vec<String>) -> Result<Link, StoreError> {
    use crate::domain::{RedirectStatus, Tags, TargetUrl};
    use kit::storage::time::from_micros;
    let slug = Slug::parse(&parts.slug)
        .map_err(|e| StoreError::Corrupt(format!("slug {}: {e}", parts.slug)))?;
    let url = TargetUrl::parse(&parts.url)
        .map_err(|e| StoreError::Corrupt(format!("url of {}: {e}", parts.slug)))?;
    let redirect_status = u16::try_from(parts.redirect_status)
        .ok()
        .and_then(RedirectStatus::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("redirect status of {}", parts.slug)))?;
    Ok(Link {
        id: parts.id,
        slug,
        url,
        redirect_status,
        created_at: from_micros(parts.created_at)?,
        updated_at: from_micros(parts.updated_at)?,
        expires_at: parts.expires_at.map(from_micros).transpose()?,
        max_visits: parts.max_visits,
        visit_count: parts.visit_count,
        tags: Tags::from_stored(tags),
    })
}

/// A `links` row with adapter-neutral types (times in stored form,
/// `kit::storage::time`).
pub(crate) struct RawLink {
    pub id: i64,
    pub slug: String,
    pub url: String,
    pub redirect_status: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub max_visits: Option<i64>,
    pub visit_count: i64,
}
