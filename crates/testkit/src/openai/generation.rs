//! Producing a generation: tokens paced as scripted, then one JSON body or
//! a stream of server-sent events that owns the request's [`Exchange`], so
//! a client going away mid-stream counts as cancelled.

use super::server::ConnectionKill;
use super::wire::{self, Endpoint, Reply, Usage};
use super::{Exchange, Failure, Pacing, Script, Shared};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

/// Answers a generation request once its first byte is due (after `ttft`).
pub(super) async fn produce(
    shared: Arc<Shared>,
    kill: ConnectionKill,
    exchange: Exchange,
    endpoint: Endpoint,
    body: &Value,
    script: Script,
) -> Response {
    let streamed = body.get("stream").and_then(Value::as_bool) == Some(true);
    if script.failure == Some(Failure::MalformedSse) {
        return malformed(exchange, streamed);
    }
    let plan = Plan::new(&shared, endpoint, body, script);
    shared.count(|s| s.prompt_tokens_served += u64::from(plan.prompt_tokens));
    if streamed {
        return event_stream(TokenStream {
            shared,
            kill,
            exchange,
            plan,
            next: 0,
        });
    }
    whole(shared, kill, exchange, plan).await
}

/// Cuts the connection the request came on; never returns (the
/// connection's task drops this future with the connection).
pub(super) async fn cut<T>(exchange: &mut Exchange, kill: &ConnectionKill) -> T {
    exchange.abort();
    kill.0.cancel();
    std::future::pending().await
}

/// Waits before token `index` (> 0) as the script paces.
async fn pace(shared: &Shared, script: &Script, index: u32) {
    if index == 0 {
        return;
    }
    match script.pacing {
        Pacing::Timed if !script.inter_token.is_zero() => {
            tokio::time::sleep(script.inter_token).await
        }
        Pacing::Timed => {}
        Pacing::Manual => {
            if let Ok(permit) = shared.permits.acquire().await {
                permit.forget();
            }
        }
    }
}

/// What one generation will produce, decided when its first byte is due.
struct Plan {
    reply: Reply,
    /// Tokens to produce: the script's, capped by the request.
    tokens: u32,
    finish: &'static str,
    prompt_tokens: u32,
    /// Send the usage chunk at the end of a stream.
    usage_chunk: bool,
    /// Cut the connection once this many tokens were produced.
    cut_after: Option<u32>,
    script: Script,
}

impl Plan {
    fn new(shared: &Shared, endpoint: Endpoint, body: &Value, script: Script) -> Self {
        let cap = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64);
        let tokens = match cap {
            Some(cap) if cap < u64::from(script.tokens) => cap as u32,
            _ => script.tokens,
        };
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| script.models.first().cloned())
            .unwrap_or_else(|| "scripted".to_string());
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completions => "cmpl",
        };
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self {
            reply: Reply {
                endpoint,
                id: format!("{prefix}-scripted-{}", shared.next_id()),
                created: unix_now(),
                model,
            },
            tokens,
            finish: if tokens < script.tokens {
                "length"
            } else {
                "stop"
            },
            prompt_tokens: wire::prompt_tokens(body),
            usage_chunk: include_usage && script.usage,
            cut_after: match script.failure {
                Some(Failure::DisconnectAfter(n)) => Some(n.min(tokens)),
                _ => None,
            },
            script,
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt: self.prompt_tokens,
            completion: self.tokens,
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A non-streamed answer: every token produced (and paced), then one body.
async fn whole(
    shared: Arc<Shared>,
    kill: ConnectionKill,
    mut exchange: Exchange,
    plan: Plan,
) -> Response {
    let mut text = String::new();
    for index in 0..plan.tokens {
        if plan.cut_after == Some(index) {
            return cut(&mut exchange, &kill).await;
        }
        pace(&shared, &plan.script, index).await;
        text.push_str(&wire::token_text(index));
        shared.count(|s| s.completion_tokens_served += 1);
    }
    if plan.cut_after == Some(plan.tokens) {
        return cut(&mut exchange, &kill).await;
    }
    let usage = plan.script.usage.then(|| plan.usage());
    let answer = plan.reply.full(&text, plan.finish, usage.as_ref());
    exchange.complete();
    Json(answer).into_response()
}

fn event_stream_head(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A stream of events, produced one at a time as the client reads them.
/// It owns the exchange: dropped unfinished (the client went away), it
/// counts the request cancelled.
struct TokenStream {
    shared: Arc<Shared>,
    kill: ConnectionKill,
    exchange: Exchange,
    plan: Plan,
    /// The next token's index; `plan.tokens` (or 1 for an empty answer)
    /// once every content chunk went out.
    next: u32,
}

fn event_stream(stream: TokenStream) -> Response {
    let events = futures::stream::unfold(stream, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), s))
    });
    event_stream_head(Body::from_stream(events))
}

impl TokenStream {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if !self.exchange.open {
            return None;
        }
        // An empty answer still sends one content chunk (empty text) to
        // carry the role and the finish reason.
        let chunks = self.plan.tokens.max(1);
        if self.next < chunks {
            let index = self.next;
            if self.plan.cut_after == Some(index) {
                return cut(&mut self.exchange, &self.kill).await;
            }
            pace(&self.shared, &self.plan.script, index).await;
            self.next += 1;
            let last = self.next == chunks;
            let text = if self.plan.tokens == 0 {
                String::new()
            } else {
                self.shared.count(|s| s.completion_tokens_served += 1);
                wire::token_text(index)
            };
            let finish = last.then_some(self.plan.finish);
            let frame = wire::event(&self.plan.reply.chunk(&text, index == 0, finish));
            if last && self.tail().is_empty() && self.plan.cut_after.is_none() {
                self.exchange.complete();
            }
            return Some(frame);
        }
        if self.plan.cut_after.is_some() {
            return cut(&mut self.exchange, &self.kill).await;
        }
        let tail = self.tail();
        self.exchange.complete();
        (!tail.is_empty()).then(|| Bytes::from(tail))
    }

    /// What follows the content chunks: the usage chunk, `[DONE]`.
    fn tail(&self) -> Vec<u8> {
        let mut tail = Vec::new();
        if self.plan.usage_chunk {
            tail.extend_from_slice(&wire::event(
                &self.plan.reply.usage_chunk(&self.plan.usage()),
            ));
        }
        if self.plan.script.failure != Some(Failure::MissingDone) {
            tail.extend_from_slice(wire::DONE);
        }
        tail
    }
}

/// [`Failure::MalformedSse`]: garbage after `ttft`, nothing counted served.
pub(super) fn malformed(mut exchange: Exchange, streamed: bool) -> Response {
    if !streamed {
        exchange.complete();
        let mut response = Response::new(Body::from(wire::GARBAGE_JSON));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let frames: VecDeque<Bytes> = wire::garbage_events().into();
    let events = futures::stream::unfold(
        (frames, exchange),
        |(mut frames, mut exchange)| async move {
            let frame = frames.pop_front()?;
            if frames.is_empty() {
                exchange.complete();
            }
            Some((Ok::<_, Infallible>(frame), (frames, exchange)))
        },
    );
    event_stream_head(Body::from_stream(events))
}
