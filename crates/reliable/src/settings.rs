//! The platform's configuration: defaults < TOML file (`--config`) <
//! `RELIABLE_*` environment < flags. See README "Configuration".

use clap::Args;
use gateway::GatewayConfig;
use kit::config::ConfigError;
use kit::http::HttpConfig;
use notifier::{NotifierConfig, Secret, WebhookConfig};
use orders::OrdersConfig;
use serde::{Deserialize, Serialize};
use shortener::ShortenerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Public HTTP address.
    pub listen: SocketAddr,
    /// Operator console address (reserved for the console module).
    pub console_listen: SocketAddr,
    /// Where embedded state (SQLite files) lives.
    pub data_dir: PathBuf,
    /// PostgreSQL URL for `serve`; a secret, never logged.
    pub database_url: Option<String>,
    /// NATS server with JetStream for `serve --target orders,notifier`.
    pub nats_url: Option<String>,
    pub redis_url: Option<String>,
    /// The one webhook every order event is sent to (none by default).
    pub notify_webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature; a secret, never logged.
    pub notify_webhook_secret: Option<Secret>,
    /// Let the webhook reach loopback and private addresses (off: SSRF guard).
    pub notify_allow_private: bool,
    /// Log filter, e.g. `info` or `info,shortener=debug`.
    pub log: String,
    /// Time between readiness turning false and the listener closing, so
    /// load balancers notice before connections are refused.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub http: HttpConfig,
    pub shortener: ShortenerConfig,
    pub slo: crate::slo_live::SloConfig,
    pub orders: OrdersConfig,
    pub notifier: NotifierConfig,
    /// Routes, pools, limits of the API gateway (`[gateway]`).
    pub gateway: GatewayConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            console_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            nats_url: None,
            redis_url: None,
            notify_webhook_url: None,
            notify_webhook_secret: None,
            notify_allow_private: false,
            log: "info".to_string(),
            shutdown_grace: Duration::ZERO,
            http: HttpConfig::default(),
            shortener: ShortenerConfig::default(),
            slo: crate::slo_live::SloConfig::default(),
            orders: OrdersConfig::default(),
            notifier: NotifierConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

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
#[derive(Debug, Serialize)]
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

pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut config: Config = kit::config::load(file, overrides)?;
    // The scripts' short name for `gateway.anon_rate`.
    if let Ok(rate) = std::env::var("RELIABLE_RATE_LIMIT_ANON") {
        config.gateway.anon_rate = Some(rate);
    }
    if let Some(rate) = &config.gateway.anon_rate {
        rate.parse::<ratelimit::Quota>().map_err(|e| {
            ConfigError::invalid(
                "gateway.anon_rate (RELIABLE_RATE_LIMIT_ANON)",
                e.to_string(),
            )
        })?;
    }
    config.http.validate()?;
    config.shortener.validate()?;
    config.slo.validate()?;
    config.orders.validate()?;
    config.notifier.validate()?;
    config.gateway.validate()?;
    config.webhook()?;
    if config.log.trim().is_empty() {
        return Err(ConfigError::invalid("log", "must not be empty"));
    }
    Ok(config)
}

impl Config {
    /// The webhook channel from the `notify_*` keys, SSRF-checked.
    pub fn webhook(&self) -> Result<Option<WebhookConfig>, ConfigError> {
        WebhookConfig::from_settings(
            self.notify_webhook_url.as_deref(),
            self.notify_webhook_secret.as_ref(),
            self.notify_allow_private,
        )
    }
}
