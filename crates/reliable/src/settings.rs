//! The platform's configuration: defaults < TOML file (`--config`) <
//! `RELIABLE_*` environment < flags. See docs/configuration.md.
//!
//! The settings every module shares are written here once; each module's
//! section comes from its crate ([`kit::module::Module::Config`]) through
//! the registry (`registry.rs`), which expands [`platform_config`] into the
//! one [`Config`] struct. The `///` docs below are the user documentation:
//! `reliable config defaults --markdown` turns them into the reference page.

use clap::Args;
use kit::config::{Alias, ConfigError, Loaded, Secret};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Keys renamed since they were first published; still accepted, with a
/// warning at start-up.
pub const ALIASES: &[Alias] = &[
    Alias {
        old: "notify_webhook_url",
        new: "notifier.webhook_url",
    },
    Alias {
        old: "notify_webhook_secret",
        new: "notifier.webhook_secret",
    },
    Alias {
        old: "notify_allow_private",
        new: "notifier.allow_private",
    },
    // Settings several modules share, defined once under `[http]`.
    Alias {
        old: "shortener.trusted_proxies",
        new: "http.trusted_proxies",
    },
    Alias {
        old: "gateway.trusted_proxies",
        new: "http.trusted_proxies",
    },
    Alias {
        old: "gateway.max_request_body_bytes",
        new: "http.body_limit_bytes",
    },
    // The load scripts' short name for the anonymous limit.
    Alias {
        old: "rate_limit_anon",
        new: "gateway.anon_rate",
    },
];

/// Expands to the platform's [`Config`]: the shared settings below, then
/// one section per registered module (`$name: $module`).
macro_rules! platform_config {
    ($($name:ident: $module:ty),* $(,)?) => {
        /// The whole platform's configuration.
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields, default)]
        pub struct Config {
            /// Public HTTP address.
            pub listen: std::net::SocketAddr,
            /// Operator console address. On loopback anyone on the machine
            /// may read it; on any other address every request needs an API
            /// key with the `console:read` scope.
            pub console_listen: std::net::SocketAddr,
            /// Where embedded state lives: one SQLite file per module
            /// (`<module>.db`) in `up`, and the gateway's keys when it runs
            /// alone.
            pub data_dir: std::path::PathBuf,
            /// PostgreSQL for `serve` (`postgres://user:pass@host/db`); each
            /// module keeps its tables in a schema named after it.
            pub database_url: Option<kit::config::Secret>,
            /// A PostgreSQL read replica (a streaming standby, Kubernetes'
            /// `-ro` Service) for `serve`: the shortener reads redirect
            /// look-ups there while its lag is within
            /// `shortener.read_replica_max_lag`; everything else stays on
            /// `database_url`. A URL that names a primary works, with a
            /// warning (docs/operations/postgres.md).
            pub database_read_url: Option<kit::config::Secret>,
            /// NATS server with JetStream, for `serve` with orders or the
            /// notifier (`nats://host:4222`), or several servers of a
            /// cluster, comma-separated (`nats://n1:4222,nats://n2:4222`);
            /// the client connects and reconnects to any of them.
            pub nats_url: Option<kit::config::Secret>,
            /// Servers that keep a copy of every event in the JetStream
            /// stream (its consumers inherit it): 1 for a single NATS
            /// server, 3 on a three-node cluster, so a lost node loses no
            /// acknowledged event; 1 to 5. An existing stream is changed to
            /// this count at start where JetStream allows it (see
            /// docs/operations/nats.md).
            pub nats_stream_replicas: u8,
            /// Redis for the gateway's global rate limits and the LLM
            /// gateway's token budgets, in one of three forms:
            /// `redis://host:6379[/db]` (one server),
            /// `redis+sentinel://[user:pass@]h1:26379,h2:26379/MASTER_NAME[/db]`
            /// (Sentinel) or `redis+cluster://[user:pass@]h1:7000,h2:7001`
            /// (Cluster); a server in another mode than the form says stops
            /// the start (docs/operations/redis.md). Without it each replica
            /// limits on its own.
            pub redis_url: Option<kit::config::Secret>,
            /// Log filter, e.g. `info` or `info,shortener=debug`.
            pub log: String,
            /// Time between readiness turning false and the listener closing,
            /// so load balancers notice before connections are refused.
            #[serde(with = "humantime_serde")]
            #[schemars(with = "kit::config::reference::Duration")]
            pub shutdown_grace: std::time::Duration,
            /// HTTP settings of every module's server.
            pub http: kit::http::HttpConfig,
            /// TLS and mTLS of the listener and the shared HTTP client
            /// (see docs/operations/tls.md).
            pub tls: kit::tls::TlsConfig,
            /// Live SLO evaluation (`GET /api/v1/slo/status`).
            pub slo: crate::slo_live::SloConfig,
            /// The operator console on `console_listen` (docs/modules/console.md).
            pub console: console::ConsoleConfig,
            /// Synthetic probes (HTTP, TCP, DNS) and their metrics
            /// (see docs/operations/status-page.md).
            pub probes: probe::ProbesConfig,
            /// The public status page (`GET /status`) and incident notes.
            pub status: probe::StatusConfig,
            /// The change timeline's bounds (docs/operations/changes.md).
            pub changes: changes::ChangesConfig,
            /// The platform's own cost measurement and its prices
            /// (`GET /api/v1/cost/allocation`, docs/operations/cost.md).
            pub cost: crate::cost_live::CostConfig,
            $(
                #[doc = concat!("The `", stringify!($name), "` module.")]
                pub $name: <$module as kit::module::Module>::Config,
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
                    console_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8081)),
                    data_dir: std::path::PathBuf::from("./data"),
                    database_url: None,
                    database_read_url: None,
                    nats_url: None,
                    nats_stream_replicas: 1,
                    redis_url: None,
                    log: "info".to_string(),
                    shutdown_grace: std::time::Duration::ZERO,
                    http: Default::default(),
                    tls: Default::default(),
                    slo: Default::default(),
                    console: Default::default(),
                    probes: Default::default(),
                    status: Default::default(),
                    changes: Default::default(),
                    cost: Default::default(),
                    $( $name: Default::default(), )*
                }
            }
        }

        /// Every registered module, in registry order.
        pub const MODULES: &[crate::registry::Entry] = &[
            $(
                crate::registry::Entry {
                    declaration: <$module as kit::module::Module>::DECLARATION,
                    start: |config, context| {
                        crate::registry::start::<$module>(config.$name.clone(), context)
                    },
                    openapi: <$module as kit::module::Module>::openapi,
                    front_openapi: <$module as kit::module::Module>::front_openapi,
                    configured: |config| kit::module::ModuleConfig::configured(&config.$name),
                    http_limits: |config| kit::module::ModuleConfig::http_limits(&config.$name),
                },
            )*
        ];

        impl Config {
            /// Every module section's own checks, before anything opens.
            pub(crate) fn validate_modules(&self) -> Result<(), kit::config::ConfigError> {
                $( kit::module::ModuleConfig::validate(&self.$name)?; )*
                Ok(())
            }
        }
    };
}
pub(crate) use platform_config;

pub use crate::registry::Config;

/// Flags shared by `up` and `serve`; each overrides its config key.
#[derive(Debug, Args)]
pub struct CommonFlags {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Public address (key `listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Embedded state directory (key `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log filter (key `log`).
    #[arg(long)]
    pub log: Option<String>,
}

/// The flags as a config layer; unset flags are left out.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
}

impl CommonFlags {
    pub fn into_overrides(self, database_url: Option<String>) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            log: self.log,
            database_url,
        }
    }
}

/// Loads and validates the configuration; nothing is opened yet.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Loaded<Config>, ConfigError> {
    let loaded: Loaded<Config> = kit::config::load(file, overrides, ALIASES)?;
    loaded.config.validate()?;
    Ok(loaded)
}

/// The flags of a command that works on the platform's stores (`keys`,
/// `changes`, `status`, `drill outage`): where they are.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreFlags {
    /// TOML configuration file (for `data_dir` and `database_url`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Embedded state directory (key `data_dir`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (prefer RELIABLE_DATABASE_URL: flags show in `ps`).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

impl StoreFlags {
    /// The configuration: the file, the environment, then these flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let overrides = CommonFlags {
            config: None,
            listen: None,
            data_dir: self.data_dir.clone(),
            log: None,
        }
        .into_overrides(self.database_url.clone());
        load(self.config.as_deref(), &overrides).map(|loaded| loaded.config)
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.log.trim().is_empty() {
            return Err(ConfigError::invalid("log", "must not be empty"));
        }
        if let Some(url) = &self.database_url {
            check_url("database_url", url, &["postgres", "postgresql", "sqlite"])?;
        }
        if !(1..=5).contains(&self.nats_stream_replicas) {
            return Err(ConfigError::invalid(
                "nats_stream_replicas",
                format!(
                    "must be from 1 to 5 (JetStream keeps at most 5 copies), got {}",
                    self.nats_stream_replicas
                ),
            ));
        }
        if let Some(url) = &self.database_read_url {
            check_url("database_read_url", url, &["postgres", "postgresql"])?;
        }
        self.http.validate()?;
        self.tls.validate()?;
        self.slo.validate()?;
        self.console.validate()?;
        self.probes.validate()?;
        self.status.validate()?;
        self.changes.validate()?;
        self.cost.validate()?;
        self.validate_modules()
    }

    /// The database URL as given, for the adapters (never logged).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_ref().map(Secret::expose)
    }

    /// Where the gateway keeps its API keys in this mode (`embedded`: `up`):
    /// the database URL in `serve` (schema `gateway` on PostgreSQL),
    /// else its own file `gateway.db` in the data dir. `reliable keys`,
    /// the console, the status page and the cost API read them there.
    pub fn gateway_keys_url(&self, embedded: bool) -> String {
        match (embedded, self.database_url()) {
            (false, Some(url)) => url.to_string(),
            _ => format!("sqlite://{}", self.data_dir.join("gateway.db").display()),
        }
    }

    /// The configured database when the platform's own stores (change
    /// timeline, alert history, probe results) can share it: PostgreSQL,
    /// where each store has a schema of its own. A SQLite file has no
    /// schemas, and every store's migrations would meet in one
    /// `_sqlx_migrations` table (the second store to migrate found a
    /// "migration 1" that was not its own and refused to start), so with a
    /// SQLite URL those stores keep their own files in the data dir.
    pub fn shared_database_url(&self) -> Option<&str> {
        self.database_url().filter(|url| {
            matches!(
                kit::storage::Backend::of(url),
                Ok(kit::storage::Backend::Postgres)
            )
        })
    }
}

/// A URL setting must parse and use one of `schemes`; the message never
/// repeats the URL (it may hold a password).
fn check_url(key: &str, url: &Secret, schemes: &[&str]) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url.expose())
        .map_err(|e| ConfigError::invalid(key, format!("not a URL: {e}")))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "scheme `{}` is not one of {}",
                parsed.scheme(),
                schemes.join(", ")
            ),
        ));
    }
    Ok(())
}
