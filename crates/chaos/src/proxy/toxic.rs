//! Toxics: what a fault is, parsed once at the edge.
//!
//! A toxic's JSON is toxiproxy's (`name`, `type`, `stream`, `toxicity`,
//! `attributes`), with toxiproxy's attribute names and units. Unlike
//! toxiproxy, which decodes whatever it is given into Go integers (so a
//! negative latency or a toxicity of 7 is accepted and misbehaves), every
//! value is range-checked here and a refusal names the field.

use super::error::ApiError;
pub use super::toxic_spec::ToxicSpec;
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

/// Whether `type_name` is a toxic type.
pub(super) fn is_type(type_name: &str) -> bool {
    attrs_of(type_name).is_some()
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

#[cfg(test)]
mod tests;
