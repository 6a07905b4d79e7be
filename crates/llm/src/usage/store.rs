//! The SQL of the usage store, written once for both engines: SQLite backs
//! `reliable up` (the module's own file), PostgreSQL `reliable serve`
//! (schema `llm`). Both accept `$n` parameters and `ON CONFLICT DO
//! NOTHING`, and times are Unix microseconds on both
//! (`kit::storage::time`), so one macro implements [`UsageStore`] for each
//! pool type. Opening, migrating and the schema live in `kit::storage`.
//!
//! Sums are taken in two halves (`tokens / 2^32` and `tokens % 2^32`) and
//! put together in Rust: a plain `SUM` of `BIGINT`s can overflow (SQLite
//! fails, PostgreSQL's `NUMERIC` does not fit back in `BIGINT`), and a
//! report must not fail because one backend claimed absurd numbers.

use super::{BatchId, Recorded, UsageQuery, UsageRecord, UsageRow, UsageStore, SCHEMA};
use async_trait::async_trait;
use chrono::Utc;
use kit::storage::time::to_micros;
use kit::storage::{Pool, PoolConfig, StoreError};
use sqlx::{PgPool, Row, SqlitePool};
use std::borrow::Cow;

/// How long a written batch's id is remembered. A batch is retried only by
/// the writer that holds it, within its outage and shutdown drain, so a
/// week is far beyond any retry.
const BATCH_MEMORY_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// Rows per `INSERT` statement (8 parameters each, far below either
/// engine's limit on parameters).
const ROWS_PER_INSERT: usize = 500;

const INSERT_BATCH: &str =
    "INSERT INTO usage_batches (id, written_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
const FORGET_BATCHES: &str = "DELETE FROM usage_batches WHERE written_at < $1";

/// The sums of one group; `*_hi` and `*_lo` are the halves described above.
const SUMMARY: &str = "SELECT api_key, model, backend,
        COUNT(*) AS requests,
        CAST(SUM(prompt_tokens / 4294967296) AS BIGINT) AS prompt_hi,
        CAST(SUM(prompt_tokens % 4294967296) AS BIGINT) AS prompt_lo,
        CAST(SUM(completion_tokens / 4294967296) AS BIGINT) AS completion_hi,
        CAST(SUM(completion_tokens % 4294967296) AS BIGINT) AS completion_lo,
        CAST(SUM(CASE WHEN estimated THEN 1 ELSE 0 END) AS BIGINT) AS estimated
    FROM usage_records
    WHERE at >= $1 AND at < $2";
const GROUP: &str = "GROUP BY api_key, model, backend";

/// [`UsageStore`] on SQLite.
pub struct SqliteUsageStore {
    pool: SqlitePool,
}

/// [`UsageStore`] on PostgreSQL.
pub struct PostgresUsageStore {
    pool: PgPool,
}

impl SqliteUsageStore {
    /// Opens (creating if missing) `url` (`sqlite:PATH`) and migrates.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_sqlite(url, config, &SCHEMA).await?,
        ))
    }

    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

impl PostgresUsageStore {
    /// Connects to `url`, prepares schema `llm` and migrates.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self::new(
            kit::storage::open_postgres(url, config, &SCHEMA).await?,
        ))
    }

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// `INSERT` of `rows` records, parameters numbered from `$1`.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_records \
         (at, api_key, model, backend, prompt_tokens, completion_tokens, estimated, outcome) VALUES ",
    );
    for row in 0..rows {
        let first = row * 8 + 1;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..8 {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// A token count as stored: `BIGINT` is signed.
fn stored_tokens(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

/// A text as stored: PostgreSQL's `TEXT` cannot hold NUL, and a record
/// that can never be written would hold up every record behind it.
fn stored_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A summary row with adapter-neutral types.
struct RawRow {
    key: String,
    model: String,
    backend: String,
    requests: i64,
    prompt: (i64, i64),
    completion: (i64, i64),
    estimated: i64,
}

impl TryFrom<RawRow> for UsageRow {
    type Error = StoreError;

    fn try_from(raw: RawRow) -> Result<Self, StoreError> {
        let corrupt = || {
            StoreError::Corrupt(format!(
                "usage sums of {}/{}/{}",
                raw.key, raw.model, raw.backend
            ))
        };
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt());
        let tokens = |(hi, lo): (i64, i64)| -> Result<u64, StoreError> {
            let hi = u128::try_from(hi).map_err(|_| corrupt())?;
            let lo = u128::try_from(lo).map_err(|_| corrupt())?;
            Ok(u64::try_from((hi << 32) + lo).unwrap_or(u64::MAX))
        };
        Ok(UsageRow {
            requests: count(raw.requests)?,
            prompt_tokens: tokens(raw.prompt)?,
            completion_tokens: tokens(raw.completion)?,
            estimated_requests: count(raw.estimated)?,
            key: raw.key,
            model: raw.model,
            backend: raw.backend,
        })
    }
}

macro_rules! usage_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn row(row: &$row) -> Result<UsageRow, StoreError> {
                RawRow {
                    key: row.try_get("api_key")?,
                    model: row.try_get("model")?,
                    backend: row.try_get("backend")?,
                    requests: row.try_get("requests")?,
                    prompt: (row.try_get("prompt_hi")?, row.try_get("prompt_lo")?),
                    completion: (row.try_get("completion_hi")?, row.try_get("completion_lo")?),
                    estimated: row.try_get("estimated")?,
                }
                .try_into()
            }
        }

        #[async_trait]
        impl UsageStore for $store {
            async fn record(
                &self,
                batch: BatchId,
                records: &[UsageRecord],
            ) -> Result<Recorded, StoreError> {
                let now = to_micros(Utc::now());
                let mut tx = self.pool.begin().await?;
                let claimed = sqlx::query(INSERT_BATCH)
                    .bind(batch.to_stored())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(Recorded::AlreadyWritten);
                }
                for chunk in records.chunks(ROWS_PER_INSERT) {
                    // Not kept as a prepared statement: its text differs
                    // with the number of rows.
                    let sql = insert_sql(chunk.len());
                    let mut insert = sqlx::query(&sql).persistent(false);
                    for record in chunk {
                        insert = insert
                            .bind(to_micros(record.at))
                            .bind(stored_text(&record.key))
                            .bind(stored_text(&record.model))
                            .bind(stored_text(&record.backend))
                            .bind(stored_tokens(record.prompt_tokens))
                            .bind(stored_tokens(record.completion_tokens))
                            .bind(record.estimated)
                            .bind(record.outcome.as_str());
                    }
                    insert.execute(&mut *tx).await?;
                }
                sqlx::query(FORGET_BATCHES)
                    .bind(now.saturating_sub(BATCH_MEMORY_US))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Recorded::Written)
            }

            async fn summary(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
                let (from, to) = (to_micros(query.from), to_micros(query.to));
                let rows = match &query.key {
                    Some(key) => {
                        sqlx::query(&format!("{SUMMARY} AND api_key = $3 {GROUP}"))
                            .bind(from)
                            .bind(to)
                            .bind(stored_text(key))
                            .fetch_all(&self.pool)
                            .await?
                    }
                    None => {
                        sqlx::query(&format!("{SUMMARY} {GROUP}"))
                            .bind(from)
                            .bind(to)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                let mut summary = rows.iter().map(Self::row).collect::<Result<Vec<_>, _>>()?;
                // Sorted here, not by ORDER BY: PostgreSQL would sort by the
                // database's collation, SQLite by bytes.
                summary.sort_by(|a, b| {
                    (&a.key, &a.model, &a.backend).cmp(&(&b.key, &b.model, &b.backend))
                });
                Ok(summary)
            }

            fn pool(&self) -> Pool {
                self.pool.clone().into()
            }
        }
    };
}

usage_store!(SqliteUsageStore, sqlx::sqlite::SqliteRow);
usage_store!(PostgresUsageStore, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_numbers_every_parameter_once() {
        assert_eq!(
            insert_sql(2).split_once("VALUES ").map(|(_, v)| v),
            Some("($1, $2, $3, $4, $5, $6, $7, $8), ($9, $10, $11, $12, $13, $14, $15, $16)")
        );
        assert!(insert_sql(ROWS_PER_INSERT).ends_with(&format!("${})", ROWS_PER_INSERT * 8)));
    }

    #[test]
    fn stored_values_fit_their_columns() {
        assert_eq!(stored_tokens(7), 7);
        assert_eq!(stored_tokens(i64::MAX as u64), i64::MAX);
        assert_eq!(stored_tokens(u64::MAX), i64::MAX);
        assert_eq!(stored_text("gpt-4o"), "gpt-4o");
        assert!(matches!(stored_text("plain"), Cow::Borrowed(_)));
        assert_eq!(stored_text("a\0b"), "a\u{fffd}b");
    }

    fn raw(prompt: (i64, i64), completion: (i64, i64)) -> RawRow {
        RawRow {
            key: "k".into(),
            model: "m".into(),
            backend: "b".into(),
            requests: 3,
            prompt,
            completion,
            estimated: 1,
        }
    }

    #[test]
    fn halves_add_up_exactly_and_saturate() {
        let max = i64::MAX;
        // Two records of i64::MAX tokens: each is (2^31 - 1, 2^32 - 1).
        let two = (2 * (max >> 32), 2 * (max & 0xffff_ffff));
        let row = UsageRow::try_from(raw(two, (0, 5))).expect("row");
        assert_eq!(row.prompt_tokens, 2 * max as u64);
        assert_eq!(row.completion_tokens, 5);
        assert_eq!((row.requests, row.estimated_requests), (3, 1));
        let three = (3 * (max >> 32), 3 * (max & 0xffff_ffff));
        let row = UsageRow::try_from(raw(three, (1, 0))).expect("row");
        assert_eq!(row.prompt_tokens, u64::MAX);
        assert_eq!(row.completion_tokens, 1 << 32);
    }

    #[test]
    fn negative_sums_are_corrupt() {
        assert!(matches!(
            UsageRow::try_from(raw((0, -1), (0, 0))),
            Err(StoreError::Corrupt(_))
        ));
    }
}
