//! The status page's storage: daily probe aggregates and incident notes,
//! in `probes.db` (SQLite, `reliable up`) or the `probes` schema
//! (PostgreSQL), opened and migrated through [`kit::storage`].
//!
//! One SQL text serves both engines (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`); [`on_pool!`] runs it on whichever pool is open. A day is
//! a UTC day number (days since 1970-01-01), so the aggregate of a check
//! is one upsert and the 90-day window one range.

use crate::incident::{Incident, IncidentStatus, IncidentUpdate, NewIncident};
use chrono::{DateTime, NaiveDate, Utc};
use kit::storage::time::{from_micros, to_micros};
use kit::storage::{Pool, PoolConfig, Schema, StoreError};
use std::time::Duration;

/// Days of aggregates kept (and drawn as bars).
pub const RETENTION_DAYS: i64 = 90;

pub const SCHEMA: Schema = Schema {
    module: "probes",
    sqlite: &kit::storage::migrate!("./migrations/sqlite"),
    postgres: &kit::storage::migrate!("./migrations/postgres"),
    legacy_public_tables: &[],
};

/// Runs `$body` with `$p` bound to the open pool, whichever engine.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// The UTC day number of `at`.
pub fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// The date of day number `day`.
pub fn date_of(day: i64) -> NaiveDate {
    DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .unwrap_or_default()
        .date_naive()
}

/// One probe's totals for one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTotals {
    pub probe: String,
    pub component: String,
    pub day: i64,
    pub checks: i64,
    pub successes: i64,
    pub duration: Duration,
}

type IncidentRow = (i64, String, String, String, String, String, i64, i64);

const INCIDENT_COLUMNS: &str = "id, component, title, body, status, author, created_us, updated_us";

#[derive(Clone, Debug)]
pub struct ProbeStore {
    pool: Pool,
}

impl ProbeStore {
    /// Opens (creating and migrating) the store at `url`.
    pub async fn open(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        Ok(Self {
            pool: kit::storage::open(url, config, &SCHEMA).await?,
        })
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Adds one check's result to its day's totals.
    pub async fn record(
        &self,
        probe: &str,
        component: &str,
        at: DateTime<Utc>,
        success: bool,
        duration: Duration,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO probe_days (probe, component, day, checks, successes, duration_us)
                   VALUES ($1, $2, $3, 1, $4, $5)
                   ON CONFLICT (probe, day) DO UPDATE SET
                     component = excluded.component,
                     checks = probe_days.checks + 1,
                     successes = probe_days.successes + excluded.successes,
                     duration_us = probe_days.duration_us + excluded.duration_us";
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(probe)
            .bind(component)
            .bind(day_of(at))
            .bind(i64::from(success))
            .bind(micros)
            .execute(p)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Every probe's totals from day `since` on, by day.
    pub async fn days_since(&self, since: i64) -> Result<Vec<DayTotals>, StoreError> {
        let sql = "SELECT probe, component, day, checks, successes, duration_us
                   FROM probe_days WHERE day >= $1 ORDER BY day, probe";
        let rows: Vec<(String, String, i64, i64, i64, i64)> =
            on_pool!(&self.pool, |p| sqlx::query_as(sql)
                .bind(since)
                .fetch_all(p)
                .await?);
        Ok(rows
            .into_iter()
            .map(|(probe, component, day, checks, successes, us)| DayTotals {
                probe,
                component,
                day,
                checks,
                successes,
                duration: Duration::from_micros(u64::try_from(us).unwrap_or(0)),
            })
            .collect())
    }

    /// Deletes the totals of days more than [`RETENTION_DAYS`] before
    /// `now`'s; returns how many rows went.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let oldest_kept = day_of(now) - (RETENTION_DAYS - 1);
        let sql = "DELETE FROM probe_days WHERE day < $1";
        Ok(on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(oldest_kept)
            .execute(p)
            .await?
            .rows_affected()))
    }

    pub async fn create_incident(
        &self,
        new: &NewIncident,
        author: &str,
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError> {
        let sql = format!(
            "INSERT INTO incidents (component, title, body, status, author, created_us, updated_us)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {INCIDENT_COLUMNS}"
        );
        let row: IncidentRow = on_pool!(&self.pool, |p| sqlx::query_as(&sql)
            .bind(&new.component)
            .bind(&new.title)
            .bind(&new.body)
            .bind(new.status.as_str())
            .bind(author)
            .bind(to_micros(now))
            .fetch_one(p)
            .await?);
        incident(row)
    }

    /// Applies `update`; `None` if there is no incident `id`. The author
    /// stays the creator's.
    pub async fn update_incident(
        &self,
        id: i64,
        update: &IncidentUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "UPDATE incidents SET
               title = COALESCE($2, title),
               body = COALESCE($3, body),
               status = COALESCE($4, status),
               updated_us = $5
             WHERE id = $1 RETURNING {INCIDENT_COLUMNS}"
        );
        let row: Option<IncidentRow> = on_pool!(&self.pool, |p| sqlx::query_as(&sql)
            .bind(id)
            .bind(update.title.as_deref())
            .bind(update.body.as_deref())
            .bind(update.status.map(IncidentStatus::as_str))
            .bind(to_micros(now))
            .fetch_optional(p)
            .await?);
        row.map(incident).transpose()
    }

    /// The newest `limit` incidents, newest first.
    pub async fn incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY created_us DESC, id DESC LIMIT $1"
        );
        let rows: Vec<IncidentRow> = on_pool!(&self.pool, |p| sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(incident).collect()
    }
}

fn incident(row: IncidentRow) -> Result<Incident, StoreError> {
    let (id, component, title, body, status, author, created, updated) = row;
    Ok(Incident {
        id,
        component,
        title,
        body,
        status: IncidentStatus::parse(&status)
            .map_err(|_| StoreError::Corrupt(format!("incident {id} status {status:?}")))?,
        author,
        created_at: from_micros(created)?,
        updated_at: from_micros(updated)?,
    })
}
