//! The body a backend gets: the client's, with the few changes the gateway
//! makes, written in one pass over the client's map (a body may hold
//! megabytes of base64 images: it is not copied to be changed).

use super::{Endpoint, Request, MAX_TOKENS_LIMIT};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

impl Request {
    /// The body to send to a backend. Changes, and nothing else:
    ///
    /// - `model` becomes `backend_model` (the backend's name for it);
    /// - when `force_usage` and the request streams, and the client did not
    ///   ask for usage itself, `stream_options.include_usage` is set to true
    ///   (other `stream_options` keys kept), so the gateway can account
    ///   for the stream; the caller then drops the usage-only last chunk
    ///   the client did not ask for;
    /// - when the client set no completion limit and `max_tokens_cap` is
    ///   given (not for embeddings), the cap is written under
    ///   `max_completion_tokens` if the client sent that key (as null),
    ///   else under `max_tokens`, the one every backend knows. The cap is
    ///   clamped to `1..=`[`MAX_TOKENS_LIMIT`] so the body stays valid. A
    ///   limit the client did set is never changed: refusing one that is
    ///   too large is the caller's decision.
    ///
    /// Values are written back as serde_json reads them: integers exactly,
    /// a float possibly an ulp off (serde_json's fast float parser), an
    /// integer past `u64` as a float; member order may change.
    pub fn to_backend_body(
        &self,
        backend_model: &str,
        max_tokens_cap: Option<u64>,
        force_usage: bool,
    ) -> Vec<u8> {
        let stream_options = (force_usage && self.stream && !self.client_wants_usage).then(|| {
            let mut options = match self.body.get("stream_options") {
                Some(Value::Object(options)) => options.clone(),
                _ => Map::new(),
            };
            options.insert("include_usage".into(), Value::Bool(true));
            Value::Object(options)
        });
        let max_tokens = match (self.endpoint, self.max_tokens, max_tokens_cap) {
            (Endpoint::Embeddings, _, _) | (_, Some(_), _) | (_, None, None) => None,
            (endpoint, None, Some(cap)) => {
                let key = if endpoint == Endpoint::ChatCompletions
                    && self.body.contains_key("max_completion_tokens")
                {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                Some((key, cap.clamp(1, MAX_TOKENS_LIMIT)))
            }
        };
        let body = BackendBody {
            body: &self.body,
            model: backend_model,
            stream_options,
            max_tokens,
        };
        // A map of JSON values with string keys always serialises.
        serde_json::to_vec(&body).expect("a JSON object serialises")
    }
}

/// The client's map with some members replaced, serialised without a copy.
struct BackendBody<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    stream_options: Option<Value>,
    max_tokens: Option<(&'static str, u64)>,
}

impl Serialize for BackendBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (key, value) in self.body {
            let replaced = key == "model"
                || (key == "stream_options" && self.stream_options.is_some())
                || self.max_tokens.is_some_and(|(k, _)| k == key);
            if !replaced {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(options) = &self.stream_options {
            map.serialize_entry("stream_options", options)?;
        }
        if let Some((key, cap)) = self.max_tokens {
            map.serialize_entry(key, &cap)?;
        }
        map.end()
    }
}
