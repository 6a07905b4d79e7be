//! `reliable load plan --dau N`: from daily active users to cores,
//! replicas and the PostgreSQL write rate.
//!
//! The traffic half is the scenario files' `dau:` helper
//! ([`Dau`]), so a plan and the load test that checks it start from the
//! same arithmetic. The capacity half divides each traffic level by what
//! one core was measured to carry, with headroom:
//!
//! ```text
//! cores    = (redirects/s / redirects_per_core + creates/s / creates_per_core) / utilization
//! replicas = max(min_replicas, ceil(cores / cores_per_replica))
//! pg rows  = redirects/s x pg_writes_per_visit + creates/s x pg_writes_per_create
//! pg WAL   = redirects/s x pg_wal_bytes_per_visit + creates/s x pg_wal_bytes_per_create
//! ```
//!
//! The defaults are this repository's measured figures (each constant says
//! where from); docs/operations/scaling.md explains them and what changes
//! at each order of magnitude.

use crate::scenario::dau::{Dau, Profile, ProfileRates};
use serde::Serialize;

/// Link creates per user per day: scenarios/shortener-dau.yaml.
pub const ACTIONS_PER_USER_PER_DAY: f64 = 5.0;
/// Redirects per create: scenarios/shortener-dau.yaml.
pub const READ_WRITE_RATIO: f64 = 100.0;
/// Busiest hour against the day's average: scenarios/shortener-dau.yaml.
pub const PEAK_FACTOR: f64 = 2.5;
/// A viral spike against the average: scenarios/shortener-dau.yaml.
pub const SPIKE_FACTOR: f64 = 100.0;
/// Redirects per second one core carries through the gateway: 39.3 us of
/// server CPU per redirect through `reliable up` (gateway hop included),
/// docs/performance.md "Redirects" (the module alone: 25.5 us, 39,000/s).
pub const REDIRECTS_PER_CORE: f64 = 25_400.0;
/// Creates per second per core: order creation sustained about 1,500/s on
/// the 2 shared cores with PostgreSQL and NATS beside it,
/// docs/performance.md "Orders and notifications" (link creates have not
/// been measured alone; both are one PostgreSQL transaction per request).
pub const CREATES_PER_CORE: f64 = 750.0;
/// Rows PostgreSQL writes per redirect: the visit row, and its link's
/// `visit_count` (one update per link per batch). Measured by
/// `scripts/bench-pg-writes` (pg_stat_user_tables): 2.00 with visits
/// spread over 1,000 links, 1.002 with all on one link; the plan takes
/// the worst.
pub const PG_WRITES_PER_VISIT: f64 = 2.0;
/// Rows per link create: the link and one tag (the DAU scenario's);
/// measured 2.00 by `scripts/bench-pg-writes`.
pub const PG_WRITES_PER_CREATE: f64 = 2.0;
/// WAL bytes per redirect, measured by `scripts/bench-pg-writes`
/// (pg_current_wal_lsn): 401 with visits spread over 1,000 links (the
/// visit row, its index entries, the link's count update), 200 all on
/// one link; without full-page images.
pub const PG_WAL_BYTES_PER_VISIT: f64 = 401.0;
/// WAL bytes per link create, measured by `scripts/bench-pg-writes`.
pub const PG_WAL_BYTES_PER_CREATE: f64 = 651.0;
/// The busiest a core is planned to be at a level: the rest is headroom
/// for a replica lost and for the tail latency, which climbs long before
/// a core is full (docs/performance.md: p99 5.89 ms at 38k/s, 0.90 ms at
/// 10k/s).
pub const UTILIZATION: f64 = 0.6;
pub const CORES_PER_REPLICA: f64 = 2.0;
/// Never fewer, so one replica can be lost or rolled.
pub const MIN_REPLICAS: u64 = 2;
/// Past this many visits per second at peak, the issue's rule: visits go
/// to an analytics store (ClickHouse) rather than PostgreSQL.
pub const ANALYTICS_STORE_VISITS_PER_S: f64 = 100_000.0;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// What the plan is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityModel {
    pub dau: f64,
    pub actions_per_user_per_day: f64,
    pub read_write_ratio: f64,
    pub peak_factor: f64,
    pub spike_factor: f64,
    pub redirects_per_core: f64,
    pub creates_per_core: f64,
    pub pg_writes_per_visit: f64,
    pub pg_writes_per_create: f64,
    pub pg_wal_bytes_per_visit: f64,
    pub pg_wal_bytes_per_create: f64,
    pub utilization: f64,
    pub cores_per_replica: f64,
    pub min_replicas: u64,
}

/// A field that makes no sense, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{flag}: {message}")]
pub struct CapacityError {
    pub flag: &'static str,
    pub message: String,
}

/// One traffic level's needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    /// `average`, `peak` or `viral`.
    pub level: &'static str,
    pub creates_per_s: f64,
    pub redirects_per_s: f64,
    pub cores: f64,
    pub replicas: u64,
    pub pg_rows_per_s: f64,
    pub pg_wal_bytes_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityPlan {
    pub model: CapacityModel,
    /// The DAU helper's lines, as a scenario run prints them.
    pub dau_arithmetic: String,
    pub levels: Vec<Level>,
    /// At the day's average rate.
    pub visits_per_day: f64,
    pub pg_rows_per_day: f64,
    pub pg_wal_bytes_per_day: f64,
    /// What this scale calls for beyond replicas.
    pub notes: Vec<String>,
}

impl CapacityModel {
    /// The defaults, for `dau` users.
    pub fn for_dau(dau: f64) -> Self {
        Self {
            dau,
            actions_per_user_per_day: ACTIONS_PER_USER_PER_DAY,
            read_write_ratio: READ_WRITE_RATIO,
            peak_factor: PEAK_FACTOR,
            spike_factor: SPIKE_FACTOR,
            redirects_per_core: REDIRECTS_PER_CORE,
            creates_per_core: CREATES_PER_CORE,
            pg_writes_per_visit: PG_WRITES_PER_VISIT,
            pg_writes_per_create: PG_WRITES_PER_CREATE,
            pg_wal_bytes_per_visit: PG_WAL_BYTES_PER_VISIT,
            pg_wal_bytes_per_create: PG_WAL_BYTES_PER_CREATE,
            utilization: UTILIZATION,
            cores_per_replica: CORES_PER_REPLICA,
            min_replicas: MIN_REPLICAS,
        }
    }

    fn dau_model(&self) -> Dau {
        Dau {
            users: self.dau,
            actions_per_user_per_day: self.actions_per_user_per_day,
            read_write_ratio: self.read_write_ratio,
            peak_factor: Some(self.peak_factor),
            spike_factor: Some(self.spike_factor),
        }
    }

    /// Checks every input and computes the plan.
    pub fn plan(&self) -> Result<CapacityPlan, CapacityError> {
        self.dau_model().check().map_err(|(field, message)| {
            let flag = match field {
                "users" => "dau",
                "actions_per_user_per_day" => "actions-per-user",
                "read_write_ratio" => "read-write-ratio",
                "peak_factor" => "peak-factor",
                _ => "spike-factor",
            };
            CapacityError { flag, message }
        })?;
        let positive = [
            ("redirects-per-core", self.redirects_per_core),
            ("creates-per-core", self.creates_per_core),
            ("cores-per-replica", self.cores_per_replica),
        ];
        for (flag, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(CapacityError {
                    flag,
                    message: format!("must be a positive number, got {value}"),
                });
            }
        }
        for (flag, value) in [
            ("pg-writes-per-visit", self.pg_writes_per_visit),
            ("pg-writes-per-create", self.pg_writes_per_create),
            ("pg-wal-per-visit", self.pg_wal_bytes_per_visit),
            ("pg-wal-per-create", self.pg_wal_bytes_per_create),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(CapacityError {
                    flag,
                    message: format!("must be zero or more, got {value}"),
                });
            }
        }
        if !(self.utilization > 0.0 && self.utilization <= 1.0) {
            return Err(CapacityError {
                flag: "utilization",
                message: format!(
                    "must be above 0 and at most 1 (0.6 = 60%), got {}",
                    self.utilization
                ),
            });
        }
        Ok(self.compute())
    }

    fn compute(&self) -> CapacityPlan {
        let dau = self.dau_model();
        let levels: Vec<Level> = [
            (Profile::Baseline, "average"),
            (Profile::Peak, "peak"),
            (Profile::Viral, "viral"),
        ]
        .into_iter()
        .filter_map(|(profile, level)| {
            let rates = dau.rates(profile).ok()?;
            Some(self.level(level, rates.writes, rates.reads))
        })
        .collect();
        let average = dau.rates(Profile::Baseline).unwrap_or(ProfileRates {
            writes: 0.0,
            reads: 0.0,
        });
        let visits_per_day = average.reads * SECONDS_PER_DAY;
        let pg_rows_per_day = (average.reads * self.pg_writes_per_visit
            + average.writes * self.pg_writes_per_create)
            * SECONDS_PER_DAY;
        let pg_wal_bytes_per_day = (average.reads * self.pg_wal_bytes_per_visit
            + average.writes * self.pg_wal_bytes_per_create)
            * SECONDS_PER_DAY;
        let notes = self.notes(&levels);
        CapacityPlan {
            model: self.clone(),
            dau_arithmetic: dau.explain(),
            levels,
            visits_per_day,
            pg_rows_per_day,
            pg_wal_bytes_per_day,
            notes,
        }
    }

    fn level(&self, level: &'static str, creates: f64, redirects: f64) -> Level {
        let cores = (redirects / self.redirects_per_core + creates / self.creates_per_core)
            / self.utilization;
        let replicas = ((cores / self.cores_per_replica).ceil() as u64).max(self.min_replicas);
        Level {
            level,
            creates_per_s: creates,
            redirects_per_s: redirects,
            cores,
            replicas,
            pg_rows_per_s: redirects * self.pg_writes_per_visit
                + creates * self.pg_writes_per_create,
            pg_wal_bytes_per_s: redirects * self.pg_wal_bytes_per_visit
                + creates * self.pg_wal_bytes_per_create,
        }
    }

    fn notes(&self, levels: &[Level]) -> Vec<String> {
        let mut notes = Vec::new();
        let at = |name: &str| levels.iter().find(|l| l.level == name);
        if let Some(peak) = at("peak") {
            if peak.redirects_per_s > ANALYTICS_STORE_VISITS_PER_S {
                notes.push(format!(
                    "peak visits {}/s > {}/s: write visits to an analytics store (ClickHouse), not PostgreSQL",
                    group(peak.redirects_per_s),
                    group(ANALYTICS_STORE_VISITS_PER_S)
                ));
            }
        }
        if let (Some(peak), Some(viral)) = (at("peak"), at("viral")) {
            if viral.replicas > peak.replicas {
                notes.push(format!(
                    "a viral spike needs {} replicas against {} at peak: autoscale on CPU, and let the gateway's limits shed the rest",
                    thousands(&viral.replicas.to_string()),
                    thousands(&peak.replicas.to_string())
                ));
            }
        }
        notes
    }
}

impl std::fmt::Display for CapacityPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        writeln!(f, "capacity plan for {} daily active users", group(m.dau))?;
        writeln!(f)?;
        writeln!(f, "model (flag: value)")?;
        let inputs = [
            ("actions-per-user", number(m.actions_per_user_per_day)),
            ("read-write-ratio", number(m.read_write_ratio)),
            ("peak-factor", number(m.peak_factor)),
            ("spike-factor", number(m.spike_factor)),
            (
                "redirects-per-core",
                format!("{}/s", group(m.redirects_per_core)),
            ),
            (
                "creates-per-core",
                format!("{}/s", group(m.creates_per_core)),
            ),
            ("pg-writes-per-visit", number(m.pg_writes_per_visit)),
            ("pg-writes-per-create", number(m.pg_writes_per_create)),
            (
                "pg-wal-per-visit",
                format!("{} bytes", number(m.pg_wal_bytes_per_visit)),
            ),
            (
                "pg-wal-per-create",
                format!("{} bytes", number(m.pg_wal_bytes_per_create)),
            ),
            ("utilization", format!("{}%", number(m.utilization * 100.0))),
            ("cores-per-replica", number(m.cores_per_replica)),
            ("min-replicas", m.min_replicas.to_string()),
        ];
        for (flag, value) in inputs {
            writeln!(f, "  --{flag:<22} {value}")?;
        }
        writeln!(f)?;
        writeln!(f, "traffic (the scenario files' dau: helper)")?;
        for line in self.dau_arithmetic.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f)?;
        write!(f, "{:<22}", "")?;
        for level in &self.levels {
            write!(f, "{:>14}", level.level)?;
        }
        writeln!(f)?;
        let rows: [(&str, Cell); 6] = [
            ("creates/s", |l| group(l.creates_per_s)),
            ("redirects/s", |l| group(l.redirects_per_s)),
            ("cores", |l| cores(l.cores)),
            ("replicas", |l| thousands(&l.replicas.to_string())),
            ("PostgreSQL rows/s", |l| group(l.pg_rows_per_s)),
            ("PostgreSQL WAL MB/s", |l| group(l.pg_wal_bytes_per_s / 1e6)),
        ];
        for (label, cell) in rows {
            write!(f, "{label:<22}")?;
            for level in &self.levels {
                write!(f, "{:>14}", cell(level))?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "per day at the average: {} visits, {} PostgreSQL rows, {} GB of WAL",
            group(self.visits_per_day),
            group(self.pg_rows_per_day),
            group(self.pg_wal_bytes_per_day / 1e9)
        )?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// How a row of the table shows a level.
type Cell = fn(&Level) -> String;

/// Whole numbers with thousands separators; below 10, two decimals.
fn group(value: f64) -> String {
    if value.abs() < 10.0 {
        return format!("{value:.2}");
    }
    let digits = thousands(&format!("{:.0}", value.abs()));
    if value < 0.0 {
        format!("-{digits}")
    } else {
        digits
    }
}

/// `1234567` as `1,234,567`.
fn thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Cores: two decimals below 10 (`0.01`, `1.27`), one above (`5,083.3`).
fn cores(value: f64) -> String {
    if value < 10.0 {
        return format!("{value:.2}");
    }
    let tenths = (value * 10.0).round();
    format!(
        "{}.{}",
        group((tenths / 10.0).trunc()),
        (tenths % 10.0) as u8
    )
}

/// A model input as given: no trailing zeros.
fn number(value: f64) -> String {
    format!("{value}")
}

#[cfg(test)]
mod tests;
