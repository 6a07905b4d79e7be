//! Redirect look-ups from a PostgreSQL read replica, everything else on
//! the primary.
//!
//! With `database_read_url` set (Kubernetes' `-ro` Service), the redirect's
//! [`LinkStore::lookup`] reads the replica while its measured lag is
//! within `shortener.read_replica_max_lag` (`kit::storage::ReadReplica`);
//! past the bound, before the first measurement, or when the replica
//! fails the read, it reads the primary, and the fallback is counted.
//! Writes, `max_visits` accounting ([`LinkStore::claim_visit`], a
//! conditional `UPDATE`), the links API's reads (read-your-writes) and
//! the change feed (`LISTEN`: a standby never receives a `NOTIFY`) all
//! stay on the primary. A slug the replica does not have is looked up on
//! the primary too, so a new link redirects at once.
//!
//! While the primary is unreachable (a failover), look-ups are served by
//! the replica whatever its lag: nothing can change on a primary nobody
//! reaches, and a stale redirect beats a 503.
//!
//! Staleness: a read routed to the replica is at most
//! [`ReplicaSettings::staleness`](kit::storage::ReplicaSettings::staleness)
//! behind. The cache does not keep a link loaded within that time of its
//! last change ([`LinkStore::read_staleness`]), so once the change
//! notification has arrived a disabled or deleted link stops redirecting
//! within that bound; if the notification is lost, the cache TTL bounds
//! it, as without a replica.

use super::{ChangeFeed, Claim, LinkStore, ListQuery, PostgresStore, StoreError, VisitMaintenance};
use crate::domain::{Link, LinkPatch, NewLink, Slug, Visit, VisitSummary};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use kit::storage::{Fallback, Pool, ReadReplica, Route};
use kit::CancellationToken;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// A read replica was configured but the primary is not PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[error("a read replica (database_read_url) needs a PostgreSQL database_url")]
pub struct NotPostgres;

/// The primary's store, with redirect look-ups routed to a read replica.
pub struct ReplicaRouted {
    primary: Arc<dyn LinkStore>,
    primary_pool: PgPool,
    /// The same adapter on the replica's pool: only `find` is used.
    copy: PostgresStore,
    replica: ReadReplica,
}

impl ReplicaRouted {
    pub fn new(primary: Arc<dyn LinkStore>, replica: ReadReplica) -> Result<Self, NotPostgres> {
        let Pool::Postgres(primary_pool) = primary.pool() else {
            return Err(NotPostgres);
        };
        Ok(Self {
            primary,
            primary_pool,
            copy: PostgresStore::new(replica.pool().clone()),
            replica,
        })
    }

    /// The replica and its measured lag.
    pub fn replica(&self) -> &ReadReplica {
        &self.replica
    }
}

#[async_trait]
impl LinkStore for ReplicaRouted {
    async fn lookup(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        // What the replica answered, when it answered "no such link".
        let mut replica_none = false;
        if self.replica.route() == Route::Replica {
            match self.copy.find(slug).await {
                Ok(Some(link)) => return Ok(Some(link)),
                // A link created a moment ago may not be there yet: a
                // replica's "no such link" is confirmed on the primary.
                Ok(None) => {
                    self.replica.fallback(Fallback::NotFound);
                    replica_none = true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "read replica failed a look-up; reading the primary");
                    self.replica.fallback(Fallback::Error);
                }
            }
        }
        match self.primary.find(slug).await {
            Err(e) if e.is_unavailable() => {
                if replica_none {
                    return Ok(None);
                }
                // The primary is unreachable (a failover the lag monitor
                // has not seen yet): the replica's copy, however far
                // behind, beats a 503 for a redirect.
                match self.copy.find(slug).await {
                    Ok(found) => {
                        self.replica.stale_read();
                        Ok(found)
                    }
                    Err(_) => Err(e),
                }
            }
            other => other,
        }
    }

    fn read_staleness(&self) -> Duration {
        self.replica.settings().staleness()
    }

    fn background(&self, stop: CancellationToken) -> Option<BoxFuture<'static, ()>> {
        Some(
            self.replica
                .clone()
                .monitor(self.primary_pool.clone(), stop)
                .boxed(),
        )
    }

    async fn create(
        &self,
        slug: &Slug,
        link: &NewLink,
        now: DateTime<Utc>,
    ) -> Result<Link, StoreError> {
        self.primary.create(slug, link, now).await
    }

    async fn find(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        self.primary.find(slug).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Link>, StoreError> {
        self.primary.list(query).await
    }

    async fn update(
        &self,
        slug: &Slug,
        patch: &LinkPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Link>, StoreError> {
        self.primary.update(slug, patch, now).await
    }

    async fn delete(&self, slug: &Slug) -> Result<bool, StoreError> {
        self.primary.delete(slug).await
    }

    async fn claim_visit(&self, link_id: i64) -> Result<Claim, StoreError> {
        self.primary.claim_visit(link_id).await
    }

    async fn record_visits(&self, visits: &[Visit]) -> Result<(), StoreError> {
        self.primary.record_visits(visits).await
    }

    async fn visit_summary(
        &self,
        link_id: i64,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<VisitSummary, StoreError> {
        self.primary.visit_summary(link_id, since, top).await
    }

    async fn maintain_visits(
        &self,
        now: DateTime<Utc>,
        retention: Option<Duration>,
    ) -> Result<VisitMaintenance, StoreError> {
        self.primary.maintain_visits(now, retention).await
    }

    fn pool(&self) -> Pool {
        self.primary.pool()
    }

    fn watch_changes(&self) -> Option<ChangeFeed> {
        self.primary.watch_changes()
    }
}
