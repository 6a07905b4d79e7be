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

mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::domain::{Link, LinkPatch, NewLink, Slug, Tag, Visit, VisitSummary};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("slug `{0}` is already taken")]
    SlugTaken(String),
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

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

/// A link changed on another replica (or this one): drop it from caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    Changed(Slug),
    /// Notifications may have been missed (listener reconnected): drop everything.
    Reset,
}

#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Inserts a link with the given slug; [`StoreError::SlugTaken`] if it exists.
    async fn create(
        &self,
        slug: &Slug,
        link: &NewLink,
        now: DateTime<Utc>,
    ) -> Result<Link, StoreError>;
    async fn find(&self, slug: &Slug) -> Result<Option<Link>, StoreError>;
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
    /// Cheap connectivity check for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// A feed of link changes made by any replica, when the backend has one.
    async fn watch_changes(&self) -> Option<tokio::sync::mpsc::Receiver<LinkChange>> {
        None
    }
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`) and
/// applies its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn LinkStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// Converts a row's text columns back into domain types.
pub(crate) fn link_from_parts(parts: RawLink, tags: Vec<String>) -> Result<Link, StoreError> {
    use crate::domain::{RedirectStatus, Tags, TargetUrl};
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
        created_at: parts.created_at,
        updated_at: parts.updated_at,
        expires_at: parts.expires_at,
        max_visits: parts.max_visits,
        visit_count: parts.visit_count,
        tags: Tags::from_stored(tags),
    })
}

/// A `links` row with adapter-neutral types.
pub(crate) struct RawLink {
    pub id: i64,
    pub slug: String,
    pub url: String,
    pub redirect_status: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_visits: Option<i64>,
    pub visit_count: i64,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
