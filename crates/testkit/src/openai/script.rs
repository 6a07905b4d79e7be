//! What the scripted backend does with the next request: its speed, its
//! output length, and how it fails.

use std::time::Duration;

/// The behaviour of a [`ScriptedBackend`](super::ScriptedBackend). A
/// request takes a copy of the script when it arrives: changing the script
/// with [`set_script`](super::ScriptedBackend::set_script) affects the
/// requests that arrive afterwards, not the ones in flight (except
/// [`Pacing::Manual`], whose releases are shared by every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Delay before the first byte of a generation response, head
    /// included: a real server sends the head only once the first token
    /// is ready, so a client's time to first byte is this delay.
    pub ttft: Duration,
    /// Delay between two tokens with [`Pacing::Timed`].
    pub inter_token: Duration,
    /// Output tokens per generation, before the request's `max_tokens` /
    /// `max_completion_tokens` cap. Token `i` is the text
    /// [`token_text(i)`](super::token_text), one streamed chunk each.
    pub tokens: u32,
    /// The ids `GET /v1/models` lists, and the model named in a response
    /// when the request names none. Requests for other models are served
    /// anyway: check forwarded names with
    /// [`requests`](super::ScriptedBackend::requests).
    pub models: Vec<String>,
    /// `false`: never report usage, neither in a non-streamed body nor as
    /// a final chunk when the request asks for it (`stream_options.
    /// include_usage`): the "usage absent" failure of some backends.
    pub usage: bool,
    pub pacing: Pacing,
    pub failure: Option<Failure>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            ttft: Duration::ZERO,
            inter_token: Duration::ZERO,
            tokens: 4,
            models: vec!["scripted-model".to_string()],
            usage: true,
            pacing: Pacing::Timed,
            failure: None,
        }
    }
}

/// How tokens after the first are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Every token after the first waits [`Script::inter_token`].
    #[default]
    Timed,
    /// Every token after the first waits for one permit given by
    /// [`release`](super::ScriptedBackend::release), so a test can prove
    /// that chunk `k` reached the client before chunk `k + 1` existed,
    /// without timing anything. Permits are shared by all requests, first
    /// come first served, and kept across script changes.
    Manual,
}

/// A way for the backend to misbehave. Applies to the generation
/// endpoints (`/v1/chat/completions`, `/v1/completions`) and, where it
/// makes sense, to `/v1/embeddings`; `GET /v1/models` and `GET /health`
/// always answer (a dead backend is [`stop`](super::ScriptedBackend::stop)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answer this status at once (no `ttft`) with an OpenAI error
    /// envelope `{"error":{"message","type","param","code"}}`; a 429
    /// carries `Retry-After: 1`.
    Status(u16),
    /// Accept the request and never answer, until the client goes away.
    HangBeforeFirstByte,
    /// Stream this many tokens, then drop the connection: no `[DONE]`, no
    /// terminating chunk of the chunked body. A non-streamed request (or
    /// an embedding) loses its connection after as many tokens' time,
    /// with no response at all.
    DisconnectAfter(u32),
    /// A 200 `text/event-stream` (after `ttft`) whose events are garbage:
    /// not JSON, lines without a field name, no `[DONE]`. A non-streamed
    /// request gets a 200 `application/json` body cut mid-object.
    MalformedSse,
    /// Stream normally but end the body without `data: [DONE]`. Does not
    /// change non-streamed answers.
    MissingDone,
}
