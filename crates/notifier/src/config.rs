//! Options of the notifier (the `[notifier]` table of the config file,
//! `RELIABLE_NOTIFIER_*` in the environment), its webhook channel included
//! (`notifier.webhook_url`, `notifier.webhook_secret`,
//! `notifier.allow_private`; formerly the top-level `notify_*` keys).

use crate::target::WebhookTarget;
use kit::config::ConfigError;
use kit::storage::PoolConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use kit::config::Secret;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Name of the durable consumer; replicas with one name share the work.
    pub consumer: String,
    /// Events handled at once by one process.
    pub concurrency: usize,
    /// Deliveries of one event before it goes to the dead-letter store.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles per attempt, with jitter.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest delay between attempts.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// One webhook POST, connection included.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// Subjects sent to the webhook (e.g. `orders.created`); empty: all.
    pub webhook_events: Vec<String>,
    /// Also write each notification as a log line.
    pub log_channel: bool,
    /// JetStream only: a delivery not acked this long (the worker died)
    /// is delivered again. Applies when the durable consumer is created.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// The one webhook every order event is sent to (none by default).
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature (`X-Reliable-Signature`);
    /// a secret, never logged. Required with `webhook_url`.
    pub webhook_secret: Option<Secret>,
    /// Let the webhook reach loopback and private addresses (off: the SSRF
    /// guard refuses them).
    pub allow_private: bool,
    /// The notification database's connection pool (`[notifier.database]`).
    pub database: PoolConfig,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            consumer: "notifier".into(),
            concurrency: 32,
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            webhook_timeout: Duration::from_secs(5),
            webhook_events: Vec::new(),
            log_channel: true,
            ack_wait: Duration::from_secs(30),
            webhook_url: None,
            webhook_secret: None,
            allow_private: false,
            database: PoolConfig::with_max_connections(16),
        }
    }
}

impl NotifierConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let consumer_ok = !self.consumer.is_empty()
            && self.consumer.len() <= 64
            && self
                .consumer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !consumer_ok {
            return Err(ConfigError::invalid(
                "notifier.consumer",
                "must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if !(1..=1024).contains(&self.concurrency) {
            return Err(ConfigError::invalid(
                "notifier.concurrency",
                "must be 1..=1024",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "notifier.max_attempts",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("notifier.backoff_base", self.backoff_base),
            ("notifier.backoff_max", self.backoff_max),
            ("notifier.webhook_timeout", self.webhook_timeout),
            ("notifier.ack_wait", self.ack_wait),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be above zero"));
            }
        }
        self.webhook()?;
        self.database.validate("notifier.database")?;
        Ok(())
    }

    /// The webhook channel from the `webhook_*` keys, SSRF-checked.
    pub fn webhook(&self) -> Result<Option<WebhookConfig>, ConfigError> {
        WebhookConfig::from_settings(
            self.webhook_url.as_deref(),
            self.webhook_secret.as_ref(),
            self.allow_private,
        )
    }
}

/// The one webhook channel configured by environment.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub target: WebhookTarget,
    pub secret: Secret,
    /// Whether non-public addresses may be reached (tests, local setups).
    pub allow_private: bool,
}

impl WebhookConfig {
    /// From the `notifier.webhook_*` keys: no URL means no webhook channel; a
    /// URL needs a secret and must pass the SSRF check.
    pub fn from_settings(
        url: Option<&str>,
        secret: Option<&Secret>,
        allow_private: bool,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let target = WebhookTarget::parse(url.trim(), allow_private)
            .map_err(|e| ConfigError::invalid("notifier.webhook_url", e.to_string()))?;
        let secret = secret
            .filter(|s| !s.expose().is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "notifier.webhook_secret",
                    "is required with a webhook URL (RELIABLE_NOTIFIER_WEBHOOK_SECRET)",
                )
            })?
            .clone();
        Ok(Some(Self {
            target,
            secret,
            allow_private,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        let config =
            WebhookConfig::from_settings(Some("https://example.com/h"), Some(&secret), false)
                .expect("valid")
                .expect("configured");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn webhook_settings_are_checked() {
        let secret = Secret::new("s");
        assert!(WebhookConfig::from_settings(None, None, false)
            .expect("ok")
            .is_none());
        assert!(WebhookConfig::from_settings(Some("https://example.com"), None, false).is_err());
        let err =
            WebhookConfig::from_settings(Some("http://169.254.169.254/"), Some(&secret), false)
                .expect_err("metadata address");
        assert!(err.to_string().contains("notifier.webhook_url"), "{err}");
        assert!(
            WebhookConfig::from_settings(Some("http://127.0.0.1:9/"), Some(&secret), true)
                .expect("allowed")
                .is_some()
        );
    }

    #[test]
    fn defaults_are_valid() {
        assert!(NotifierConfig::default().validate().is_ok());
        let bad = NotifierConfig {
            consumer: "a b".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
