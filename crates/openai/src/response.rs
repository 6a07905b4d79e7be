//! What the gateway reads of a backend's answer: its token usage, and for
//! a stream, enough of each chunk to account for a backend that sends no
//! usage at all (count the pieces of output) and to see an error event.
//!
//! Chunks are read with borrowed, typed views (only the members looked
//! at), not into a `serde_json::Value`: this runs on every chunk of every
//! stream.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    /// 0 for embeddings, which report none.
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// `usage` as backends write it (an object: a typed view would take an
/// array too): embeddings leave out `completion_tokens`, some servers
/// `total_tokens`; a count that is there must be a non-negative integer.
fn usage(raw: &Map<String, Value>) -> Result<Usage, String> {
    let count = |key: &str| match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("usage.{key} is not a token count: {value}")),
    };
    let prompt_tokens = count("prompt_tokens")?.unwrap_or(0);
    let completion_tokens = count("completion_tokens")?.unwrap_or(0);
    let total_tokens =
        count("total_tokens")?.unwrap_or(prompt_tokens.saturating_add(completion_tokens));
    Ok(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
    })
}

/// What one streamed chunk (an SSE event's data) carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Its `usage`, when present and not null.
    pub usage: Option<Usage>,
    /// It carries usage and no choices: the last chunk a stream sends when
    /// `stream_options.include_usage` is set.
    pub usage_only: bool,
    /// It is an error (`{"error": ...}`), how OpenAI-compatible servers end
    /// a stream that failed midway.
    pub is_error: bool,
    /// Choices that carry output: non-empty `delta.content`,
    /// `delta.reasoning_content` (or `reasoning`), `delta.refusal`, or
    /// `delta.tool_calls` (chat), or non-empty `text` (completions). A
    /// backend streams about a token per piece, which estimates the output
    /// of a stream that reports no usage.
    pub output_pieces: u64,
}

/// Why a chunk was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("a stream chunk is not a JSON object of the expected shape: {0}")]
    InvalidChunk(String),
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default)]
    usage: Option<Map<String, Value>>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    /// Counted, not kept (a vector of a zero-sized type allocates nothing).
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
}

impl Choice<'_> {
    fn has_output(&self) -> bool {
        let some = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        if some(&self.text) {
            return true;
        }
        self.delta.as_ref().is_some_and(|d| {
            some(&d.content)
                || some(&d.reasoning_content)
                || some(&d.reasoning)
                || some(&d.refusal)
                || d.tool_calls.as_ref().is_some_and(|calls| !calls.is_empty())
        })
    }
}

/// Reads a streamed chunk's data (the caller handles `[DONE]` first, see
/// [`SseEvent::is_done`](crate::SseEvent::is_done)). An error when the
/// data is not a JSON object or a member looked at has the wrong type.
pub fn chunk_usage(data: &str) -> Result<ChunkInfo, ResponseError> {
    // A typed view reads an array as a struct too: only an object is a chunk.
    if !data.trim_start().starts_with('{') {
        return Err(ResponseError::InvalidChunk("not a JSON object".into()));
    }
    let chunk: Chunk<'_> =
        serde_json::from_str(data).map_err(|e| ResponseError::InvalidChunk(e.to_string()))?;
    let usage = chunk
        .usage
        .as_ref()
        .map(usage)
        .transpose()
        .map_err(ResponseError::InvalidChunk)?;
    let choices = chunk.choices.unwrap_or_default();
    Ok(ChunkInfo {
        usage,
        usage_only: usage.is_some() && choices.is_empty(),
        is_error: chunk.error.is_some(),
        output_pieces: choices.iter().filter(|c| c.has_output()).count() as u64,
    })
}

/// The usage of a whole (not streamed) answer of chat, completions or
/// embeddings; `None` when it has none or it is not readable.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Whole {
        #[serde(default)]
        usage: Option<Map<String, Value>>,
    }
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let whole: Whole = serde_json::from_slice(body).ok()?;
    usage(whole.usage.as_ref()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_chunk_has_pieces_and_no_usage() {
        let info = chunk_usage(
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(
            info,
            ChunkInfo {
                usage: None,
                usage_only: false,
                is_error: false,
                output_pieces: 1
            }
        );
    }

    #[test]
    fn the_usage_chunk_is_usage_only() {
        let info = chunk_usage(
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#,
        )
        .unwrap();
        assert!(info.usage_only);
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 12,
                total_tokens: 21
            })
        );
        assert_eq!(info.output_pieces, 0);
    }

    #[test]
    fn usage_on_a_content_chunk_is_not_usage_only() {
        // vLLM's continuous_usage_stats puts usage on every chunk.
        let info = chunk_usage(
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert!(!info.usage_only);
        assert_eq!(info.usage.unwrap().total_tokens, 2);
    }

    #[test]
    fn pieces_count_choices_with_output() {
        let data = r#"{"choices":[
            {"index":0,"delta":{"content":""}},
            {"index":1,"delta":{"role":"assistant"}},
            {"index":2,"delta":{"reasoning_content":"hmm"}},
            {"index":3,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}},
            {"index":4,"delta":{"content":"a \"quoted\" word"}},
            {"index":5,"delta":{"content":null}},
            {"index":6,"delta":{"refusal":"no"}}
        ]}"#;
        assert_eq!(chunk_usage(data).unwrap().output_pieces, 4);
        let completions = r#"{"choices":[{"text":"a","index":0},{"text":"","index":1}]}"#;
        assert_eq!(chunk_usage(completions).unwrap().output_pieces, 1);
    }

    #[test]
    fn an_error_event_is_seen() {
        let info = chunk_usage(r#"{"error":{"message":"boom","type":"server_error"}}"#).unwrap();
        assert!(info.is_error);
        assert!(
            !chunk_usage(r#"{"error":null,"choices":[]}"#)
                .unwrap()
                .is_error
        );
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for data in [
            "[DONE]",
            "",
            "[]",
            "42",
            r#"{"choices":{}}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
        ] {
            assert!(chunk_usage(data).is_err(), "{data}");
        }
        assert!(chunk_usage(r#"{"choices":[{"delta":{"content":7}}]}"#).is_err());
    }

    #[test]
    fn whole_responses_report_usage() {
        let chat = br#"{"id":"x","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
        assert_eq!(
            response_usage(chat),
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 1,
                total_tokens: 6
            })
        );
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(
            response_usage(embeddings),
            Some(Usage {
                prompt_tokens: 8,
                completion_tokens: 0,
                total_tokens: 8
            })
        );
        assert_eq!(response_usage(br#"{"choices":[]}"#), None);
        assert_eq!(response_usage(br#"{"usage":null}"#), None);
        assert_eq!(response_usage(b"not json"), None);
        assert_eq!(response_usage(br#"{"usage":"many"}"#), None);
    }
}
