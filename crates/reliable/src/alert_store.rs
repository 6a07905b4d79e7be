//! The alert history: every time an SLO alert started or stopped firing,
//! kept 7 days so the console's alerts page survives a restart.
//!
//! Why stored and not only in memory: the history is what an on-call
//! person reads after the fact ("did it page overnight?"), and `reliable
//! up` restarts often. It lives where the platform keeps everything else,
//! through `kit::storage`: its own SQLite file (`alerts.db` in the data
//! dir) or schema `alerts` on PostgreSQL when `database_url` is set. One
//! SQL text serves both engines (`$n` parameters, times in Unix
//! microseconds), as the gateway's key store does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::time::to_micros;
use kit::storage::{Pool, PoolConfig, Schema, StoreError};
use slo::alerts::{AlertCondition, AlertSeverity, AlertTransition};
use sqlx::{PgPool, Row, SqlitePool};
use std::sync::Arc;

/// How long transitions are kept.
pub const RETENTION: chrono::Duration = chrono::Duration::days(7);

pub(crate) static SCHEMA: Schema = Schema {
    module: "alerts",
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// Where the alert history lives: `alerts.db` in the data dir, or schema
/// `alerts` of the shared PostgreSQL database in `serve` when one is set.
pub fn url(config: &crate::settings::Config, embedded: bool) -> String {
    match (embedded, config.shared_database_url()) {
        (false, Some(url)) => url.to_string(),
        _ => format!("sqlite://{}", config.data_dir.join("alerts.db").display()),
    }
}

/// Where alert transitions are kept.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Appends transitions (oldest first).
    async fn append(&self, transitions: &[AlertTransition]) -> Result<(), StoreError>;
    /// Transitions at or after `since`, newest first, at most `limit`.
    async fn since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, StoreError>;
    /// Deletes transitions older than `before`; how many went.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Opens the store `url` names (`sqlite:PATH` or `postgres://...`) and
/// migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn AlertStore>, StoreError> {
    let config = PoolConfig::with_max_connections(2);
    Ok(match kit::storage::open(url, &config, &SCHEMA).await? {
        Pool::Sqlite(pool) => Arc::new(SqliteAlertStore { pool }),
        Pool::Postgres(pool) => Arc::new(PostgresAlertStore { pool }),
    })
}

/// [`AlertStore`] on SQLite.
pub struct SqliteAlertStore {
    pool: SqlitePool,
}

/// [`AlertStore`] on PostgreSQL.
pub struct PostgresAlertStore {
    pool: PgPool,
}

fn condition(text: &str) -> Result<AlertCondition, StoreError> {
    AlertCondition::ALL
        .into_iter()
        .find(|c| c.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown alert condition `{text}`")))
}

fn severity(text: &str) -> Result<AlertSeverity, StoreError> {
    match text {
        "page" => Ok(AlertSeverity::Page),
        "ticket" => Ok(AlertSeverity::Ticket),
        other => Err(StoreError::Corrupt(format!(
            "unknown alert severity `{other}`"
        ))),
    }
}

/// A stored limit: what `LIMIT` accepts on both engines.
fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

macro_rules! alert_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn transition(row: &$row) -> Result<AlertTransition, StoreError> {
                let at_us: i64 = row.try_get("at")?;
                let condition_text: String = row.try_get("condition")?;
                let severity_text: String = row.try_get("severity")?;
                Ok(AlertTransition {
                    at_ms: at_us.div_euclid(1000),
                    name: row.try_get("name")?,
                    slo_id: row.try_get("slo_id")?,
                    service: row.try_get("service")?,
                    condition: condition(&condition_text)?,
                    severity: severity(&severity_text)?,
                    firing: row.try_get("firing")?,
                    runbook: row.try_get("runbook")?,
                })
            }
        }

        #[async_trait]
        impl AlertStore for $store {
            async fn append(&self, transitions: &[AlertTransition]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for t in transitions {
                    sqlx::query(
                        "INSERT INTO alert_transitions
                         (at, name, slo_id, service, condition, severity, firing, runbook)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(t.at_ms.saturating_mul(1000))
                    .bind(&t.name)
                    .bind(&t.slo_id)
                    .bind(&t.service)
                    .bind(t.condition.as_str())
                    .bind(t.severity.as_str())
                    .bind(t.firing)
                    .bind(t.runbook.as_deref())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn since(
                &self,
                since: DateTime<Utc>,
                limit: usize,
            ) -> Result<Vec<AlertTransition>, StoreError> {
                sqlx::query(
                    "SELECT at, name, slo_id, service, condition, severity, firing, runbook
                     FROM alert_transitions WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2",
                )
                .bind(to_micros(since))
                .bind(limit_of(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::transition)
                .collect()
            }

            async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM alert_transitions WHERE at < $1")
                    .bind(to_micros(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

alert_store!(SqliteAlertStore, sqlx::sqlite::SqliteRow);
alert_store!(PostgresAlertStore, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(at_ms: i64, firing: bool) -> AlertTransition {
        AlertTransition {
            at_ms,
            name: "ShortenerRedirectAvailabilityBurn".into(),
            slo_id: "shortener-redirect-availability".into(),
            service: "shortener".into(),
            condition: AlertCondition::PageBurn,
            severity: AlertSeverity::Page,
            firing,
            runbook: Some("docs/runbooks/shortener.md".into()),
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    #[tokio::test]
    async fn on_sqlite_transitions_survive_a_reopen_newest_first_and_prune_by_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("alerts.db").display());
        survive_reopen_and_prune(&url).await;
    }

    #[tokio::test]
    async fn on_postgres_transitions_survive_a_reopen_newest_first_and_prune_by_age() {
        let url = testkit::postgres().create_database();
        survive_reopen_and_prune(&url).await;
    }

    /// One suite for both engines: what is appended comes back after a
    /// reopen, newest first, limited, from `since`, and prunes by age.
    async fn survive_reopen_and_prune(url: &str) {
        let url = url.to_string();
        let day = 86_400_000;
        {
            let store = open(&url).await.expect("open");
            store
                .append(&[transition(day, true), transition(3 * day, false)])
                .await
                .expect("append");
        }
        let store = open(&url).await.expect("reopen");
        let all = store.since(at(0), 10).await.expect("read");
        assert_eq!(all, vec![transition(3 * day, false), transition(day, true)]);
        assert_eq!(store.since(at(0), 1).await.expect("read").len(), 1);
        assert_eq!(store.since(at(2 * day), 10).await.expect("read").len(), 1);
        assert_eq!(store.prune(at(2 * day)).await.expect("prune"), 1);
        assert_eq!(
            store.since(at(0), 10).await.expect("read"),
            vec![transition(3 * day, false)]
        );
    }
}
