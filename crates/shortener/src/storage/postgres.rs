//! PostgreSQL adapter: what `reliable serve` runs on, several replicas at once.
//! Tables live in schema `shortener` (`kit::storage`); times are Unix
//! microseconds.
//!
//! Visit batches go in with binary `COPY` into a table partitioned by day
//! (`pg_visit_copy`, `pg_visit_partitions`). Updates and deletes `NOTIFY` on
//! `reliable_link_changed` inside their transaction, so every replica's
//! cache drops the link as soon as the change commits.

use super::{
    insert_error, link_from_parts, ChangeFeed, Claim, LinkChange, LinkStore, ListQuery, RawLink,
    StoreError, VisitMaintenance,
};
use crate::domain::{
    DayCount, Link, LinkPatch, NewLink, ReferrerCount, Slug, Tags, Visit, VisitSummary,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::FutureExt;
use kit::storage::time::{to_micros, truncate};
use kit::storage::{Pool, PoolConfig};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL: &str = "reliable_link_changed";

const LINK_COLUMNS: &str =
    "l.id, l.slug, l.url, l.redirect_status, l.created_at, l.updated_at, l.expires_at, l.max_visits, l.visit_count";

pub struct PostgresStore {
    pool: PgPool,
}

fn raw_link(row: &PgRow) -> Result<RawLink, StoreError> {
    // Times are read as stored (microseconds), converted in `link_from_parts`.
    Ok(RawLink {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        url: row.try_get("url")?,
        redirect_status: i64::from(row.try_get::<i16, _>("redirect_status")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        max_visits: row.try_get("max_visits")?,
        visit_count: row.try_get("visit_count")?,
    })
}

impl PostgresStore {
    /// Connects to `url`, prepares schema `shortener` (moving an older
    /// release's tables out of `public`) and applies migrations.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_postgres(url, config, &super::SCHEMA).await?,
        ))
    }

    /// A store on a pool opened by `kit::storage` (see [`super::connect`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn insert_tags(
        tx: &mut Transaction<'_, Postgres>,
        link_id: i64,
        tags: &Tags,
    ) -> Result<(), StoreError> {
        let names: Vec<String> = tags.iter().map(|t| t.as_str().to_string()).collect();
        if names.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO link_tags (link_id, tag) SELECT $1, tag FROM UNNEST($2::text[]) AS t(tag)",
        )
        .bind(link_id)
        .bind(&names)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn with_tags(&self, rows: Vec<PgRow>) -> Result<Vec<Link>, StoreError> {
        let raws = rows.iter().map(raw_link).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = raws.iter().map(|r| r.id).collect();
        let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        if !ids.is_empty() {
            for row in sqlx::query("SELECT link_id, tag FROM link_tags WHERE link_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?
            {
                tags.entry(row.try_get("link_id")?)
                    .or_default()
                    .push(row.try_get("tag")?);
            }
        }
        raws.into_iter()
            .map(|raw| {
                let t = tags.remove(&raw.id).unwrap_or_default();
                link_from_parts(raw, t)
            })
            .collect()
    }

    async fn notify(tx: &mut Transaction<'_, Postgres>, slug: &Slug) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(slug.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl LinkStore for PostgresStore {
    async fn create(
        &self,
        slug: &Slug,
        link: &NewLink,
        now: DateTime<Utc>,
    ) -> Result<Link, StoreError> {
        let now = truncate(now);
        let expires_at = link.expires_at.map(truncate);
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO links (slug, url, redirect_status, created_at, updated_at, expires_at, max_visits)
             VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING id",
        )
        .bind(slug.as_str())
        .bind(link.url.as_str())
        .bind(link.redirect_status.code() as i16)
        .bind(to_micros(now))
        .bind(expires_at.map(to_micros))
        .bind(link.max_visits)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = inserted.map_err(|e| insert_error(e, slug))?.try_get("id")?;
        Self::insert_tags(&mut tx, id, &link.tags).await?;
        // A cached "not found" elsewhere must not outlive a create either.
        Self::notify(&mut tx, slug).await?;
        tx.commit().await?;
        Ok(Link {
            id,
            slug: slug.clone(),
            url: link.url.clone(),
            redirect_status: link.redirect_status,
            created_at: now,
            updated_at: now,
            expires_at,
            max_visits: link.max_visits,
            visit_count: 0,
            tags: link.tags.clone(),
        })
    }

    async fn find(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM links l WHERE l.slug = $1"
        ))
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(self.with_tags(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Link>, StoreError> {
        let rows = match &query.tag {
            Some(tag) => {
                sqlx::query(&format!(
                    "SELECT {LINK_COLUMNS} FROM links l JOIN link_tags t ON t.link_id = l.id
                     WHERE t.tag = $1 AND l.id > $2 ORDER BY l.id LIMIT $3"
                ))
                .bind(tag.as_str())
                .bind(query.after_id)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {LINK_COLUMNS} FROM links l WHERE l.id > $1 ORDER BY l.id LIMIT $2"
                ))
                .bind(query.after_id)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        self.with_tags(rows).await
    }

    async fn update(
        &self,
        slug: &Slug,
        patch: &LinkPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Link>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE links SET
                url = COALESCE($1, url),
                redirect_status = COALESCE($2, redirect_status),
                expires_at = CASE WHEN $3 THEN $4 ELSE expires_at END,
                max_visits = CASE WHEN $5 THEN $6 ELSE max_visits END,
                updated_at = $7
             WHERE slug = $8 RETURNING id",
        )
        .bind(patch.url.as_ref().map(|u| u.as_str().to_string()))
        .bind(patch.redirect_status.map(|s| s.code() as i16))
        .bind(patch.expires_at.is_some())
        .bind(patch.expires_at.flatten().map(to_micros))
        .bind(patch.max_visits.is_some())
        .bind(patch.max_visits.flatten())
        .bind(to_micros(now))
        .bind(slug.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        if let Some(tags) = &patch.tags {
            sqlx::query("DELETE FROM link_tags WHERE link_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Self::insert_tags(&mut tx, id, tags).await?;
        }
        Self::notify(&mut tx, slug).await?;
        tx.commit().await?;
        self.find(slug).await
    }

    async fn delete(&self, slug: &Slug) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query("DELETE FROM links WHERE slug = $1")
            .bind(slug.as_str())
            .execute(&mut *tx)
            .await?;
        Self::notify(&mut tx, slug).await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    async fn claim_visit(&self, link_id: i64) -> Result<Claim, StoreError> {
        let claimed = sqlx::query(
            "UPDATE links SET visit_count = visit_count + 1
             WHERE id = $1 AND (max_visits IS NULL OR visit_count < max_visits) RETURNING id",
        )
        .bind(link_id)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(Claim::Granted);
        }
        let exists = sqlx::query("SELECT 1 FROM links WHERE id = $1")
            .bind(link_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if exists.is_some() {
            Claim::Exhausted
        } else {
            Claim::Gone
        })
    }

    async fn record_visits(&self, visits: &[Visit]) -> Result<(), StoreError> {
        super::pg_visit_copy::record_visits(&self.pool, visits).await
    }

    async fn maintain_visits(
        &self,
        now: DateTime<Utc>,
        retention: Option<Duration>,
    ) -> Result<VisitMaintenance, StoreError> {
        super::pg_visit_partitions::maintain(&self.pool, now, retention).await
    }

    async fn visit_summary(
        &self,
        link_id: i64,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<VisitSummary, StoreError> {
        let totals = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE is_bot) AS bots
             FROM visits WHERE link_id = $1 AND visited_at >= $2",
        )
        .bind(link_id)
        .bind(to_micros(since))
        .fetch_one(&self.pool)
        .await?;
        let per_day = sqlx::query(
            "SELECT (to_timestamp(visited_at / 1000000.0) AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS visits
             FROM visits WHERE link_id = $1 AND visited_at >= $2 GROUP BY day ORDER BY day",
        )
        .bind(link_id)
        .bind(to_micros(since))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(DayCount {
                date: row.try_get::<NaiveDate, _>("day")?,
                visits: row.try_get("visits")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let top_referrers = sqlx::query(
            "SELECT referrer_host, COUNT(*) AS visits FROM visits
             WHERE link_id = $1 AND visited_at >= $2
             GROUP BY referrer_host ORDER BY visits DESC, referrer_host NULLS FIRST LIMIT $3",
        )
        .bind(link_id)
        .bind(to_micros(since))
        .bind(i64::from(top))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ReferrerCount {
                host: row.try_get("referrer_host")?,
                visits: row.try_get("visits")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(VisitSummary::new(
            totals.try_get("total")?,
            totals.try_get("bots")?,
            per_day,
            top_referrers,
        ))
    }

    fn pool(&self) -> Pool {
        Pool::Postgres(self.pool.clone())
    }

    fn watch_changes(&self) -> Option<ChangeFeed> {
        let (tx, changes) = mpsc::channel(1024);
        let pump = listen(self.pool.clone(), tx).map(Ok).boxed();
        Some(ChangeFeed { changes, pump })
    }
}

/// Forwards `NOTIFY`s to `tx` until it is closed, reconnecting (with a
/// `Reset`, since notifications in between are lost) whenever the
/// listening connection fails.
async fn listen(pool: PgPool, tx: mpsc::Sender<LinkChange>) {
    const RETRY: Duration = Duration::from_secs(1);
    while !tx.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "link change listener cannot connect; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Anything may have changed while we were not listening.
        if tx.send(LinkChange::Reset).await.is_err() {
            return;
        }
        loop {
            let change = match listener.try_recv().await {
                Ok(Some(notification)) => match Slug::parse(notification.payload()) {
                    Ok(slug) => LinkChange::Changed(slug),
                    Err(_) => continue,
                },
                // Connection lost: notifications from now on are missed.
                // Drop everything now, and again once listening (the
                // outer loop), so nothing loaded during the gap stays.
                Ok(None) => {
                    if tx.send(LinkChange::Reset).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "link change listener failed; reconnecting");
                    break;
                }
            };
            if tx.send(change).await.is_err() {
                return;
            }
        }
    }
}
