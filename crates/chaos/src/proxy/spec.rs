//! Proxies as the API takes and shows them: toxiproxy's `name`, `listen`,
//! `upstream`, `enabled` (and `toxics` when shown).

use super::error::ApiError;
use super::toxic::ToxicSpec;
use serde_json::{Map, Value};

/// Where a proxy listens when the body gives no `listen`: loopback, a free
/// port (toxiproxy binds every interface; a fault proxy has no business
/// being reachable from elsewhere unless asked).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// A proxy to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub name: String,
    /// `HOST:PORT` to listen on; port 0 picks a free one (shown afterwards).
    pub listen: String,
    /// `HOST:PORT` of the dependency; resolved when set, dialled per connection.
    pub upstream: String,
    pub enabled: bool,
}

impl ProxySpec {
    /// An enabled proxy on a free loopback port.
    pub fn new(name: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            listen: DEFAULT_LISTEN.to_string(),
            upstream: upstream.into(),
            enabled: true,
        }
    }

    pub fn listen(mut self, listen: impl Into<String>) -> Self {
        self.listen = listen.into();
        self
    }

    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Parses a `POST /proxies` body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(ApiError::bad_body)?;
        let Value::Object(obj) = value else {
            return Err(ApiError::bad_body("expected a JSON object"));
        };
        Self::from_object(&obj, "")
    }

    /// Parses a `POST /populate` body (or a `--config` file): a list of
    /// proxies. Every entry is checked before any is created.
    pub fn list_from_json(body: &[u8]) -> Result<Vec<Self>, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(ApiError::bad_body)?;
        let Value::Array(items) = value else {
            return Err(ApiError::bad_body("expected a JSON array of proxies"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(obj) => Self::from_object(obj, &format!(" at proxy {}", i + 1)),
                _ => Err(ApiError::bad_body(format!(
                    "proxy {} is not a JSON object",
                    i + 1
                ))),
            })
            .collect()
    }

    fn from_object(obj: &Map<String, Value>, at: &str) -> Result<Self, ApiError> {
        let name = string_field(obj, "name", at)?.unwrap_or_default();
        if name.is_empty() {
            return Err(ApiError::missing(format!("name{at}")));
        }
        let upstream = string_field(obj, "upstream", at)?.unwrap_or_default();
        if upstream.is_empty() {
            return Err(ApiError::missing(format!("upstream{at}")));
        }
        let listen = string_field(obj, "listen", at)?
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let enabled = bool_field(obj, "enabled", at)?.unwrap_or(true);
        Ok(Self {
            name,
            listen,
            upstream,
            enabled,
        })
    }
}

/// A change to a proxy: what is given replaces the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyUpdate {
    pub listen: Option<String>,
    /// A new upstream: later connections go there; open ones are closed.
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

impl ProxyUpdate {
    /// Parses a `POST/PATCH /proxies/{proxy}` body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(ApiError::bad_body)?;
        let Value::Object(obj) = value else {
            return Err(ApiError::bad_body("expected a JSON object"));
        };
        Ok(Self {
            listen: string_field(&obj, "listen", "")?.filter(|s| !s.is_empty()),
            upstream: string_field(&obj, "upstream", "")?.filter(|s| !s.is_empty()),
            enabled: bool_field(&obj, "enabled", "")?,
        })
    }
}

fn string_field(
    obj: &Map<String, Value>,
    field: &str,
    at: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_body(format!(
            "{field}{at} must be a string, got {other}"
        ))),
    }
}

fn bool_field(obj: &Map<String, Value>, field: &str, at: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad_body(format!(
            "{field}{at} must be true or false, got {other}"
        ))),
    }
}

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyInfo {
    pub name: String,
    /// The bound address when enabled (port 0 resolved), else the last one.
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    /// Upstream toxics first, then downstream, each in the order added.
    pub toxics: Vec<ToxicSpec>,
}

impl ProxyInfo {
    /// The listen address as a socket address (for clients in Rust).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.iter().map(ToxicSpec::to_json).collect::<Vec<_>>(),
        })
    }
}
