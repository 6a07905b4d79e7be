//! Options of the canary controller (the `[canary]` table of the config
//! file, `RELIABLE_CANARY_*` in the environment).

use kit::config::{ConfigError, Secret};
use kit::storage::PoolConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// The SLO specs (a file or a directory) a canary's metrics must name
    /// (their objectives and latency thresholds are what the judge uses);
    /// none: the platform's own specs, built in.
    pub slo_specs: Option<PathBuf>,
    /// Prometheus base URL for specs without `metrics_source` (none: this
    /// process's own metrics, right when the targets run in `reliable up`).
    pub prometheus_url: Option<String>,
    /// A directory of canary specs (`*.yaml`) to run: a spec whose exact
    /// text has not run before is started, so committing a changed spec
    /// (GitOps) starts its canary. None: runs start only through the API.
    pub watch_dir: Option<PathBuf>,
    /// The API key the controller calls remote targets with: the gateway's
    /// admin API (`admin` scope) and the inference module's policy API
    /// (`models:admin`). A spec's `admin_key_env` names another variable
    /// instead (choose one outside `RELIABLE_CANARY_`, which is this
    /// section's).
    pub admin_key: Option<Secret>,
    /// How often `watch_dir` is read.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// The canary database's connection pool (`[canary.database]`).
    pub database: PoolConfig,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            slo_specs: None,
            prometheus_url: None,
            watch_dir: None,
            admin_key: None,
            watch_interval: Duration::from_secs(10),
            database: PoolConfig::with_max_connections(4),
        }
    }
}

impl CanaryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.slo_specs {
            if !path.exists() {
                return Err(ConfigError::invalid(
                    "canary.slo_specs",
                    format!("{} does not exist", path.display()),
                ));
            }
        }
        if let Some(url) = &self.prometheus_url {
            let ok = url::Url::parse(url)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::invalid(
                    "canary.prometheus_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.watch_interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "canary.watch_interval",
                "must be at least 1s",
            ));
        }
        self.database.validate("canary.database")
    }

    /// The Prometheus URL, parsed (validated already).
    pub fn prometheus(&self) -> Option<url::Url> {
        self.prometheus_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
    }
}
