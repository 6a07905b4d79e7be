//! The OpenAI wire shapes the backend answers with, and its deterministic
//! prompt-token count.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The text of output token `i`: `"tok{i} "`. A full answer of `n` tokens
/// is `token_text(0) + ... + token_text(n - 1)`.
pub fn token_text(i: u32) -> String {
    format!("tok{i} ")
}

/// The backend's prompt-token count of a request body, so a test can
/// predict usage exactly: the whitespace-separated words of every message
/// `content` (a string, or the `text` of each content part) of a chat
/// request, or of the `prompt` (completions) or `input` (embeddings), where
/// a string counts its words and a token id (a number) counts 1; at least 1.
pub fn prompt_tokens(body: &Value) -> u32 {
    let counted = if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        messages
            .iter()
            .map(|message| match message.get("content") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|part| part.get("text").and_then(Value::as_str))
                    .map(words)
                    .sum(),
                Some(Value::String(text)) => words(text),
                _ => 0,
            })
            .sum()
    } else if let Some(prompt) = body.get("prompt") {
        count_input(prompt)
    } else {
        body.get("input").map(count_input).unwrap_or(0)
    };
    counted.max(1)
}

fn words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// A prompt or an input: a string, a token id, or an array of either.
pub(super) fn count_input(value: &Value) -> u32 {
    match value {
        Value::String(text) => words(text),
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().map(count_input).sum(),
        _ => 0,
    }
}

/// Which generation endpoint a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Chat,
    Completions,
}

/// The identity every chunk of one response repeats.
pub(super) struct Reply {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

pub(super) struct Usage {
    pub prompt: u32,
    pub completion: u32,
}

impl Usage {
    pub fn to_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": u64::from(self.prompt) + u64::from(self.completion),
        })
    }
}

impl Reply {
    fn object(&self, streamed: bool) -> &'static str {
        match (self.endpoint, streamed) {
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Completions, _) => "text_completion",
        }
    }

    /// One streamed chunk carrying `text`; the first names the role (chat),
    /// the last carries the finish reason.
    pub fn chunk(&self, text: &str, first: bool, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = if first {
                    json!({"role": "assistant", "content": text})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
        };
        json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    /// The final usage chunk of a stream whose request set
    /// `stream_options.include_usage`.
    pub fn usage_chunk(&self, usage: &Usage) -> Value {
        json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
        })
    }

    /// A whole non-streamed answer.
    pub fn full(&self, text: &str, finish: &str, usage: Option<&Usage>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish,
            }),
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
        };
        let mut body = json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        });
        if let (Some(usage), Some(object)) = (usage, body.as_object_mut()) {
            object.insert("usage".into(), usage.to_json());
        }
        body
    }
}

/// One server-sent event carrying `value`.
pub(super) fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

pub(super) const DONE: &[u8] = b"data: [DONE]\n\n";

/// Events that no SSE-and-JSON parser can make sense of.
pub(super) fn garbage_events() -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"data: {\"id\": \"chatcmpl-broken\", \"choices\": [\n\n"),
        Bytes::from_static(b"this line has no field name\n"),
        Bytes::from_static(b"data: not json at all\n\n"),
        Bytes::from_static(b"data: {\"object\": \"chat.completion.chunk\",, }\n\n"),
    ]
}

/// A JSON body cut in the middle of an object.
pub(super) const GARBAGE_JSON: &str = "{\"id\": \"chatcmpl-broken\", \"object\": \"chat.completion\", \"choices\": [{\"index\": 0, \"mess";

/// `status` with an OpenAI error envelope; a 429 says `Retry-After: 1`.
pub(super) fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, code) = match status.as_u16() {
        400 => ("invalid_request_error", "invalid_request"),
        429 => ("requests", "rate_limit_exceeded"),
        503 => ("server_error", "service_unavailable"),
        _ => ("server_error", "internal_error"),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_count_words_of_every_shape() {
        let chat = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "one two  three"}, {"type": "image_url"}]},
            {"role": "assistant", "content": null},
        ]});
        assert_eq!(prompt_tokens(&chat), 5);
        assert_eq!(prompt_tokens(&json!({"prompt": ["a b", "c"]})), 3);
        assert_eq!(prompt_tokens(&json!({"prompt": [1, 2, 3, 4]})), 4);
        assert_eq!(prompt_tokens(&json!({"input": [[1, 2], [3]]})), 3);
        assert_eq!(prompt_tokens(&json!({"input": ""})), 1, "at least one");
        assert_eq!(prompt_tokens(&json!({})), 1);
    }
}
