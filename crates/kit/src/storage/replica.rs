//! A read replica (a PostgreSQL streaming standby, Kubernetes' `-ro`
//! Service) for the reads of a module that may be a little stale, with the
//! staleness bounded and measured.
//!
//! Why a bound: a standby replays the primary's WAL some time after the
//! commit (asynchronous replay even with a synchronous standby, which only
//! waits for the WAL to be flushed). A module that reads from it sees the
//! past. [`ReadReplica::route`] answers "may this read go to the replica?"
//! from the last lag measurement: yes while the lag is within `max_lag`,
//! no (read the primary, counted as a fallback) when it is past it or
//! unknown.
//!
//! How lag is measured ([`ReadReplica::monitor`], every `check_interval`):
//! the primary's `pg_current_wal_lsn()` is sampled with the time, then the
//! replica's `pg_last_wal_replay_lsn()`. The replica has replayed
//! everything the primary had written at the time of the newest sample at
//! or below its replay position; the lag is the time since then. This
//! reads 0 on an idle primary (unlike `now() - pg_last_xact_replay_timestamp()`,
//! which grows while nothing is written) and grows at once when replay
//! stops while the primary writes.
//!
//! While the primary cannot be reached (a failover), reads go to the
//! replica whatever its lag, counted in
//! `<module>_read_replica_stale_reads_total`: the replica's copy, however
//! old, beats no answer, and nothing can be changed on a primary nobody
//! reaches. The module does the same for a read the primary fails as
//! unavailable before the monitor has noticed ([`ReadReplica::stale_read`]).
//!
//! A read URL that points at a primary (`pg_is_in_recovery()` false)
//! works, with a warning: its lag is 0 by definition.

use super::lag::LagTracker;
use super::{PoolConfig, StoreError};
use crate::CancellationToken;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The read URL (`RELIABLE_DATABASE_READ_URL`), as the binary hands it to
/// modules through their ports.
#[derive(Clone)]
pub struct DatabaseReadUrl(pub crate::config::Secret);

/// How stale the replica may be, and how often that is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Past this lag, reads go to the primary.
    pub max_lag: Duration,
    /// Time between two lag measurements.
    pub check_interval: Duration,
}

impl ReplicaSettings {
    /// The longest a read routed to the replica can be behind the primary:
    /// the bound plus one measurement interval (the lag may grow for that
    /// long before it is seen).
    pub fn staleness(&self) -> Duration {
        self.max_lag + self.check_interval
    }
}

/// What the server behind the read URL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Not measured yet, or unreachable.
    Unknown,
    /// A standby in recovery: the normal case.
    Standby,
    /// A primary (the read URL names the primary, or the standby was
    /// promoted): served, with a warning.
    Primary,
}

/// Where one read goes, from [`ReadReplica::route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Replica,
    /// The lag is past the bound or unknown.
    Primary,
}

/// Why a read that could have gone to the replica went to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The lag is past `max_lag` (or not measured yet).
    Lag,
    /// The replica failed the read.
    Error,
    /// The replica has no such row (it may be newer than the replica):
    /// confirmed on the primary.
    NotFound,
}

/// Lag not known: beyond any bound.
const UNKNOWN: u64 = u64::MAX;

struct Shared {
    /// Last measured lag in microseconds, [`UNKNOWN`] if none.
    lag_us: AtomicU64,
    role: AtomicU8,
    /// The primary answered the last measurement.
    primary_up: AtomicBool,
}

/// A module's read replica: its pool and its measured lag.
#[derive(Clone)]
pub struct ReadReplica {
    pool: PgPool,
    settings: ReplicaSettings,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

struct Metrics {
    lag_seconds: metrics::Gauge,
    lag_bytes: metrics::Gauge,
    reads: metrics::Counter,
    stale_reads: metrics::Counter,
    fallback_lag: metrics::Counter,
    fallback_error: metrics::Counter,
    fallback_not_found: metrics::Counter,
}

impl Metrics {
    fn new(module: &str) -> Self {
        let reads = format!("{module}_read_replica_reads_total");
        let fallbacks = format!("{module}_read_replica_fallbacks_total");
        Self {
            lag_seconds: metrics::gauge!(format!("{module}_read_replica_lag_seconds")),
            lag_bytes: metrics::gauge!(format!("{module}_read_replica_lag_bytes")),
            reads: metrics::counter!(reads),
            stale_reads: metrics::counter!(format!("{module}_read_replica_stale_reads_total")),
            fallback_lag: metrics::counter!(fallbacks.clone(), "reason" => "lag"),
            fallback_error: metrics::counter!(fallbacks.clone(), "reason" => "error"),
            fallback_not_found: metrics::counter!(fallbacks, "reason" => "not_found"),
        }
    }
}

impl ReadReplica {
    /// A pool on `url` whose connections see `module`'s schema. Nothing is
    /// created or migrated there (a standby is read-only; the primary's
    /// migrations arrive by replication), and nothing is connected yet: a
    /// replica that is down at start only sends reads to the primary.
    pub fn open(
        url: &str,
        config: &PoolConfig,
        module: &str,
        settings: ReplicaSettings,
    ) -> Result<Self, StoreError> {
        // The metric handles below are resolved once: the recorder must be
        // there first.
        crate::metrics::install();
        let options = PgConnectOptions::from_str(url)?
            .application_name(&format!("reliable-{module}-ro"))
            .options([("search_path", module)]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            settings,
            shared: Arc::new(Shared {
                lag_us: AtomicU64::new(UNKNOWN),
                role: AtomicU8::new(ReplicaRole::Unknown as u8),
                primary_up: AtomicBool::new(true),
            }),
            metrics: Arc::new(Metrics::new(module)),
        })
    }

    /// The replica's pool, for reads [`route`](Self::route)d to it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> ReplicaSettings {
        self.settings
    }

    /// The last measured lag; `None` before the first measurement or while
    /// the replica is unreachable.
    pub fn lag(&self) -> Option<Duration> {
        match self.shared.lag_us.load(Ordering::Acquire) {
            UNKNOWN => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn role(&self) -> ReplicaRole {
        match self.shared.role.load(Ordering::Acquire) {
            1 => ReplicaRole::Standby,
            2 => ReplicaRole::Primary,
            _ => ReplicaRole::Unknown,
        }
    }

    /// Where the next read goes. A read sent to the primary because of
    /// the lag is counted here (`<module>_read_replica_fallbacks_total{reason="lag"}`);
    /// one sent to the replica in `<module>_read_replica_reads_total`, or,
    /// past the bound while the primary is unreachable, in
    /// `<module>_read_replica_stale_reads_total`.
    pub fn route(&self) -> Route {
        match self.lag() {
            Some(lag) if lag <= self.settings.max_lag => {
                self.metrics.reads.increment(1);
                Route::Replica
            }
            _ if !self.shared.primary_up.load(Ordering::Acquire)
                && self.role() != ReplicaRole::Unknown =>
            {
                self.stale_read();
                Route::Replica
            }
            _ => {
                self.fallback(Fallback::Lag);
                Route::Primary
            }
        }
    }

    /// Counts a read served by the replica past the bound because the
    /// primary could not answer it.
    pub fn stale_read(&self) {
        self.metrics.stale_reads.increment(1);
    }

    /// Counts a read that went to the primary after all.
    pub fn fallback(&self, why: Fallback) {
        match why {
            Fallback::Lag => self.metrics.fallback_lag.increment(1),
            Fallback::Error => self.metrics.fallback_error.increment(1),
            Fallback::NotFound => self.metrics.fallback_not_found.increment(1),
        }
    }

    /// Measures the lag against `primary` every `check_interval` until
    /// `stop`. The caller runs it as a tracked task; it never fails.
    pub async fn monitor(self, primary: PgPool, stop: CancellationToken) {
        let mut lag = LagTracker::default();
        let mut warned_primary = false;
        let mut warned_down = false;
        loop {
            let primary_lsn = primary_position(&primary).await;
            let sampled_at = Instant::now();
            let up = primary_lsn.is_ok();
            if self.shared.primary_up.swap(up, Ordering::AcqRel) != up {
                if up {
                    tracing::info!(
                        "the primary answers again; the read replica's lag bound applies"
                    );
                } else {
                    tracing::warn!(
                        "the primary cannot be measured; reads go to the read replica whatever its lag"
                    );
                }
            }
            match replica_position(&self.pool).await {
                Ok(Position::Primary) => {
                    if !warned_primary {
                        tracing::warn!(
                            "the database read URL points at a primary (pg_is_in_recovery() is false): \
                             reads are served there, with no replica lag"
                        );
                        warned_primary = true;
                    }
                    warned_down = false;
                    self.record(ReplicaRole::Primary, Some(Duration::ZERO), 0);
                }
                Ok(Position::Replayed(replayed)) => {
                    warned_primary = false;
                    warned_down = false;
                    let now = Instant::now();
                    let measured = match primary_lsn {
                        Ok(lsn) => lag.observe(sampled_at, lsn, replayed, now),
                        // Failover: nothing new is committed meanwhile.
                        Err(_) => lag.last(),
                    };
                    self.record(ReplicaRole::Standby, measured, lag.bytes_behind());
                }
                Err(e) => {
                    if !warned_down {
                        tracing::warn!(error = %e, "the read replica cannot be measured; reads go to the primary");
                        warned_down = true;
                    }
                    lag = LagTracker::default();
                    self.record(ReplicaRole::Unknown, None, 0);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.check_interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    fn record(&self, role: ReplicaRole, lag: Option<Duration>, bytes: u64) {
        self.shared.role.store(role as u8, Ordering::Release);
        let us = lag.map_or(UNKNOWN, |l| {
            u64::try_from(l.as_micros()).unwrap_or(UNKNOWN - 1)
        });
        self.shared.lag_us.store(us, Ordering::Release);
        self.metrics
            .lag_seconds
            .set(lag.map_or(f64::INFINITY, |l| l.as_secs_f64()));
        self.metrics.lag_bytes.set(bytes as f64);
    }
}

enum Position {
    Primary,
    Replayed(i64),
}

async fn primary_position(primary: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(primary)
        .await
}

async fn replica_position(replica: &PgPool) -> Result<Position, sqlx::Error> {
    let (in_recovery, replayed): (bool, Option<i64>) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
    )
    .fetch_one(replica)
    .await?;
    Ok(match (in_recovery, replayed) {
        (false, _) => Position::Primary,
        (true, Some(lsn)) => Position::Replayed(lsn),
        // In recovery but nothing replayed yet: as far behind as can be.
        (true, None) => Position::Replayed(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_adds_one_interval() {
        let settings = ReplicaSettings {
            max_lag: Duration::from_secs(2),
            check_interval: Duration::from_millis(250),
        };
        assert_eq!(settings.staleness(), Duration::from_millis(2250));
    }
}
