//! Relaying a committed stream: events are forwarded one by one as they
//! arrive, never re-chunked or held back.
//!
//! One tracked task per stream reads the backend and writes into a channel
//! of a few events that the client's response body drains. The channel is
//! the backpressure: a slow reader stops the task, the task stops reading
//! the backend, and TCP pushes back on the backend, so nothing grows
//! without bound. A client that goes away closes the channel; the task
//! sees it at once (it waits on `closed()` beside the backend) and drops
//! the backend call, which closes that connection, so the backend stops
//! generating for nobody.
//!
//! Usage: the gateway always asks streaming backends for a usage chunk;
//! if the client did not ask for one it is taken out again. A stream that
//! fails after tokens went out ends with an OpenAI error event, counted,
//! and never silently truncated.

use crate::admission::Ticket;
use crate::catalog::Deployment;
use crate::metrics::{self as m, InFlightGauge};
use crate::settle::{Outcome, Settlement, Settler};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http_body_util::BodyExt;
use openai::error::ApiError;
use openai::response::Usage;
use openai::sse::{SseEvent, SseParser};
use resilience::InFlight;
use resilience::ResponseBody;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Events buffered between the backend and a slow client.
const RELAY_BUFFER: usize = 4;

/// How long a final error event may wait for a slow client.
const ERROR_EVENT_WAIT: Duration = Duration::from_secs(1);

/// A backend stream whose first event has arrived: from here on, nothing
/// is retried.
pub struct Committed {
    pub body: ResponseBody,
    pub parser: SseParser,
    pub pending: VecDeque<SseEvent>,
    pub slot: InFlight<Deployment>,
    /// Counts the call in `llm_backend_in_flight_requests` until it ends.
    pub _in_flight: InFlightGauge,
}

/// What the relay needs to know of its request.
pub struct StreamContext {
    pub settler: Settler,
    pub ticket: Ticket,
    pub model: &'static str,
    pub client_wants_usage: bool,
    pub prompt_estimate: u64,
    pub started: Instant,
    pub idle: Duration,
    pub total_deadline: Instant,
    /// Served after a failed attempt.
    pub fallback: bool,
    pub stop: CancellationToken,
}

/// Starts relaying `committed` and returns the client's response.
pub fn respond(committed: Committed, context: StreamContext, tasks: &TaskTracker) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(RELAY_BUFFER);
    tasks.spawn(run(committed, context, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies in front (nginx) must not buffer the stream either.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[derive(Default)]
struct Progress {
    saw_done: bool,
    usage: Option<Usage>,
    pieces: u64,
    first_piece: Option<Instant>,
    last_piece: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Cancelled,
    Stopped,
    /// Ended by an error event; the reason is the metric label.
    Abort(&'static str),
}

enum Step {
    Forward(Bytes),
    Skip,
    ForwardThenAbort(Bytes, &'static str),
    Abort(&'static str),
}

const DONE: &[u8] = b"data: [DONE]\n\n";

async fn run(mut committed: Committed, context: StreamContext, tx: mpsc::Sender<Bytes>) {
    let mut progress = Progress::default();
    let end = relay(&mut committed, &context, &tx, &mut progress).await;
    let backend = committed.slot.endpoint().target.backend.name;
    let aborted = match end {
        End::Abort(reason) => Some(reason),
        End::Stopped => Some("shutdown"),
        End::Done | End::Cancelled => None,
    };
    if let Some(reason) = aborted {
        metrics::counter!(m::STREAM_ABORTS, "gen_ai_request_model" => context.model, "server_address" => backend, "reason" => reason)
            .increment(1);
        let message = match reason {
            "shutdown" => "the server is shutting down".to_string(),
            other => format!("the backend stream failed ({other})"),
        };
        let error = ApiError::new(message, "server_error").with_code("stream_aborted");
        let _ = tokio::time::timeout(ERROR_EVENT_WAIT, tx.send(error.to_sse_event())).await;
    }
    // The backend's fault opens its breaker; a client leaving or a
    // shutdown is nobody's.
    let backend_failed = matches!(end, End::Abort(_));
    committed.slot.endpoint().record(!backend_failed);
    // Drop the call now: a cancelled stream must stop the backend.
    drop(committed);
    drop(tx);
    if let (Some(first), Some(last)) = (progress.first_piece, progress.last_piece) {
        if progress.pieces > 1 {
            let per_token = (last - first).as_secs_f64() / (progress.pieces - 1) as f64;
            metrics::histogram!(m::TIME_PER_OUTPUT_TOKEN, "gen_ai_request_model" => context.model, "server_address" => backend)
                .record(per_token);
        }
    }
    let (usage, estimated) = match progress.usage {
        Some(usage) => (usage, false),
        None => (
            Usage {
                prompt_tokens: context.prompt_estimate,
                completion_tokens: progress.pieces,
                total_tokens: context.prompt_estimate + progress.pieces,
            },
            true,
        ),
    };
    let outcome = match end {
        End::Done if context.fallback => Outcome::Fallback,
        End::Done => Outcome::Ok,
        End::Cancelled => Outcome::ClientCancel,
        End::Stopped | End::Abort(_) => Outcome::StreamAbort,
    };
    context.settler.settle(Settlement {
        ticket: context.ticket,
        model: context.model,
        backend,
        usage,
        estimated,
        outcome,
        duration: context.started.elapsed(),
    });
}

async fn relay(
    committed: &mut Committed,
    context: &StreamContext,
    tx: &mpsc::Sender<Bytes>,
    progress: &mut Progress,
) -> End {
    let mut idle_deadline = Instant::now() + context.idle;
    loop {
        while let Some(event) = committed.pending.pop_front() {
            let (bytes, then) = match step(event, context, progress) {
                Step::Skip => continue,
                Step::Abort(reason) => return End::Abort(reason),
                Step::Forward(bytes) => (bytes, None),
                Step::ForwardThenAbort(bytes, reason) => (bytes, Some(End::Abort(reason))),
            };
            tokio::select! {
                biased;
                sent = tx.send(bytes) => if sent.is_err() { return End::Cancelled },
                () = context.stop.cancelled() => return End::Stopped,
                () = sleep_until(context.total_deadline) => return End::Abort("total-timeout"),
            }
            if let Some(end) = then {
                return end;
            }
            if progress.saw_done {
                // Whatever a backend sends after [DONE] is not relayed.
                return End::Done;
            }
        }
        let wake = idle_deadline.min(context.total_deadline);
        tokio::select! {
            biased;
            () = tx.closed() => return End::Cancelled,
            () = context.stop.cancelled() => return End::Stopped,
            () = sleep_until(wake) => {
                return End::Abort(if wake >= context.total_deadline { "total-timeout" } else { "idle-timeout" });
            }
            frame = committed.body.frame() => match frame {
                None => {
                    return if progress.saw_done { End::Done } else { End::Abort("truncated") };
                }
                Some(Err(_)) => return End::Abort("backend-error"),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        committed.parser.push(&data);
                        while let Some(event) = committed.parser.next_event() {
                            match event {
                                Ok(event) => committed.pending.push_back(event),
                                Err(_) => return End::Abort("malformed"),
                            }
                        }
                        idle_deadline = Instant::now() + context.idle;
                    }
                }
            }
        }
    }
}

/// What to do with one backend event.
fn step(event: SseEvent, context: &StreamContext, progress: &mut Progress) -> Step {
    if event.is_done() {
        progress.saw_done = true;
        return Step::Forward(Bytes::from_static(DONE));
    }
    let Ok(info) = openai::response::chunk_usage(&event.data) else {
        return Step::Abort("malformed");
    };
    if info.is_error {
        return Step::ForwardThenAbort(event.to_bytes(), "backend-error");
    }
    if info.output_pieces > 0 {
        let now = Instant::now();
        if progress.first_piece.is_none() {
            metrics::histogram!(m::TIME_TO_FIRST_TOKEN, "gen_ai_request_model" => context.model)
                .record((now - context.started).as_secs_f64());
            progress.first_piece = Some(now);
        }
        progress.last_piece = Some(now);
        progress.pieces += info.output_pieces;
    }
    if let Some(usage) = info.usage {
        progress.usage = Some(usage);
        if !context.client_wants_usage {
            if info.usage_only {
                return Step::Skip;
            }
            return match without_usage(&event.data) {
                Some(data) => Step::Forward(data),
                None => Step::Abort("malformed"),
            };
        }
    }
    Step::Forward(event.to_bytes())
}

/// The chunk `data` without its `usage` member, as an event.
fn without_usage(data: &str) -> Option<Bytes> {
    let mut chunk: serde_json::Map<String, serde_json::Value> = serde_json::from_str(data).ok()?;
    chunk.remove("usage");
    let json = serde_json::to_string(&chunk).ok()?;
    Some(Bytes::from(format!("data: {json}\n\n")))
}
