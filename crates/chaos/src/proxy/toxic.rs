//! Toxics: what a fault is, parsed once at the edge.
//!
//! A toxic's JSON is toxiproxy's (`name`, `type`, `stream`, `toxicity`,
//! `attributes`), with toxiproxy's attribute names and units. Unlike
//! toxiproxy, which decodes whatever it is given into Go integers (so a
//! negative latency or a toxicity of 7 is accepted and misbehaves), every
//! value is range-checked here and a refusal names the field.

use super::error::ApiError;
use serde_json::{Map, Value};

/// Every toxic type, in the order the docs list them.
pub const TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "limit_data",
    "slicer",
    "blackhole",
];

/// Longest time attribute, in milliseconds (a day): longer ones are typos,
/// and the bound keeps deadline arithmetic far from overflow.
pub const MAX_MILLIS: u64 = 86_400_000;
/// Largest byte count (`limit_data.bytes`, slicer sizes): 1 TiB.
pub const MAX_BYTES: u64 = 1 << 40;

/// Which way the affected bytes flow: `upstream` is client to upstream,
/// `downstream` is upstream back to the client (toxiproxy's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "upstream" => Ok(Stream::Upstream),
            "downstream" => Ok(Stream::Downstream),
            other => Err(ApiError::invalid_stream(other)),
        }
    }
}

/// A toxic's type with its attributes, in toxiproxy's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delay every chunk by `latency` ms, plus or minus up to `jitter` ms.
    Latency { latency: u64, jitter: u64 },
    /// At most `rate` KB/s (1 KB = 1000 bytes); 0 means no limit.
    Bandwidth { rate: u64 },
    /// Hold the close (EOF) back for `delay` ms.
    SlowClose { delay: u64 },
    /// Forward nothing and close the connection after `timeout` ms; 0
    /// never closes. Removing the toxic closes the connections it held.
    Timeout { timeout: u64 },
    /// On the next data, wait `timeout` ms then reset the connection (RST).
    ResetPeer { timeout: u64 },
    /// Forward `bytes` bytes, then close the connection.
    LimitData { bytes: u64 },
    /// Split chunks into pieces of about `average_size` bytes (plus or
    /// minus `size_variation`), `delay` microseconds apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: u64,
    },
    /// Ours: forward nothing and keep the connection open; the bytes wait
    /// unread (as behind a partition), and flow again once it is removed.
    Blackhole,
}

/// One attribute: its name, whether a new toxic must give it, its bound.
struct Attr {
    name: &'static str,
    required: bool,
    max: u64,
}

const fn attr(name: &'static str, required: bool, max: u64) -> Attr {
    Attr {
        name,
        required,
        max,
    }
}

fn attrs_of(type_name: &str) -> Option<&'static [Attr]> {
    const LATENCY: &[Attr] = &[
        attr("latency", true, MAX_MILLIS),
        attr("jitter", false, MAX_MILLIS),
    ];
    const BANDWIDTH: &[Attr] = &[attr("rate", true, 1_000_000_000)];
    const SLOW_CLOSE: &[Attr] = &[attr("delay", true, MAX_MILLIS)];
    const TIMEOUT: &[Attr] = &[attr("timeout", true, MAX_MILLIS)];
    const RESET_PEER: &[Attr] = &[attr("timeout", false, MAX_MILLIS)];
    const LIMIT_DATA: &[Attr] = &[attr("bytes", true, MAX_BYTES)];
    const SLICER: &[Attr] = &[
        attr("average_size", true, 1 << 26),
        attr("size_variation", false, 1 << 26),
        attr("delay", false, 1_000_000_000),
    ];
    Some(match type_name {
        "latency" => LATENCY,
        "bandwidth" => BANDWIDTH,
        "slow_close" => SLOW_CLOSE,
        "timeout" => TIMEOUT,
        "reset_peer" => RESET_PEER,
        "limit_data" => LIMIT_DATA,
        "slicer" => SLICER,
        "blackhole" => &[],
        _ => return None,
    })
}

impl ToxicKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::Blackhole => "blackhole",
        }
    }

    /// The attribute values, in the order of [`attrs_of`].
    fn values(&self) -> Vec<u64> {
        match *self {
            ToxicKind::Latency { latency, jitter } => vec![latency, jitter],
            ToxicKind::Bandwidth { rate } => vec![rate],
            ToxicKind::SlowClose { delay } => vec![delay],
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => vec![timeout],
            ToxicKind::LimitData { bytes } => vec![bytes],
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![average_size, size_variation, delay],
            ToxicKind::Blackhole => vec![],
        }
    }

    fn from_values(type_name: &str, v: &[u64]) -> Option<Self> {
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(match type_name {
            "latency" => ToxicKind::Latency {
                latency: at(0),
                jitter: at(1),
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: at(0) },
            "slow_close" => ToxicKind::SlowClose { delay: at(0) },
            "timeout" => ToxicKind::Timeout { timeout: at(0) },
            "reset_peer" => ToxicKind::ResetPeer { timeout: at(0) },
            "limit_data" => ToxicKind::LimitData { bytes: at(0) },
            "slicer" => ToxicKind::Slicer {
                average_size: at(0),
                size_variation: at(1),
                delay: at(2),
            },
            "blackhole" => ToxicKind::Blackhole,
            _ => return None,
        })
    }

    /// Parses `attributes` for a toxic of `type_name`. With `base` (an
    /// update), absent attributes keep the base's values; without it (a
    /// new toxic), required ones must be there and the rest default to 0.
    pub fn parse(
        type_name: &str,
        attributes: &Map<String, Value>,
        base: Option<&ToxicKind>,
    ) -> Result<Self, ApiError> {
        let defs = attrs_of(type_name).ok_or_else(|| ApiError::invalid_toxic_type(type_name))?;
        if let Some(unknown) = attributes
            .keys()
            .find(|k| !defs.iter().any(|d| d.name == k.as_str()))
        {
            let known: Vec<&str> = defs.iter().map(|d| d.name).collect();
            return Err(ApiError::bad_body(format!(
                "attributes.{unknown}: not an attribute of a {type_name} toxic (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        let mut values = base
            .map(ToxicKind::values)
            .unwrap_or_else(|| vec![0; defs.len()]);
        for (i, def) in defs.iter().enumerate() {
            match attributes.get(def.name) {
                Some(v) => values[i] = whole_number(def, v)?,
                None if base.is_none() && def.required => {
                    return Err(ApiError::missing(format!("attributes.{}", def.name)));
                }
                None => {}
            }
        }
        let kind = Self::from_values(type_name, &values)
            .ok_or_else(|| ApiError::invalid_toxic_type(type_name))?;
        kind.validate()?;
        Ok(kind)
    }

    /// Range checks, for toxics built in Rust as well as parsed ones.
    pub fn validate(&self) -> Result<(), ApiError> {
        let defs = attrs_of(self.type_name()).unwrap_or(&[]);
        for (def, value) in defs.iter().zip(self.values()) {
            if value > def.max {
                return Err(ApiError::bad_body(format!(
                    "attributes.{} must be at most {}, got {value}",
                    def.name, def.max
                )));
            }
        }
        if let ToxicKind::Slicer {
            average_size,
            size_variation,
            ..
        } = *self
        {
            if average_size == 0 {
                return Err(ApiError::bad_body(
                    "attributes.average_size must be at least 1",
                ));
            }
            if size_variation >= average_size {
                return Err(ApiError::bad_body(format!(
                    "attributes.size_variation must be less than average_size ({average_size}), got {size_variation}"
                )));
            }
        }
        Ok(())
    }

    /// The `attributes` object, every attribute of the type included.
    pub fn attributes_json(&self) -> Value {
        let defs = attrs_of(self.type_name()).unwrap_or(&[]);
        let map: Map<String, Value> = defs
            .iter()
            .zip(self.values())
            .map(|(d, v)| (d.name.to_string(), Value::from(v)))
            .collect();
        Value::Object(map)
    }
}

fn whole_number(def: &Attr, v: &Value) -> Result<u64, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= def.max as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    match n {
        Some(n) if n <= def.max => Ok(n),
        _ => Err(ApiError::bad_body(format!(
            "attributes.{} must be a whole number from 0 to {}, got {v}",
            def.name, def.max
        ))),
    }
}

/// A toxic as the API shows it and as [`super::Proxies::add_toxic`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicSpec {
    /// Unique within its proxy; toxiproxy's default is `TYPE_STREAM`.
    pub name: String,
    pub stream: Stream,
    /// The fraction of connections affected, from 0 to 1: each connection
    /// draws once per toxic (and again when the toxic is updated).
    pub toxicity: f64,
    pub kind: ToxicKind,
}

impl ToxicSpec {
    /// A downstream toxic on every connection, named `TYPE_downstream`.
    pub fn new(kind: ToxicKind) -> Self {
        let name = default_name(&kind, Stream::Downstream);
        Self {
            name,
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// On the client-to-upstream bytes (renames a default name to match).
    pub fn upstream(self) -> Self {
        self.on(Stream::Upstream)
    }

    /// On the upstream-to-client bytes (the default).
    pub fn downstream(self) -> Self {
        self.on(Stream::Downstream)
    }

    fn on(mut self, stream: Stream) -> Self {
        if self.name == default_name(&self.kind, self.stream) {
            self.name = default_name(&self.kind, stream);
        }
        self.stream = stream;
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn with_toxicity(mut self, toxicity: f64) -> Self {
        self.toxicity = toxicity;
        self
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        if self.name.is_empty() {
            return Err(ApiError::missing("name"));
        }
        check_toxicity(self.toxicity)?;
        self.kind.validate()
    }

    /// Parses a `POST /proxies/{proxy}/toxics` body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(ApiError::bad_body)?;
        let Value::Object(obj) = value else {
            return Err(ApiError::bad_body("expected a JSON object"));
        };
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => Stream::Downstream,
            Some(Value::String(s)) if s.is_empty() => Stream::Downstream,
            Some(Value::String(s)) => Stream::parse(s)?,
            Some(other) => return Err(ApiError::invalid_stream(&other.to_string())),
        };
        let type_name = match obj.get("type") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            None | Some(Value::Null) => return Err(ApiError::missing("type")),
            Some(other) => return Err(ApiError::invalid_toxic_type(&other.to_string())),
        };
        if attrs_of(type_name).is_none() {
            return Err(ApiError::invalid_toxic_type(type_name));
        }
        let name = match obj.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::bad_body("name must be a string")),
        };
        let toxicity = match obj.get("toxicity") {
            None | Some(Value::Null) => 1.0,
            Some(v) => toxicity_of(v)?,
        };
        let kind = ToxicKind::parse(type_name, &attributes_of(&obj)?, None)?;
        let name = if name.is_empty() {
            default_name(&kind, stream)
        } else {
            name
        };
        let spec = Self {
            name,
            stream,
            toxicity,
            kind,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Applies a `POST/PATCH /proxies/{proxy}/toxics/{toxic}` body: the
    /// attributes and toxicity it gives replace the current ones.
    pub fn updated(&self, body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(ApiError::bad_body)?;
        let Value::Object(obj) = value else {
            return Err(ApiError::bad_body("expected a JSON object"));
        };
        let mut next = self.clone();
        if let Some(v) = obj.get("toxicity").filter(|v| !v.is_null()) {
            next.toxicity = toxicity_of(v)?;
        }
        next.kind = ToxicKind::parse(
            self.kind.type_name(),
            &attributes_of(&obj)?,
            Some(&self.kind),
        )?;
        next.validate()?;
        Ok(next)
    }

    /// toxiproxy's JSON for a toxic.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "attributes": self.kind.attributes_json(),
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
        })
    }
}

fn default_name(kind: &ToxicKind, stream: Stream) -> String {
    format!("{}_{}", kind.type_name(), stream.as_str())
}

fn attributes_of(obj: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match obj.get("attributes") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::bad_body("attributes must be a JSON object")),
    }
}

fn toxicity_of(v: &Value) -> Result<f64, ApiError> {
    let t = v.as_f64().ok_or_else(|| {
        ApiError::bad_body(format!("toxicity must be a number from 0 to 1, got {v}"))
    })?;
    check_toxicity(t)?;
    Ok(t)
}

fn check_toxicity(t: f64) -> Result<(), ApiError> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(ApiError::bad_body(format!(
            "toxicity must be a number from 0 to 1, got {t}"
        )))
    }
}

#[cfg(test)]
mod tests;
