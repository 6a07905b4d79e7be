//! Options of the LLM gateway (the `[llm]` table of the config file,
//! `RELIABLE_LLM_*` in the environment).
//!
//! The quickest start is one variable, `RELIABLE_LLM_BACKEND_URL`: one
//! backend whose models are discovered from its `/v1/models`. Everything
//! else (several backends, public model names with weighted and
//! prioritised deployments, fallbacks, per-key limits) is written in the
//! config file, where it is reviewed like code.

use kit::config::{ConfigError, Secret};
use resilience::config::{BreakerConfig, RetryConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The backend name `backend_url` is registered under.
pub const DEFAULT_BACKEND: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// One OpenAI-compatible base URL (`http://127.0.0.1:8000/v1`), the
    /// quickest way to start: it becomes the backend `default`, and every
    /// model its `/v1/models` lists is served under its own name, refreshed
    /// every `discovery_interval`.
    pub backend_url: Option<String>,
    /// The API key sent to `backend_url` as `Authorization: Bearer`
    /// (`RELIABLE_LLM_BACKEND_API_KEY`, or a file with `_FILE`).
    pub backend_api_key: Option<Secret>,
    /// How often discovered model lists are refreshed.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub discovery_interval: Duration,
    /// Backends by name (`[llm.backends.vllm-a]`).
    pub backends: BTreeMap<String, BackendConfig>,
    /// Public model names and where they are served (`[llm.models.chat-small]`).
    pub models: BTreeMap<String, ModelConfig>,
    /// Limits of named API keys (`[llm.keys.team-a]`); a key not listed
    /// gets `default_key`. Fields a listed key leaves out come from
    /// `default_key`.
    pub keys: BTreeMap<String, KeyPolicy>,
    /// Limits of every key not listed in `keys`.
    pub default_key: KeyPolicy,
    /// Serve requests that carry no API key (accounted as `anonymous`,
    /// under `default_key`). Off: such requests get 401. The key is
    /// checked by the gateway in front, which names the caller.
    pub allow_anonymous: bool,
    /// Timeouts of a backend call; a model may override them.
    pub timeouts: Timeouts,
    /// Largest `max_tokens` a request may ask of a model without a cap of
    /// its own; also what a request that asks none is given.
    pub max_tokens: u64,
    /// Largest request body, in bytes (413 beyond).
    pub max_request_body_bytes: usize,
    /// Largest non-streamed backend answer, and largest single streamed
    /// event, in bytes (502 or a stream error beyond).
    pub max_response_bytes: usize,
    /// Attempts after the first (fallbacks), bounded by a retry budget
    /// shared by every request.
    pub retry: RetryConfig,
    /// Per-deployment circuit breaker.
    pub breaker: BreakerConfig,
    /// Active health checks of the backends (`GET <base>/models`).
    pub health: HealthConfig,
    /// Fraction of requests (0 to 1) whose prompt and answer are logged,
    /// redacted to their shape and lengths, at debug level. Bodies are
    /// never logged otherwise.
    pub debug_sample: f64,
    /// Usage records held in memory while the database is slow or away.
    pub usage_queue: usize,
    /// The usage database's connection pool (`[llm.database]`).
    pub database: kit::storage::PoolConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            backend_url: None,
            backend_api_key: None,
            discovery_interval: Duration::from_secs(30),
            backends: BTreeMap::new(),
            models: BTreeMap::new(),
            keys: BTreeMap::new(),
            default_key: KeyPolicy::default(),
            allow_anonymous: false,
            timeouts: Timeouts::default(),
            max_tokens: 4096,
            max_request_body_bytes: 4 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            retry: RetryConfig {
                max_retries: 2,
                ..RetryConfig::default()
            },
            breaker: BreakerConfig::default(),
            health: HealthConfig::default(),
            debug_sample: 0.0,
            usage_queue: 100_000,
            database: kit::storage::PoolConfig::with_max_connections(4),
        }
    }
}

/// One OpenAI-compatible server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Its OpenAI base URL, with the path: `http://vllm:8000/v1`,
    /// `https://api.openai.com/v1`.
    pub url: String,
    /// Name of an environment variable holding its API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A file holding its API key (a mounted Secret).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Headers sent with every call (`OpenAI-Organization`, ...). Not for
    /// secrets: those go in `api_key_env` or `api_key_file`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// PEM bundle of CAs trusted besides the public ones.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// List its models from `/v1/models` and serve each under its own
    /// name (as `backend_url` does).
    #[serde(default)]
    pub discover: bool,
}

/// A public model name and the deployments that serve it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub deployments: Vec<DeploymentConfig>,
    /// Other names clients may use for it.
    pub aliases: Vec<String>,
    /// Largest `max_tokens` a request may ask (400 beyond), and what a
    /// request that asks none is given; the module's `max_tokens` if unset.
    pub max_tokens: Option<u64>,
    /// Models tried, in order, when every deployment of this one failed
    /// before the first token.
    pub fallbacks: Vec<String>,
    /// Its own timeouts; unset fields take the module's.
    pub timeouts: Option<TimeoutOverrides>,
}

/// One backend serving a public model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A name from `[llm.backends]`.
    pub backend: String,
    /// The model's name on that backend; the public name if unset.
    #[serde(default)]
    pub model: Option<String>,
    /// Share of traffic within its priority, relative to the others.
    #[serde(default = "one")]
    pub weight: u32,
    /// Lower first: a priority gets traffic only when every deployment of
    /// the lower ones is unavailable (breaker open, health check failed).
    #[serde(default)]
    pub priority: u32,
}

fn one() -> u32 {
    1
}

/// What a key may spend. Unset: unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KeyPolicy {
    /// Requests per minute (on the shared rate limiter: Redis when
    /// configured, so it holds across replicas).
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute, prompt and completion together.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC calendar month.
    pub tokens_per_month: Option<u64>,
    /// Public model names (or aliases) it may call; empty: all.
    pub models: Vec<String>,
}

impl KeyPolicy {
    /// `self`, with what it leaves out taken from `default`.
    pub fn or(&self, default: &KeyPolicy) -> KeyPolicy {
        KeyPolicy {
            requests_per_minute: self.requests_per_minute.or(default.requests_per_minute),
            tokens_per_minute: self.tokens_per_minute.or(default.tokens_per_minute),
            tokens_per_day: self.tokens_per_day.or(default.tokens_per_day),
            tokens_per_month: self.tokens_per_month.or(default.tokens_per_month),
            models: if self.models.is_empty() {
                default.models.clone()
            } else {
                self.models.clone()
            },
        }
    }
}

/// The three clocks of a backend call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// From sending the request to the first token (the first streamed
    /// event); a backend that misses it is abandoned and the next one
    /// tried. Non-streamed calls wait for the whole answer (`total`).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub first_token: Duration,
    /// Longest silence between two streamed events; the stream then ends
    /// with an error event.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// Longest whole call.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_token: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(600),
        }
    }
}

/// A model's own timeouts; unset fields take the module's.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutOverrides {
    #[schemars(with = "Option<kit::config::reference::Duration>")]
    #[serde(with = "humantime_serde")]
    pub first_token: Option<Duration>,
    #[schemars(with = "Option<kit::config::reference::Duration>")]
    #[serde(with = "humantime_serde")]
    pub idle: Option<Duration>,
    #[schemars(with = "Option<kit::config::reference::Duration>")]
    #[serde(with = "humantime_serde")]
    pub total: Option<Duration>,
}

impl Timeouts {
    pub fn with(self, overrides: Option<TimeoutOverrides>) -> Timeouts {
        let o = overrides.unwrap_or_default();
        Timeouts {
            first_token: o.first_token.unwrap_or(self.first_token),
            idle: o.idle.unwrap_or(self.idle),
            total: o.total.unwrap_or(self.total),
        }
    }
}

/// Active health checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Zero turns active checks off (breakers still eject).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest wait for a backend's `/models` answer (health check and
    /// discovery).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Names of backends, models and keys: what may become a metric label.
fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("`{name}`: 1 to 128 characters of letters, digits and -_.:/@"),
        ))
    }
}

/// The largest per-minute or per-period count the limiter takes.
const MAX_RATE: u64 = 1_000_000;

impl LlmConfig {
    /// True when there is something to serve: `reliable up` starts the
    /// module only then.
    pub fn has_backends(&self) -> bool {
        self.backend_url.is_some() || !self.backends.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.backend_url {
            crate::backend::BackendUrl::parse(url)
                .map_err(|e| ConfigError::invalid("llm.backend_url", e.to_string()))?;
            if self.backends.contains_key(DEFAULT_BACKEND) {
                return Err(ConfigError::invalid(
                    "llm.backends.default",
                    "`default` is the name of `backend_url`'s backend; pick another",
                ));
            }
        }
        for (name, backend) in &self.backends {
            let key = format!("llm.backends.{name}");
            check_name(&key, name)?;
            crate::backend::BackendUrl::parse(&backend.url)
                .map_err(|e| ConfigError::invalid(&format!("{key}.url"), e.to_string()))?;
            if backend.api_key_env.is_some() && backend.api_key_file.is_some() {
                return Err(ConfigError::invalid(
                    &key,
                    "set api_key_env or api_key_file, not both",
                ));
            }
            for (header, value) in &backend.headers {
                crate::backend::extra_header(header, value).map_err(|e| {
                    ConfigError::invalid(&format!("{key}.headers.{header}"), e.to_string())
                })?;
            }
        }
        let mut public: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, model) in &self.models {
            let key = format!("llm.models.{name}");
            check_name(&key, name)?;
            for alias in std::iter::once(name).chain(&model.aliases) {
                check_name(&format!("{key}.aliases"), alias)?;
                if let Some(other) = public.insert(alias, name) {
                    return Err(ConfigError::invalid(
                        &key,
                        format!("`{alias}` is already a name of model `{other}`"),
                    ));
                }
            }
            if model.deployments.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{key}.deployments"),
                    "a model needs at least one deployment",
                ));
            }
            for (i, deployment) in model.deployments.iter().enumerate() {
                let dkey = format!("{key}.deployments[{i}]");
                let known = self.backends.contains_key(&deployment.backend)
                    || (deployment.backend == DEFAULT_BACKEND && self.backend_url.is_some());
                if !known {
                    return Err(ConfigError::invalid(
                        &format!("{dkey}.backend"),
                        format!("no backend named `{}`", deployment.backend),
                    ));
                }
                if deployment.weight == 0 {
                    return Err(ConfigError::invalid(
                        &format!("{dkey}.weight"),
                        "must be above zero",
                    ));
                }
                if let Some(m) = &deployment.model {
                    if m.is_empty() || m.len() > 256 {
                        return Err(ConfigError::invalid(
                            &format!("{dkey}.model"),
                            "1 to 256 characters",
                        ));
                    }
                }
            }
            if model.max_tokens == Some(0) {
                return Err(ConfigError::invalid(
                    &format!("{key}.max_tokens"),
                    "must be above zero",
                ));
            }
        }
        for (name, model) in &self.models {
            for fallback in &model.fallbacks {
                if !public.contains_key(fallback.as_str()) || public[fallback.as_str()] == name {
                    return Err(ConfigError::invalid(
                        &format!("llm.models.{name}.fallbacks"),
                        format!("`{fallback}` is not another configured model"),
                    ));
                }
            }
        }
        for (name, policy) in &self.keys {
            check_name(&format!("llm.keys.{name}"), name)?;
            policy.validate(&format!("llm.keys.{name}"))?;
        }
        self.default_key.validate("llm.default_key")?;
        let timeouts = [
            ("llm.timeouts.first_token", self.timeouts.first_token),
            ("llm.timeouts.idle", self.timeouts.idle),
            ("llm.timeouts.total", self.timeouts.total),
            ("llm.discovery_interval", self.discovery_interval),
            ("llm.health.timeout", self.health.timeout),
        ];
        for (key, value) in timeouts {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be above zero"));
            }
        }
        let sizes = [
            ("llm.max_tokens", self.max_tokens as usize),
            ("llm.max_request_body_bytes", self.max_request_body_bytes),
            ("llm.max_response_bytes", self.max_response_bytes),
            ("llm.usage_queue", self.usage_queue),
        ];
        for (key, value) in sizes {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be above zero"));
            }
        }
        if !(0.0..=1.0).contains(&self.debug_sample) {
            return Err(ConfigError::invalid(
                "llm.debug_sample",
                "a fraction from 0 to 1",
            ));
        }
        self.database.validate("llm.database")?;
        Ok(())
    }
}

impl KeyPolicy {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let limits = [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ];
        for (field, value) in limits {
            if let Some(v) = value {
                if v == 0 || v > MAX_RATE {
                    return Err(ConfigError::invalid(
                        &format!("{key}.{field}"),
                        format!("from 1 to {MAX_RATE}"),
                    ));
                }
            }
        }
        for (field, value) in [
            ("tokens_per_day", self.tokens_per_day),
            ("tokens_per_month", self.tokens_per_month),
        ] {
            if value == Some(0) {
                return Err(ConfigError::invalid(
                    &format!("{key}.{field}"),
                    "must be above zero (leave it out for no budget)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_model(deployments: Vec<DeploymentConfig>) -> LlmConfig {
        let mut config = LlmConfig::default();
        config.backends.insert(
            "a".into(),
            BackendConfig {
                url: "http://127.0.0.1:9/v1".into(),
                api_key_env: None,
                api_key_file: None,
                headers: BTreeMap::new(),
                ca_file: None,
                discover: false,
            },
        );
        config.models.insert(
            "chat".into(),
            ModelConfig {
                deployments,
                ..ModelConfig::default()
            },
        );
        config
    }

    fn deployment(backend: &str) -> DeploymentConfig {
        DeploymentConfig {
            backend: backend.into(),
            model: None,
            weight: 1,
            priority: 0,
        }
    }

    #[test]
    fn the_defaults_validate_and_serve_nothing() {
        let config = LlmConfig::default();
        config.validate().expect("valid");
        assert!(!config.has_backends());
    }

    #[test]
    fn a_model_must_name_a_known_backend() {
        with_model(vec![deployment("a")]).validate().expect("valid");
        let error = with_model(vec![deployment("b")])
            .validate()
            .expect_err("unknown backend");
        assert!(
            error.to_string().contains("deployments[0].backend"),
            "{error}"
        );
        let error = with_model(vec![]).validate().expect_err("no deployment");
        assert!(error.to_string().contains("deployments"), "{error}");
    }

    #[test]
    fn names_aliases_and_fallbacks_are_checked() {
        let mut config = with_model(vec![deployment("a")]);
        config.models.get_mut("chat").expect("chat").aliases = vec!["chat".into()];
        assert!(config.validate().is_err(), "an alias equal to a name");
        let mut config = with_model(vec![deployment("a")]);
        config.models.get_mut("chat").expect("chat").fallbacks = vec!["other".into()];
        assert!(config.validate().is_err(), "an unknown fallback");
        let mut config = with_model(vec![deployment("a")]);
        config.models.get_mut("chat").expect("chat").fallbacks = vec!["chat".into()];
        assert!(config.validate().is_err(), "a model falling back on itself");
        let mut config = with_model(vec![deployment("a")]);
        config
            .backends
            .insert("bad name".into(), config.backends["a"].clone());
        assert!(config.validate().is_err(), "a name with a space");
    }

    #[test]
    fn limits_must_be_usable() {
        let mut config = LlmConfig::default();
        config.default_key.tokens_per_minute = Some(0);
        assert!(config.validate().is_err());
        config.default_key.tokens_per_minute = Some(MAX_RATE + 1);
        assert!(config.validate().is_err());
        config.default_key.tokens_per_minute = Some(1000);
        config.default_key.tokens_per_day = Some(0);
        assert!(config.validate().is_err());
    }

    #[test]
    fn a_listed_key_inherits_what_it_leaves_out() {
        let default = KeyPolicy {
            requests_per_minute: Some(60),
            tokens_per_minute: Some(1000),
            tokens_per_day: None,
            tokens_per_month: Some(1_000_000),
            models: vec!["chat".into()],
        };
        let own = KeyPolicy {
            tokens_per_minute: Some(5000),
            ..KeyPolicy::default()
        };
        let merged = own.or(&default);
        assert_eq!(merged.requests_per_minute, Some(60));
        assert_eq!(merged.tokens_per_minute, Some(5000));
        assert_eq!(merged.tokens_per_month, Some(1_000_000));
        assert_eq!(merged.models, vec!["chat".to_string()]);
    }
}
