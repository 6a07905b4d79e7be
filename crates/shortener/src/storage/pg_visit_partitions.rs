//! The day partitions of `visits` on PostgreSQL, kept ahead of the clock.
//!
//! `visits` is `PARTITION BY RANGE (visited_at)` (migration 0003): one
//! partition per UTC day, named `visits_pYYYYMMDD`, plus `visits_default`
//! for any visit whose day has no partition, so a write never fails
//! because of its date (a skewed clock, a restore, a late batch).
//!
//! [`maintain`] runs at start and then periodically (the module's
//! `visit-maintenance` task) and, in one transaction under an advisory
//! lock (replicas may run it at once):
//! - creates the partitions of yesterday, today and the next
//!   [`DAYS_AHEAD`] days, so the writer never lands in the default
//!   partition while maintenance runs at least weekly. A new partition is
//!   built beside the table, receives that day's rows from the default
//!   partition, then is attached: `CREATE TABLE ... PARTITION OF` would
//!   fail if the default partition held rows of that day;
//! - with a retention, drops the day partitions that end before
//!   `now - retention` (a `DROP TABLE`: no row-by-row delete, no bloat,
//!   no vacuum debt) and deletes the expired rows of the default partition.
//!
//! DDL needs an `ACCESS EXCLUSIVE` lock on the parent for an instant; a
//! `lock_timeout` keeps maintenance from queueing every writer behind a
//! long analytics query: it fails and runs again next round.

use super::{StoreError, VisitMaintenance};
use chrono::{DateTime, NaiveDate, Utc};
use kit::storage::time::to_micros;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::time::Duration;

/// Microseconds in a UTC day: the width of one partition.
const DAY: i64 = 86_400_000_000;

/// Days after today that have their partition ready.
pub(crate) const DAYS_AHEAD: i64 = 7;

/// Serializes maintenance across replicas ("visitmnt" in ASCII).
const MAINTENANCE_LOCK: i64 = 0x7669_7369_746d_6e74;

const PREFIX: &str = "visits_p";

/// Days since the Unix epoch of a time in microseconds.
fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY)
}

fn date_of(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_yo_opt(1970, 1)?.checked_add_signed(chrono::Duration::try_days(day)?)
}

/// `visits_pYYYYMMDD` of a day (the same name the migration gives).
pub(crate) fn partition_name(day: i64) -> Option<String> {
    Some(format!("{PREFIX}{}", date_of(day)?.format("%Y%m%d")))
}

/// The day a partition name stands for; `None` for any other table.
pub(crate) fn day_of_partition(name: &str) -> Option<i64> {
    let digits = name.strip_prefix(PREFIX)?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    let epoch = NaiveDate::from_yo_opt(1970, 1)?;
    Some((date - epoch).num_days())
}

/// What [`maintain`] does at `now`: the days to create and to drop, given
/// the day partitions that exist.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub create: Vec<i64>,
    pub drop: Vec<i64>,
    /// Visits before this (microseconds) are expired.
    pub cutoff: Option<i64>,
}

pub(crate) fn plan(now: i64, retention: Option<i64>, existing: &BTreeSet<i64>) -> Plan {
    let today = day_of(now);
    let cutoff = retention.map(|r| now.saturating_sub(r));
    // A partition whose whole day is before the cutoff goes; the day that
    // holds the cutoff stays until it is entirely expired.
    let first_kept = cutoff.map(day_of).unwrap_or(i64::MIN);
    let create = (today - 1..=today + DAYS_AHEAD)
        .filter(|day| *day >= first_kept && !existing.contains(day))
        .collect();
    let drop = existing
        .iter()
        .copied()
        .filter(|day| *day < first_kept)
        .collect();
    Plan {
        create,
        drop,
        cutoff,
    }
}

pub(super) async fn maintain(
    pool: &PgPool,
    now: DateTime<Utc>,
    retention: Option<Duration>,
) -> Result<VisitMaintenance, StoreError> {
    let retention = retention
        .map(|r| {
            i64::try_from(r.as_micros())
                .map_err(|_| StoreError::Corrupt(format!("visit retention {r:?} is out of range")))
        })
        .transpose()?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MAINTENANCE_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'visits'::regclass",
    )
    .fetch_all(&mut *tx)
    .await?;
    let existing: BTreeSet<i64> = names.iter().filter_map(|n| day_of_partition(n)).collect();
    let plan = plan(to_micros(now), retention, &existing);
    let mut report = VisitMaintenance::default();
    for day in plan.create {
        let Some((name, date)) = partition_name(day).zip(date_of(day)) else {
            continue;
        };
        let (low, high) = (day * DAY, (day + 1) * DAY);
        sqlx::query(&format!(
            "CREATE TABLE \"{name}\" (LIKE visits INCLUDING DEFAULTS)"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "WITH moved AS (DELETE FROM visits_default WHERE visited_at >= $1 AND visited_at < $2 RETURNING *)
             INSERT INTO \"{name}\" SELECT * FROM moved"
        ))
        .bind(low)
        .bind(high)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE visits ATTACH PARTITION \"{name}\" FOR VALUES FROM ({low}) TO ({high})"
        ))
        .execute(&mut *tx)
        .await?;
        report.created.push(date);
    }
    for day in plan.drop {
        let Some((name, date)) = partition_name(day).zip(date_of(day)) else {
            continue;
        };
        sqlx::query(&format!("DROP TABLE \"{name}\""))
            .execute(&mut *tx)
            .await?;
        report.dropped.push(date);
    }
    if let Some(cutoff) = plan.cutoff {
        report.deleted = sqlx::query("DELETE FROM visits_default WHERE visited_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        to_micros(
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc),
        )
    }

    #[test]
    fn names_and_days_round_trip() {
        let day = day_of(micros("2030-06-01T12:00:00Z"));
        assert_eq!(partition_name(day).as_deref(), Some("visits_p20300601"));
        assert_eq!(day_of_partition("visits_p20300601"), Some(day));
        assert_eq!(day_of(micros("2030-06-01T00:00:00Z")), day);
        assert_eq!(day_of(micros("2030-06-01T23:59:59.999999Z")), day);
        assert_eq!(day_of(micros("1969-12-31T23:59:59Z")), -1);
        for other in ["visits_default", "visits_p2030060", "visits_p20301301", "x"] {
            assert_eq!(day_of_partition(other), None, "{other}");
        }
    }

    #[test]
    fn plan_creates_the_days_around_now_that_are_missing() {
        let now = micros("2030-06-01T12:00:00Z");
        let today = day_of(now);
        let existing = BTreeSet::from([today, today + 1]);
        let creating = plan(now, None, &existing);
        let mut expected: Vec<i64> = (today - 1..=today + DAYS_AHEAD).collect();
        expected.retain(|d| !existing.contains(d));
        assert_eq!(creating.create, expected);
        assert!(creating.drop.is_empty());
        assert_eq!(creating.cutoff, None);
    }

    #[test]
    fn plan_drops_only_days_wholly_before_the_cutoff() {
        let now = micros("2030-06-10T06:00:00Z");
        let today = day_of(now);
        let existing: BTreeSet<i64> = (today - 5..=today).collect();
        // Three days back is 2030-06-07T06:00: that day stays, earlier go.
        let three_days = 3 * DAY;
        let dropping = plan(now, Some(three_days), &existing);
        assert_eq!(dropping.drop, vec![today - 5, today - 4]);
        assert_eq!(dropping.cutoff, Some(now - three_days));
        // A partition is never created just to be expired.
        let late = micros("2030-06-10T23:00:00Z");
        let half_day = plan(late, Some(DAY / 2), &BTreeSet::new());
        assert_eq!(half_day.create.first(), Some(&today));
    }
}
