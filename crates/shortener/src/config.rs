//! Options of the shortener module (the `[shortener]` table of the config
//! file, `RELIABLE_SHORTENER_*` in the environment).

use kit::config::ConfigError;
use kit::storage::PoolConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ShortenerConfig {
    /// Public base URL of short links (e.g. `https://sho.rt`); defaults to
    /// `http://` + the listen address.
    pub base_url: Option<String>,
    /// Accept targets whose host is a literal loopback, private,
    /// link-local or other non-public address, or `localhost` (default
    /// true, so local use works). Turn it off on a public shortener, so no
    /// one can send its visitors into their own network (routers, cloud
    /// metadata, admin consoles on localhost). Host names are never
    /// resolved: the browser fetches the target, not the shortener.
    pub allow_private_targets: bool,
    /// Length of generated slugs (4 to 32).
    pub slug_length: usize,
    /// Links kept in the hot-slug cache.
    pub cache_capacity: u64,
    /// Upper bound on how long a cached link lives; invalidation on change
    /// is immediate, this only bounds staleness if a change notification
    /// from another replica is lost.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// `Cache-Control: max-age` sent with redirects of links that cannot
    /// run out of visits (capped at the time left before expiry); `0s`
    /// (the default) sends `no-store`, since any link can be edited.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub redirect_max_age: Duration,
    /// Store client addresses with the host part zeroed (default true).
    pub anonymize_ips: bool,
    /// Peers whose `X-Forwarded-For` names the visitor. Not a key of its
    /// own: the module takes the shared `http.trusted_proxies` at start
    /// (tests set it in code). Empty believes no one.
    #[serde(skip)]
    pub trusted_proxies: kit::forwarded::TrustedProxies,
    /// Whether answers carry kit's security headers (a redirect only
    /// `Referrer-Policy`). Not a key of its own: the module takes the
    /// shared `http.security_headers` at start.
    #[serde(skip)]
    pub security_headers: bool,
    /// Visits written per database transaction: the writer flushes as
    /// soon as this many wait (else every `visit_flush_interval`). Each
    /// flush costs a fixed round of thread wake-ups and file I/O, so at
    /// high rates larger batches cost less CPU a visit; the crash window
    /// stays one flush interval.
    pub visit_batch_size: usize,
    /// Longest time a visit waits in memory before it is written.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub visit_flush_interval: Duration,
    /// Visits buffered in memory before redirects wait for the writer.
    pub visit_buffer: usize,
    /// How long the final flush may retry at shutdown.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub visit_shutdown_timeout: Duration,
    /// How long visits are kept, e.g. `90d`; none (the default) keeps
    /// them forever. On PostgreSQL visits are partitioned by day and
    /// whole day partitions are dropped once they end before now minus
    /// this (so a visit is kept up to one day longer); on SQLite expired
    /// rows are deleted. Checked at start and hourly. At least `1d`.
    #[schemars(with = "Option<kit::config::reference::Duration>")]
    #[serde(with = "humantime_serde")]
    pub visit_retention: Option<Duration>,
    /// The link database's connection pool (`[shortener.database]`).
    pub database: PoolConfig,
    /// With a read replica (`database_read_url`): the most its replay may
    /// lag behind the primary for redirect look-ups to be read there.
    /// Past it they go back to the primary, counted in
    /// `shortener_read_replica_fallbacks_total{reason="lag"}`. A disabled
    /// or deleted link can redirect for at most this plus
    /// `read_replica_check_interval` (see docs/operations/postgres.md).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub read_replica_max_lag: Duration,
    /// How often the read replica's lag is measured (a query on the
    /// primary and one on the replica); below `read_replica_max_lag`.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub read_replica_check_interval: Duration,
}

/// Shortest `visit_retention`: partitions are days.
pub const MIN_VISIT_RETENTION: Duration = Duration::from_secs(86_400);
/// Longest `visit_retention` (100 years), so the cutoff stays a valid time.
pub const MAX_VISIT_RETENTION: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Default for ShortenerConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            allow_private_targets: true,
            slug_length: 7,
            cache_capacity: 100_000,
            cache_ttl: Duration::from_secs(300),
            redirect_max_age: Duration::ZERO,
            anonymize_ips: true,
            trusted_proxies: Default::default(),
            security_headers: kit::http::HttpConfig::default().security_headers,
            visit_batch_size: 4096,
            visit_flush_interval: Duration::from_secs(1),
            visit_buffer: 65_536,
            visit_shutdown_timeout: Duration::from_secs(10),
            visit_retention: None,
            database: PoolConfig::with_max_connections(16),
            read_replica_max_lag: Duration::from_secs(2),
            read_replica_check_interval: Duration::from_millis(250),
        }
    }
}

impl ShortenerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(base) = &self.base_url {
            let ok = url::Url::parse(base)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError::invalid(
                    "shortener.base_url",
                    "must be an absolute http(s) URL",
                ));
            }
        }
        if !(4..=32).contains(&self.slug_length) {
            return Err(ConfigError::invalid(
                "shortener.slug_length",
                "must be between 4 and 32",
            ));
        }
        if self.visit_batch_size == 0 {
            return Err(ConfigError::invalid(
                "shortener.visit_batch_size",
                "must be above zero",
            ));
        }
        if self.visit_flush_interval.is_zero() {
            return Err(ConfigError::invalid(
                "shortener.visit_flush_interval",
                "must be above zero",
            ));
        }
        if self.visit_buffer == 0 {
            return Err(ConfigError::invalid(
                "shortener.visit_buffer",
                "must be above zero",
            ));
        }
        if self.cache_ttl.is_zero() {
            return Err(ConfigError::invalid(
                "shortener.cache_ttl",
                "must be above zero",
            ));
        }
        if let Some(retention) = self.visit_retention {
            if !(MIN_VISIT_RETENTION..=MAX_VISIT_RETENTION).contains(&retention) {
                return Err(ConfigError::invalid(
                    "shortener.visit_retention",
                    "must be between 1d and 100y (unset keeps visits forever)",
                ));
            }
        }
        self.database.validate("shortener.database")?;
        if self.read_replica_max_lag.is_zero() {
            return Err(ConfigError::invalid(
                "shortener.read_replica_max_lag",
                "must be above zero",
            ));
        }
        if self.read_replica_check_interval.is_zero()
            || self.read_replica_check_interval >= self.read_replica_max_lag
        {
            return Err(ConfigError::invalid(
                "shortener.read_replica_check_interval",
                "must be above zero and below shortener.read_replica_max_lag",
            ));
        }
        Ok(())
    }

    /// The read replica's bound and measurement interval.
    pub fn replica_settings(&self) -> kit::storage::ReplicaSettings {
        kit::storage::ReplicaSettings {
            max_lag: self.read_replica_max_lag,
            check_interval: self.read_replica_check_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retention(retention: Option<Duration>) -> Result<(), ConfigError> {
        ShortenerConfig {
            visit_retention: retention,
            ..ShortenerConfig::default()
        }
        .validate()
    }

    #[test]
    fn visit_retention_is_unset_or_between_a_day_and_a_century() {
        assert!(with_retention(None).is_ok());
        assert!(with_retention(Some(Duration::from_secs(90 * 86_400))).is_ok());
        assert!(with_retention(Some(MIN_VISIT_RETENTION)).is_ok());
        for bad in [
            Duration::ZERO,
            Duration::from_secs(3600),
            MAX_VISIT_RETENTION + Duration::from_secs(1),
        ] {
            let error = with_retention(Some(bad)).expect_err("refused");
            assert!(
                error.to_string().contains("shortener.visit_retention"),
                "{error}"
            );
        }
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Platform {
        #[serde(default)]
        shortener: ShortenerConfig,
    }

    #[test]
    fn visit_retention_reads_from_its_environment_name() {
        let load = |vars: Vec<(String, String)>| {
            kit::config::load_from::<Platform, _>(
                None,
                &std::collections::BTreeMap::<String, String>::new(),
                &[],
                vars,
            )
        };
        let unset = load(vec![]).expect("defaults");
        assert_eq!(unset.config.shortener.visit_retention, None);
        let set = load(vec![(
            "RELIABLE_SHORTENER_VISIT_RETENTION".into(),
            "90d".into(),
        )])
        .expect("90d");
        assert_eq!(
            set.config.shortener.visit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert!(load(vec![(
            "RELIABLE_SHORTENER_VISIT_RETENTION".into(),
            "forever".into()
        )])
        .is_err());
    }
}
