//! SQLite adapter: the embedded default of `reliable up`.
//!
//! WAL journal (`kit::storage`) so redirects (readers) never wait on the
//! visit writer; times are Unix microseconds (`kit::storage::time`). Every
//! write transaction starts with a write statement, so SQLite takes the
//! write lock up front and concurrent writers queue on `busy_timeout`
//! instead of failing with `SQLITE_BUSY`. Visits are stored a block per
//! link and batch ([`visit_block`], migration 0004), read back through
//! the `visits` view by anything but the summary and retention.

use super::visit_block::{self, Block};
use super::{
    insert_error, link_from_parts, Claim, LinkStore, ListQuery, RawLink, StoreError,
    VisitMaintenance,
};
use crate::domain::{Link, LinkPatch, NewLink, Slug, Tags, Visit, VisitSummary};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use kit::storage::time::{to_micros, truncate};
use kit::storage::{Pool, PoolConfig};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Arguments, QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The visit writer's own connection (a pool of one, on the same
    /// options): always the same one, so its page cache stays warm from
    /// one batch to the next. SQLite drops a connection's page cache when
    /// another connection changed the file since its last transaction, so
    /// a batch written on whichever pooled connection came next read its
    /// pages back: about 430 `pread`s a batch of 4,096 visits, and the
    /// SQLite threads spent 0.37 us of CPU a redirect against about
    /// 0.22 us on one connection (issue 18, docs/performance.md).
    visits: SqlitePool,
    /// The next visit's nonce (see [`bind_visit`]): a counter from a
    /// random start, so the visits one process writes never share a key.
    next_nonce: AtomicI64,
}

/// Blocks per multi-row INSERT, at most ([`BLOCK_VALUES_PER_ROW`] bound
/// values each). A power of two: see [`block_statement_sizes`].
const BLOCKS_PER_STATEMENT: usize = 128;
const _: () = assert!(BLOCKS_PER_STATEMENT.is_power_of_two());

/// How many rows each INSERT of a batch of `rows` blocks holds: powers of
/// two, largest first, at most [`BLOCKS_PER_STATEMENT`].
///
/// Batches come in every size, and each row count is a different SQL
/// text: sqlx's statement cache missed on almost every batch, and SQLite
/// parsed a statement of hundreds of rows each time (1.46 M instructions
/// per parse; 5,800 instructions per redirect, 12% of its total, in
/// `scripts/bench-instructions`). Only 8 texts exist this way, each
/// prepared once per connection.
fn block_statement_sizes(mut rows: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if rows == 0 {
            return None;
        }
        let size = if rows >= BLOCKS_PER_STATEMENT {
            BLOCKS_PER_STATEMENT
        } else {
            1 << rows.ilog2()
        };
        rows -= size;
        Some(size)
    })
}

/// The INSERT of `rows` blocks (one of [`block_statement_sizes`]),
/// written once: `QueryBuilder` formatted every placeholder of every
/// batch anew.
fn block_insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let by_log2 = SQL.get_or_init(|| {
        (0..=BLOCKS_PER_STATEMENT.ilog2())
            .map(|log2| {
                let row = "(?, ?, ?, ?, ?, ?)";
                let values = vec![row; 1 << log2].join(", ");
                format!(
                    "INSERT OR IGNORE INTO visit_blocks (link_id, last_at, nonce, first_at, visits, data) VALUES {values}"
                )
            })
            .collect()
    });
    debug_assert!(rows.is_power_of_two() && rows <= BLOCKS_PER_STATEMENT);
    &by_log2[rows.ilog2() as usize]
}

/// Values each row of [`block_insert_sql`] binds.
const BLOCK_VALUES_PER_ROW: usize = 6;

/// Appends one block's values, in [`block_insert_sql`]'s column order.
///
/// The nonce only makes the key (link, last time, nonce) unique. It
/// comes from the store's counter: SQLite's `random()` per row cost more
/// (about 350 instructions against a bound value's 200, issue 18), and
/// a counter cannot collide within one process, where two random values
/// could.
fn bind_block<'q>(
    values: &mut SqliteArguments<'q>,
    block: &'q Block,
    nonce: i64,
) -> Result<(), StoreError> {
    let encode = |e| StoreError::Database(sqlx::Error::Encode(e));
    values.add(block.link_id).map_err(encode)?;
    values.add(block.last_at).map_err(encode)?;
    values.add(nonce).map_err(encode)?;
    values.add(block.first_at).map_err(encode)?;
    values.add(block.visits).map_err(encode)?;
    values.add(block.data.as_str()).map_err(encode)?;
    Ok(())
}

const LINK_COLUMNS: &str =
    "l.id, l.slug, l.url, l.redirect_status, l.created_at, l.updated_at, l.expires_at, l.max_visits, l.visit_count";

fn raw_link(row: &SqliteRow) -> Result<RawLink, StoreError> {
    Ok(RawLink {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        url: row.try_get("url")?,
        redirect_status: row.try_get("redirect_status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        max_visits: row.try_get("max_visits")?,
        visit_count: row.try_get("visit_count")?,
    })
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
        let visits = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with(SqliteConnectOptions::clone(&pool.connect_options()));
        Self {
            pool,
            visits,
            next_nonce: AtomicI64::new(rand::random()),
        }
    }

    async fn insert_tags(
        tx: &mut Transaction<'_, Sqlite>,
        link_id: i64,
        tags: &Tags,
    ) -> Result<(), StoreError> {
        for tag in tags.iter() {
            sqlx::query("INSERT INTO link_tags (link_id, tag) VALUES (?, ?)")
                .bind(link_id)
                .bind(tag.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn tags_of(&self, ids: &[i64]) -> Result<BTreeMap<i64, Vec<String>>, StoreError> {
        let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(tags);
        }
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT link_id, tag FROM link_tags WHERE link_id IN (");
        let mut separated = query.separated(", ");
        for id in ids {
            separated.push_bind(*id);
        }
        query.push(")");
        for row in query.build().fetch_all(&self.pool).await? {
            tags.entry(row.try_get("link_id")?)
                .or_default()
                .push(row.try_get("tag")?);
        }
        Ok(tags)
    }

    async fn with_tags(&self, rows: Vec<SqliteRow>) -> Result<Vec<Link>, StoreError> {
        let raws = rows.iter().map(raw_link).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = raws.iter().map(|r| r.id).collect();
        let mut tags = self.tags_of(&ids).await?;
        raws.into_iter()
            .map(|raw| {
                let t = tags.remove(&raw.id).unwrap_or_default();
                link_from_parts(raw, t)
            })
            .collect()
    }
}

#[async_trait]
impl LinkStore for SqliteStore {
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
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(slug.as_str())
        .bind(link.url.as_str())
        .bind(i64::from(link.redirect_status.code()))
        .bind(to_micros(now))
        .bind(to_micros(now))
        .bind(expires_at.map(to_micros))
        .bind(link.max_visits)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = inserted.map_err(|e| insert_error(e, slug))?.try_get("id")?;
        Self::insert_tags(&mut tx, id, &link.tags).await?;
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
            "SELECT {LINK_COLUMNS} FROM links l WHERE l.slug = ?"
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
                     WHERE t.tag = ? AND l.id > ? ORDER BY l.id LIMIT ?"
                ))
                .bind(tag.as_str())
                .bind(query.after_id)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {LINK_COLUMNS} FROM links l WHERE l.id > ? ORDER BY l.id LIMIT ?"
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
                url = COALESCE(?, url),
                redirect_status = COALESCE(?, redirect_status),
                expires_at = CASE WHEN ? THEN ? ELSE expires_at END,
                max_visits = CASE WHEN ? THEN ? ELSE max_visits END,
                updated_at = ?
             WHERE slug = ? RETURNING id",
        )
        .bind(patch.url.as_ref().map(|u| u.as_str().to_string()))
        .bind(patch.redirect_status.map(|s| i64::from(s.code())))
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
            sqlx::query("DELETE FROM link_tags WHERE link_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Self::insert_tags(&mut tx, id, tags).await?;
        }
        tx.commit().await?;
        self.find(slug).await
    }

    async fn delete(&self, slug: &Slug) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM links WHERE slug = ?")
            .bind(slug.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn claim_visit(&self, link_id: i64) -> Result<Claim, StoreError> {
        let claimed = sqlx::query(
            "UPDATE links SET visit_count = visit_count + 1
             WHERE id = ? AND (max_visits IS NULL OR visit_count < max_visits) RETURNING id",
        )
        .bind(link_id)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(Claim::Granted);
        }
        let exists = sqlx::query("SELECT 1 FROM links WHERE id = ?")
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
        if visits.is_empty() {
            return Ok(());
        }
        // Per link: its visits, in arrival order, and how many of them its
        // count still lacks (0 when the redirect counted them all,
        // `max_visits` links).
        let mut links: BTreeMap<i64, (i64, Vec<&Visit>)> = BTreeMap::new();
        for visit in visits {
            let (uncounted, of_link) = links.entry(visit.link_id).or_default();
            *uncounted += i64::from(!visit.counted);
            of_link.push(visit);
        }
        // Encoded before the write lock is taken.
        let blocks = links
            .iter()
            .map(|(&link_id, (uncounted, of_link))| {
                Ok((*uncounted, visit_block::encode(link_id, of_link)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // IMMEDIATE: the write lock from the start, so a link found here
        // cannot be deleted before the commit (a deferred transaction
        // that reads first could also fail to upgrade).
        let mut tx = self.visits.begin_with("BEGIN IMMEDIATE").await?;
        // Which links still exist (a link deleted while its visits were
        // buffered loses them), found once per link by the count update
        // it needs anyway.
        let mut kept = Vec::with_capacity(blocks.len());
        for (uncounted, block) in &blocks {
            let exists = if *uncounted > 0 {
                sqlx::query("UPDATE links SET visit_count = visit_count + ? WHERE id = ?")
                    .bind(uncounted)
                    .bind(block.link_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
            } else {
                sqlx::query("SELECT 1 FROM links WHERE id = ?")
                    .bind(block.link_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some()
            };
            if exists {
                kept.push(block);
            }
        }
        // Multi-row statements of a few fixed shapes. `OR IGNORE` keeps a
        // key written by an earlier process (same link, last microsecond
        // and nonce: about 2^-64 per pair) from failing the whole batch.
        let mut nonce = self
            .next_nonce
            .fetch_add(kept.len() as i64, Ordering::Relaxed);
        let mut rest = kept.as_slice();
        for size in block_statement_sizes(rest.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            // The values go straight into one argument list: `Query::bind`
            // moves the whole query in and out for each value.
            let mut values = SqliteArguments::default();
            values.reserve(size * BLOCK_VALUES_PER_ROW, 0);
            for block in chunk {
                bind_block(&mut values, block, nonce)?;
                nonce = nonce.wrapping_add(1);
            }
            sqlx::query_with(block_insert_sql(size), values)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn visit_summary(
        &self,
        link_id: i64,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<VisitSummary, StoreError> {
        // The link's blocks whose last visit is in range (a range of the
        // key), decoded and counted in one pass.
        let since = to_micros(since);
        let mut summary = visit_block::Summarizer::since(since);
        let mut blocks =
            sqlx::query("SELECT data FROM visit_blocks WHERE link_id = ? AND last_at >= ?")
                .bind(link_id)
                .bind(since)
                .fetch(&self.pool);
        while let Some(row) = blocks.try_next().await? {
            summary.add(row.try_get("data")?)?;
        }
        Ok(summary.finish(top))
    }

    async fn maintain_visits(
        &self,
        now: DateTime<Utc>,
        retention: Option<std::time::Duration>,
    ) -> Result<VisitMaintenance, StoreError> {
        // One file, no partitions: retention deletes the blocks whose last
        // visit is before the cutoff, and trims those that straddle it.
        let Some(retention) = retention else {
            return Ok(VisitMaintenance::default());
        };
        let cutoff = to_micros(super::retention_cutoff(now, retention)?);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One scan: each deleted block says how many visits it held.
        let mut deleted: i64 = 0;
        {
            let mut expired = sqlx::query_scalar::<_, i64>(
                "DELETE FROM visit_blocks WHERE last_at < ? RETURNING visits",
            )
            .bind(cutoff)
            .fetch(&mut *tx);
            while let Some(visits) = expired.try_next().await? {
                deleted += visits;
            }
        }
        let straddling = sqlx::query(
            "SELECT link_id, last_at, nonce, data FROM visit_blocks WHERE first_at < ?",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for row in &straddling {
            let Some(trimmed) = visit_block::trim(row.try_get("data")?, cutoff)? else {
                continue;
            };
            sqlx::query(
                "UPDATE visit_blocks SET first_at = ?, visits = ?, data = ?
                 WHERE link_id = ? AND last_at = ? AND nonce = ?",
            )
            .bind(trimmed.first_at)
            .bind(trimmed.visits)
            .bind(&trimmed.data)
            .bind(row.try_get::<i64, _>("link_id")?)
            .bind(row.try_get::<i64, _>("last_at")?)
            .bind(row.try_get::<i64, _>("nonce")?)
            .execute(&mut *tx)
            .await?;
            deleted += trimmed.removed;
        }
        tx.commit().await?;
        Ok(VisitMaintenance {
            deleted: u64::try_from(deleted).unwrap_or(0),
            ..VisitMaintenance::default()
        })
    }

    fn pool(&self) -> Pool {
        Pool::Sqlite(self.pool.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_statements_take_every_row_in_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for rows in 0..=1_100 {
            let sizes: Vec<usize> = block_statement_sizes(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows, "{rows}: {sizes:?}");
            assert!(
                sizes.windows(2).all(|w| w[0] >= w[1]),
                "{rows}: largest first, {sizes:?}"
            );
            shapes.extend(sizes);
        }
        // One SQL text per shape, so the statement cache holds them all.
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128]
        );
        assert_eq!(
            block_statement_sizes(500).collect::<Vec<_>>(),
            [128, 128, 128, 64, 32, 16, 4]
        );
    }

    #[test]
    fn each_block_statement_binds_its_values_per_row() {
        for rows in block_statement_sizes(255) {
            let sql = block_insert_sql(rows);
            assert_eq!(
                sql.matches('?').count(),
                BLOCK_VALUES_PER_ROW * rows,
                "{rows}: {sql}"
            );
            assert_eq!(sql.matches("(?,").count(), rows, "{rows}: {sql}");
            assert!(!sql.contains("random()"), "{sql}");
        }
    }
}
