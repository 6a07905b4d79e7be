//! The store's SQL, written once for both engines: the statements use
//! `$n` placeholders and integer times (`kit::storage::time`), which
//! SQLite and PostgreSQL read alike, and [`on_pool!`] runs the same code
//! against whichever pool is open.

use chrono::{DateTime, Utc};
use kit::changes::{ChangeEvent, ChangeKind, ChangeQuery, StoredChange, MAX_PAGE};
use kit::storage::time::{from_micros, to_micros};
use kit::storage::{Pool, StoreError};
use sqlx::Row;

/// Runs `$body` with `$p` bound to the engine's own pool.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// A bound value of a query built at runtime.
enum Bind {
    Int(i64),
    Text(String),
}

/// Writes `events` in one transaction: all or none.
pub async fn insert(pool: &Pool, events: &[ChangeEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    on_pool!(pool, |p| {
        let mut tx = p.begin().await?;
        for event in events {
            sqlx::query(
                "INSERT INTO changes (at_us, kind, service, actor, subject, summary)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(to_micros(event.at))
            .bind(event.kind.as_str())
            .bind(&event.service)
            .bind(&event.actor)
            .bind(&event.subject)
            .bind(&event.summary)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// The events `query` asks for, newest (highest id) first, at most
/// [`MAX_PAGE`].
pub async fn list(pool: &Pool, query: &ChangeQuery) -> Result<Vec<StoredChange>, StoreError> {
    let mut sql = String::from(
        "SELECT id, at_us, kind, service, actor, subject, summary FROM changes WHERE 1 = 1",
    );
    let mut binds = Vec::new();
    let mut next = |sql: &mut String, clause: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(since) = query.since {
        next(&mut sql, " AND at_us >= ?", Bind::Int(to_micros(since)));
    }
    if let Some(until) = query.until {
        next(&mut sql, " AND at_us < ?", Bind::Int(to_micros(until)));
    }
    if let Some(service) = &query.service {
        next(&mut sql, " AND service = ?", Bind::Text(service.clone()));
    }
    if let Some(before) = query.before_id {
        next(&mut sql, " AND id < ?", Bind::Int(before));
    }
    if !query.kinds.is_empty() {
        sql.push_str(" AND kind IN (");
        for (i, kind) in query.kinds.iter().enumerate() {
            let sep = if i == 0 { "?" } else { ", ?" };
            next(&mut sql, sep, Bind::Text(kind.as_str().to_string()));
        }
        sql.push(')');
    }
    let limit = query.limit.clamp(1, MAX_PAGE);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    on_pool!(pool, |p| {
        let mut statement = sqlx::query(&sql);
        for bind in &binds {
            statement = match bind {
                Bind::Int(v) => statement.bind(*v),
                Bind::Text(v) => statement.bind(v.as_str()),
            };
        }
        let rows = statement.fetch_all(p).await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(StoredChange {
                    id: row.try_get("id")?,
                    event: ChangeEvent {
                        at: from_micros(row.try_get("at_us")?)?,
                        kind: ChangeKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("change kind `{kind}`")))?,
                        service: row.try_get("service")?,
                        actor: row.try_get("actor")?,
                        subject: row.try_get("subject")?,
                        summary: row.try_get("summary")?,
                    },
                })
            })
            .collect()
    })
}

/// Removes events older than `oldest` and all but the newest `keep`;
/// returns how many went.
pub async fn prune(pool: &Pool, oldest: DateTime<Utc>, keep: i64) -> Result<u64, StoreError> {
    on_pool!(pool, |p| {
        let aged = sqlx::query("DELETE FROM changes WHERE at_us < $1")
            .bind(to_micros(oldest))
            .execute(p)
            .await?
            .rows_affected();
        // The id of the newest event beyond `keep`; none while fewer exist.
        let counted = sqlx::query(
            "DELETE FROM changes WHERE id <= (
                 SELECT id FROM changes ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep)
        .execute(p)
        .await?
        .rows_affected();
        Ok(aged + counted)
    })
}

/// How many events are kept (tests, the docs' bound).
pub async fn count(pool: &Pool) -> Result<i64, StoreError> {
    on_pool!(pool, |p| {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes")
            .fetch_one(p)
            .await?;
        Ok(n)
    })
}
