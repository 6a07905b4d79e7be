//! A toxic as the API takes and shows it: toxiproxy's `name`, `type`,
//! `stream`, `toxicity` and `attributes`, with toxiproxy's defaults
//! (`TYPE_STREAM`, downstream, toxicity 1).

use super::error::ApiError;
use super::toxic::{is_type, Stream, ToxicKind};
use serde_json::{Map, Value};

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
        if !is_type(type_name) {
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
