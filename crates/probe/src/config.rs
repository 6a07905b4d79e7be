//! The `[probes]` and `[status]` configuration sections.
//!
//! Probes live in the platform's own TOML file (`[[probes.checks]]`), not
//! in a separate file: `reliable config check` then validates them with
//! everything else, and an error names the key
//! (`probes.checks[2].check.url`). Every check is validated before any
//! probe runs: a bad URL, a non-http(s) scheme, a sub-second interval, a
//! timeout not shorter than its interval, an unknown check type or a name
//! used twice stops start-up.

use kit::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Longest probe name (it is a metric label).
pub const MAX_NAME_LEN: usize = 64;
/// Longest component name (shown on the public page).
pub const MAX_COMPONENT_CHARS: usize = 80;

/// Configuration section `probes`: synthetic checks on an interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    /// Run the probes (and record their daily aggregates).
    pub enabled: bool,
    /// In `reliable up`: seed the link
    /// `status-probe` through the shortener's public API and probe its
    /// redirect (`GET /status-probe`, 301/302 expected, not followed) as
    /// `shortener-redirect`, the SLI of `slo/probes.yaml`.
    pub shortener_redirect: bool,
    /// How often the built-in shortener probe runs.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub shortener_redirect_interval: Duration,
    /// The probes: `[[probes.checks]]` tables with `name`, `component`,
    /// `interval`, `timeout` and a `check` table whose `type` is `http`,
    /// `tcp` or `dns`.
    pub checks: Vec<ProbeSpec>,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            shortener_redirect: true,
            shortener_redirect_interval: Duration::from_secs(15),
            checks: Vec::new(),
        }
    }
}

/// One probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `[a-z0-9_-]{1,64}`; the `probe` metric label.
    pub name: String,
    /// The public component it belongs to on the status page.
    pub component: String,
    /// Time between checks (at least 1s).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    /// How long one check may take (shorter than `interval`).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    pub check: Check,
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// What a probe checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Dns(DnsCheck),
}

/// An HTTP(S) request and what its answer must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Accepted statuses: codes (`200`) or classes (`"2xx"`).
    #[serde(default = "default_statuses")]
    pub expected_status: Vec<StatusPattern>,
    /// Text the body must contain (the first 1 MiB is read).
    #[serde(default)]
    pub body_contains: Option<String>,
    /// A certificate expiring sooner than this makes the probe a warning.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde", default = "default_tls_warning")]
    pub tls_expiry_warning: Duration,
    /// Follow redirects (at most 10); off, a 3xx is the answer.
    #[serde(default)]
    pub follow_redirects: bool,
    /// PEM CA bundle trusted besides the public roots (a private PKI).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_statuses() -> Vec<StatusPattern> {
    vec![StatusPattern::Class("2xx".to_string())]
}

fn default_tls_warning() -> Duration {
    Duration::from_secs(14 * 86_400)
}

/// An accepted status: a code or a class such as `2xx`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum StatusPattern {
    Code(u16),
    Class(String),
}

impl StatusPattern {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            Self::Code(code) => *code == status,
            Self::Class(class) => match class_digit(class) {
                Some(d) => status / 100 == d,
                None => class.parse::<u16>().ok() == Some(status),
            },
        }
    }

    fn check(&self) -> Result<(), String> {
        let ok = match self {
            Self::Code(code) => (100..=599).contains(code),
            Self::Class(class) => {
                class_digit(class).is_some()
                    || class.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{self:?} is neither a status code (100-599) nor a class like 2xx"
            ))
        }
    }
}

fn class_digit(class: &str) -> Option<u16> {
    let lower = class.to_ascii_lowercase();
    let digit = lower.strip_suffix("xx")?;
    match digit.parse::<u16>() {
        Ok(d @ 1..=5) => Some(d),
        _ => None,
    }
}

/// A TCP connect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
}

/// A name resolution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The name to resolve.
    pub name: String,
    /// An address the answer must contain.
    #[serde(default)]
    pub expect: Option<IpAddr>,
}

impl ProbesConfig {
    /// Every check's own validation, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shortener_redirect_interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "probes.shortener_redirect_interval",
                "must be at least 1s",
            ));
        }
        let mut names = HashSet::new();
        for (i, spec) in self.checks.iter().enumerate() {
            spec.validate(&format!("probes.checks[{i}]"))?;
            if !names.insert(spec.name.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("probes.checks[{i}].name"),
                    format!("`{}` is used by an earlier probe", spec.name),
                ));
            }
        }
        Ok(())
    }
}

impl ProbeSpec {
    /// Checks this probe; `key` is its place in the config
    /// (`probes.checks[0]`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{key}.{f}");
        if !valid_name(&self.name) {
            return Err(ConfigError::invalid(
                &field("name"),
                "must be 1 to 64 of a-z, 0-9, `_`, `-`",
            ));
        }
        let component = self.component.trim();
        if component.is_empty()
            || self.component.chars().count() > MAX_COMPONENT_CHARS
            || self.component.chars().any(char::is_control)
        {
            return Err(ConfigError::invalid(
                &field("component"),
                format!("must be 1 to {MAX_COMPONENT_CHARS} printable characters"),
            ));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                &field("interval"),
                "must be at least 1s",
            ));
        }
        if self.timeout.is_zero() || self.timeout >= self.interval {
            return Err(ConfigError::invalid(
                &field("timeout"),
                "must be above zero and shorter than the interval",
            ));
        }
        match &self.check {
            Check::Http(http) => http.validate(&field("check")),
            Check::Tcp(tcp) => {
                let ok = tcp
                    .address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if ok {
                    Ok(())
                } else {
                    Err(ConfigError::invalid(
                        &field("check.address"),
                        "must be host:port",
                    ))
                }
            }
            Check::Dns(dns) => {
                if dns.name.is_empty() || dns.name.len() > 253 || dns.name.contains(' ') {
                    Err(ConfigError::invalid(
                        &field("check.name"),
                        "must be a host name",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl HttpCheck {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| ConfigError::invalid(&format!("{key}.url"), format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::invalid(
                &format!("{key}.url"),
                format!(
                    "scheme `{}` is not http or https (with a host)",
                    url.scheme()
                ),
            ));
        }
        if http::Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.method"),
                "not an HTTP method",
            ));
        }
        if self.expected_status.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.expected_status"),
                "must name at least one status",
            ));
        }
        for pattern in &self.expected_status {
            pattern
                .check()
                .map_err(|e| ConfigError::invalid(&format!("{key}.expected_status"), e))?;
        }
        if let Some(path) = &self.ca_file {
            if !path.is_file() {
                return Err(ConfigError::invalid(
                    &format!("{key}.ca_file"),
                    format!("{} is not a file", path.display()),
                ));
            }
        }
        Ok(())
    }
}

/// `[a-z0-9_-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Configuration section `status`: the public status page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Serve `GET /status` and `/api/v1/status` on the public listener.
    pub enabled: bool,
    /// The page's heading.
    pub title: String,
    /// A rendered page is served for at most this long before the next
    /// request renders it again (`Cache-Control: max-age` is 30s).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub render_every: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            title: "Reliable status".to_string(),
            render_every: Duration::from_secs(10),
        }
    }
}

impl StatusConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 120 {
            return Err(ConfigError::invalid(
                "status.title",
                "must be 1 to 120 characters",
            ));
        }
        if self.render_every > Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "status.render_every",
                "must be at most 1h",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
