//! OpenAI's error envelope: `{"error": {"message", "type", "param",
//! "code"}}`. Clients' SDKs read these four members to raise their typed
//! errors, so the gateway answers in this shape rather than problem+json on
//! the OpenAI routes, both as a body and, when a stream fails after its
//! headers went out, as the stream's last event.

use crate::request::RequestError;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// One error, as OpenAI writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// For people: what went wrong and, where it helps, what to do.
    pub message: String,
    /// The class of error (`invalid_request_error`, `server_error`,
    /// `requests`, `tokens`, `insufficient_quota`).
    #[serde(rename = "type")]
    pub r#type: String,
    /// The request parameter at fault (`messages[3].role`).
    pub param: Option<String>,
    /// A stable code for programs (`model_not_found`, `invalid_type`).
    pub code: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ApiError,
}

impl ApiError {
    pub fn new(message: impl Into<String>, r#type: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            r#type: r#type.into(),
            param: None,
            code: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// A request the client must change (HTTP 400).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(message, "invalid_request_error")
    }

    /// No API key came with the request (HTTP 401).
    pub fn missing_api_key() -> Self {
        ApiError::invalid_request(
            "You didn't provide an API key. Provide it in an Authorization header: \
             Authorization: Bearer YOUR_KEY.",
        )
    }

    /// The API key is not one the gateway knows (HTTP 401). The key itself
    /// is never echoed.
    pub fn invalid_api_key() -> Self {
        ApiError::invalid_request("Incorrect API key provided.").with_code("invalid_api_key")
    }

    /// No such model, or not for this key (HTTP 404): one answer for both,
    /// so that a key cannot probe which models exist.
    pub fn model_not_found(model: &str) -> Self {
        ApiError::invalid_request(format!(
            "The model `{model}` does not exist or you do not have access to it."
        ))
        .with_param("model")
        .with_code("model_not_found")
    }

    /// The prompt and the completion cannot fit the model's context (HTTP 400).
    pub fn context_length_exceeded(message: impl Into<String>) -> Self {
        ApiError::invalid_request(message)
            .with_param("messages")
            .with_code("context_length_exceeded")
    }

    /// Too many requests in the key's window (HTTP 429).
    pub fn rate_limit_exceeded(message: impl Into<String>) -> Self {
        ApiError::new(message, "requests").with_code("rate_limit_exceeded")
    }

    /// Too many tokens in the key's window (HTTP 429).
    pub fn token_rate_limit_exceeded(message: impl Into<String>) -> Self {
        ApiError::new(message, "tokens").with_code("rate_limit_exceeded")
    }

    /// The key's budget is spent (HTTP 429, as OpenAI answers it).
    pub fn insufficient_quota(message: impl Into<String>) -> Self {
        ApiError::new(message, "insufficient_quota").with_code("insufficient_quota")
    }

    /// Our fault, or a backend's (HTTP 500 or 502). The message must not
    /// carry internals: they are logged, not shown.
    pub fn server_error(message: impl Into<String>) -> Self {
        ApiError::new(message, "server_error")
    }

    /// No backend can take the request now (HTTP 503); retrying later may work.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::server_error(message).with_code("service_unavailable")
    }

    /// The backend did not answer in time (HTTP 504).
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::server_error(message).with_code("timeout")
    }

    /// `{"error": {...}}`, all four members always present.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and options of strings always serialise.
        serde_json::to_vec(&Envelope { error: self }).expect("an error envelope serialises")
    }

    /// `data: {"error": {...}}` and the blank line: how a stream that has
    /// begun ends with an error. Compact JSON holds no line break, so the
    /// envelope is one data line.
    pub fn to_sse_event(&self) -> Bytes {
        let json = self.to_json();
        let mut out = BytesMut::with_capacity(json.len() + 8);
        out.put_slice(b"data: ");
        out.put_slice(&json);
        out.put_slice(b"\n\n");
        out.freeze()
    }
}

impl From<&RequestError> for ApiError {
    fn from(error: &RequestError) -> Self {
        ApiError {
            message: error.to_string(),
            r#type: "invalid_request_error".into(),
            param: error.param(),
            code: Some(error.code().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use serde_json::json;

    #[test]
    fn the_envelope_has_all_four_members() {
        let body = ApiError::model_not_found("gpt-x").to_json();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"error": {
                "message": "The model `gpt-x` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found"
            }})
        );
        let value: serde_json::Value =
            serde_json::from_slice(&ApiError::server_error("boom").to_json()).unwrap();
        assert_eq!(
            value,
            json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn a_request_error_becomes_an_invalid_request_error() {
        let refused = crate::request::parse(
            crate::Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":7}]}"#,
        )
        .unwrap_err();
        let error = ApiError::from(&refused);
        assert_eq!(error.r#type, "invalid_request_error");
        assert_eq!(error.param.as_deref(), Some("messages[0].role"));
        assert_eq!(error.code.as_deref(), Some("invalid_type"));
        assert_eq!(
            error.message,
            "Invalid type for 'messages[0].role': expected a string, but got an integer instead."
        );
    }

    #[test]
    fn the_sse_event_is_one_data_line_even_with_line_breaks_in_the_message() {
        let error = ApiError::server_error("line one\nline two\r\n");
        let bytes = error.to_sse_event();
        assert!(bytes.starts_with(b"data: {\"error\":"));
        assert!(bytes.ends_with(b"}\n\n"));
        let mut parser = SseParser::new(1 << 16);
        parser.push(&bytes);
        let event = parser
            .next_event()
            .expect("one event")
            .expect("well formed");
        assert_eq!(event.data.as_bytes(), &error.to_json()[..]);
        let info = crate::chunk_usage(&event.data).unwrap();
        assert!(info.is_error);
        assert!(parser.finish().is_none());
    }
}
