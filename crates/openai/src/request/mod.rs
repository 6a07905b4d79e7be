//! A client's request body, checked just enough to route and account.
//!
//! [`parse`] reads the fields the gateway acts on (the model it routes by,
//! whether the answer streams, the token limit and `n` it reserves for,
//! the prompt it estimates) and refuses a body where any of them is
//! malformed, with the parameter at fault. Everything else is kept as it
//! came, unknown fields included, and reaches the backend untouched
//! through [`Request::to_backend_body`]: the gateway does not second-guess
//! a backend's extensions (vLLM's `guided_json`, llama.cpp's `n_probs`).

mod backend;
mod error;
mod fields;
#[cfg(test)]
mod tests;

pub use error::RequestError;
pub use fields::{MAX_MESSAGES, MAX_MODEL_BYTES, MAX_N, MAX_PROMPTS, MAX_TOKENS_LIMIT};

use serde_json::{Map, Value};

/// The OpenAI endpoints the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The path under the API's root, as clients and backends both use it.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    /// A short name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// Bytes of text per token in [`Request::estimated_prompt_tokens`]. English
/// runs at about 4 with the common tokenizers, code and non-Latin scripts
/// at 3 or fewer (a CJK character is 3 bytes and about a token), so 3 errs
/// high: a reservation that is too large is refunded when the backend
/// reports its usage, one too small lets a client overrun its budget.
pub const BYTES_PER_TOKEN: u64 = 3;
/// Tokens a chat template adds around each message (role markers).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Tokens a chat template adds to start the assistant's reply.
pub const REPLY_PRIMING_TOKENS: u64 = 3;
/// Tokens counted for each image, audio or file part of a message: a
/// guess, since they depend on the model (85 to about 1,100 for OpenAI's
/// images, 576 to 2,880 for LLaVA's).
pub const TOKENS_PER_MEDIA_PART: u64 = 1024;

/// What a request's prompt is made of, as [`Request::estimated_prompt_tokens`]
/// counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptSize {
    /// Bytes of text: message contents (text and refusal parts), names,
    /// tool calls and tool definitions as JSON; prompt or input strings.
    pub text_bytes: u64,
    /// Token ids given as integers (completions and embeddings).
    pub token_ids: u64,
    /// Chat messages (0 for the other endpoints).
    pub messages: u64,
    /// Image, audio and file parts of chat messages.
    pub media_parts: u64,
    /// Prompts of a completions batch or inputs of an embeddings batch;
    /// 1 for chat. Each prompt of a batch gets its own `n` choices.
    pub prompts: u64,
}

/// A client's request, checked. The body is kept whole; the fields the
/// gateway acts on are read out of it once, here.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    endpoint: Endpoint,
    body: Map<String, Value>,
    model: String,
    stream: bool,
    client_wants_usage: bool,
    max_tokens: Option<u64>,
    n: u64,
    prompt: PromptSize,
}

/// Checks `body` as a request to `endpoint`; the first field found wrong
/// is the error. What is checked:
///
/// - the body: JSON, an object;
/// - `model`: a non-empty string of at most [`MAX_MODEL_BYTES`] bytes
///   without control characters;
/// - `stream`: a boolean (absent: false); never true for embeddings;
/// - `stream_options`: an object whose `include_usage` is a boolean;
/// - chat: `max_completion_tokens` and `max_tokens`, integers in
///   `1..=`[`MAX_TOKENS_LIMIT`] that agree when both are given;
///   completions: `max_tokens` alike; `n`, an integer in `1..=`[`MAX_N`];
/// - chat: `messages`, 1 to [`MAX_MESSAGES`] objects, each with a known
///   `role` and a `content` that is a string or an array of parts with a
///   string `type` (absent or null only for an assistant); text parts
///   hold a string `text`;
/// - completions `prompt`, embeddings `input`: a string, an array of
///   strings, of token ids, or of arrays of token ids (at most
///   [`MAX_PROMPTS`] strings or arrays).
///
/// `null` is taken as absent for every optional field. Nothing else is
/// looked at.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Request, RequestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError::InvalidJson {
        reason: e.to_string(),
    })?;
    let body = match value {
        Value::Object(body) => body,
        other => {
            return Err(RequestError::NotAnObject {
                found: error::kind(&other),
            })
        }
    };
    let model = fields::model(&body)?;
    let stream = fields::optional_bool(&body, "stream", "stream")?.unwrap_or(false);
    let client_wants_usage = fields::include_usage(&body)?;
    let mut prompt = PromptSize::default();
    let (max_tokens, n) = match endpoint {
        Endpoint::ChatCompletions => {
            let max_tokens = fields::chat_max_tokens(&body)?;
            let n = fields::optional_integer(&body, "n", 1, MAX_N)?;
            fields::messages(&body, &mut prompt)?;
            (max_tokens, n)
        }
        Endpoint::Completions => {
            let max_tokens = fields::optional_integer(&body, "max_tokens", 1, MAX_TOKENS_LIMIT)?;
            let n = fields::optional_integer(&body, "n", 1, MAX_N)?;
            fields::prompt(&body, "prompt", &mut prompt)?;
            (max_tokens, n)
        }
        Endpoint::Embeddings => {
            if stream {
                return Err(RequestError::invalid_value(
                    "stream",
                    "embeddings cannot be streamed",
                ));
            }
            fields::prompt(&body, "input", &mut prompt)?;
            (None, None)
        }
    };
    Ok(Request {
        endpoint,
        body,
        model,
        stream,
        client_wants_usage,
        max_tokens,
        n: n.unwrap_or(1),
        prompt,
    })
}

impl Request {
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The body as the client sent it (key order aside).
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    pub fn into_body(self) -> Map<String, Value> {
        self.body
    }

    /// The model the client asked for: what the gateway routes by.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    /// `stream_options.include_usage` as the client sent it: whether the
    /// client expects the stream's usage-only last chunk. Only a stream
    /// has one (a whole answer always carries its usage).
    pub fn client_wants_usage(&self) -> bool {
        self.client_wants_usage
    }

    /// The completion limit the client set (`max_completion_tokens` or
    /// `max_tokens`); always `None` for embeddings.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
    }

    /// Choices per prompt (1 when absent, and for embeddings).
    pub fn n(&self) -> u64 {
        self.n
    }

    pub fn prompt_size(&self) -> PromptSize {
        self.prompt
    }

    /// A cheap estimate of the prompt's tokens, without a tokenizer, that
    /// errs high:
    ///
    /// ```text
    /// ceil(text_bytes / BYTES_PER_TOKEN) + token_ids
    ///   + TOKENS_PER_MESSAGE * messages + TOKENS_PER_MEDIA_PART * media_parts
    ///   + REPLY_PRIMING_TOKENS (chat only)
    /// ```
    ///
    /// See [`PromptSize`] for what each term counts.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let p = &self.prompt;
        let priming = match self.endpoint {
            Endpoint::ChatCompletions => REPLY_PRIMING_TOKENS,
            _ => 0,
        };
        p.text_bytes
            .div_ceil(BYTES_PER_TOKEN)
            .saturating_add(p.token_ids)
            .saturating_add(TOKENS_PER_MESSAGE.saturating_mul(p.messages))
            .saturating_add(TOKENS_PER_MEDIA_PART.saturating_mul(p.media_parts))
            .saturating_add(priming)
    }

    /// The tokens to reserve before the request runs: the prompt's
    /// estimate plus, except for embeddings (which produce none), the
    /// completion limit (the client's, else `default_max_tokens`) for each
    /// of the `n` choices of each prompt.
    pub fn reserved_tokens(&self, default_max_tokens: u64) -> u64 {
        let prompt = self.estimated_prompt_tokens();
        if self.endpoint == Endpoint::Embeddings {
            return prompt;
        }
        let per_choice = self.max_tokens.unwrap_or(default_max_tokens);
        let choices = self.n.saturating_mul(self.prompt.prompts.max(1));
        prompt.saturating_add(per_choice.saturating_mul(choices))
    }
}
