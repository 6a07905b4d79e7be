//! Logs and traces.
//!
//! Logs are JSON, one object per line ([`log`]). Inside a hop (a request
//! served, a message processed, a call made) every line carries the hop's
//! `trace_id` and `span_id` (and `request_id` for a request), so a search
//! by trace id finds every line of the trace; fields of enclosing
//! `tracing` spans are flattened in as well. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over
//! OTLP/HTTP, and the ids in the logs are the exported ones.
//!
//! Why a task-local and not a `tracing` span per request: a span with its
//! fields costs a dozen allocations per request whether or not anything is
//! logged, which on a redirect that takes a few microseconds is a large
//! share of the work. The hop's context rides in a task-local that the log
//! layer reads only when a line is actually written; the server span is
//! created only when traces are exported.
//!
//! # Spans that cross processes ([`hop`])
//!
//! A trace follows an order from the HTTP request (kind SERVER) through
//! the outbox relay's publish (PRODUCER) and the notifier's processing of
//! the message (CONSUMER) to the webhook call (CLIENT), each span the
//! parent of the next. What crosses a boundary is the W3C `traceparent`
//! of the span on the sending side: the HTTP header, the outbox row and
//! the bus message header, the webhook request header. [`Hop`] is the one
//! way to open such a span: it sets the parent from the `traceparent`
//! received and gives the one to send on. Attributes follow the
//! OpenTelemetry HTTP and messaging semantic conventions; kinds are set
//! with the `otel.kind` field.
//!
//! # `service.name` per module ([`routing`])
//!
//! Several modules may run in one process (`reliable up`, `serve --target
//! orders,notifier`), and an OTLP `Resource` (which carries
//! `service.name`) belongs to a whole export request, so one provider with
//! one Resource cannot name each module. Choices considered:
//! - one tracer provider per module: `tracing-opentelemetry` drives one
//!   tracer, and parent/child links between spans of two providers would
//!   have to be rebuilt by hand;
//! - `service.name` as a span attribute: backends (Tempo, Jaeger) read the
//!   service from the Resource, so the spans would still show `reliable`;
//! - chosen: one provider, and the module travels with the span.
//!   An entry span (server, producer, consumer) puts its module in the
//!   OpenTelemetry `Context` it is started with; children started from it
//!   inherit the context and so the module. A span processor tags each
//!   span at start with the module found in its parent context, and the
//!   batch exporter splits each batch by that tag and sends each part
//!   through an OTLP exporter of its own whose Resource is the provider's
//!   with `service.name` set to the module. Spans outside any module
//!   (startup) keep the process's name, `reliable`. The cost is one OTLP
//!   request per module per batch and one exporter per module, created
//!   when the module's first span is exported.
//!
//! An HTTP request learns its module only when the router has matched a
//! route (modules can share one listener): the module slot in the context
//! is filled then, before the handler runs, so the handler's spans
//! inherit the right module, and the server span is re-tagged as it ends.
//!
//! Trace export does not follow the log filter: spans and events at INFO
//! and above are exported whatever `RELIABLE_LOG` says, so quiet logs do
//! not cut traces short. Export runs in batches on a background thread
//! (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s); [`Telemetry::shutdown`]
//! flushes what is left.

mod hop;
mod log;
mod routing;

pub(crate) use hop::{begin_request, in_request, with_request};
pub use hop::{current_trace, Hop};
pub(crate) use routing::ModuleSlot;

use crate::trace_context::TraceParent;
use axum::http::HeaderValue;
use log::JsonLogLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static OTEL_ENABLED: AtomicBool = AtomicBool::new(false);

/// `error: cause: cause ...`, the whole source chain on one line: what
/// logs and stored failure reasons show ("what we were doing: why").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether spans are exported. Server spans are only created then, and a
/// caller on a hot path (the gateway's upstream calls) skips its client
/// spans otherwise.
pub fn exporting() -> bool {
    OTEL_ENABLED.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("could not build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes buffered spans. Call last, after every module has stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace exporter shutdown failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber: JSON logs filtered by `filter` (an
/// `EnvFilter` directive such as `info` or `info,reliable_shortener=debug`),
/// plus OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `service`
/// names the spans that belong to no module (startup).
pub fn init(service: &'static str, filter: &str) -> Result<Telemetry, TelemetryError> {
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| TelemetryError::Filter {
            filter: filter.to_string(),
            reason: e.to_string(),
        })?;
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        // The filter is global here, so disabled call sites cost nothing.
        tracing_subscriber::registry()
            .with(env_filter)
            .with(JsonLogLayer::new(std::io::stdout))
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        return Ok(Telemetry { provider: None });
    }
    let provider = routing::provider(service)?;
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("reliable"))
        .with_filter(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(JsonLogLayer::new(std::io::stdout).with_filter(env_filter))
        .with(traces)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    OTEL_ENABLED.store(true, Ordering::SeqCst);
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// What every log line written inside a hop carries.
#[derive(Debug, Clone)]
pub(crate) struct HopContext {
    /// This hop's trace context (to propagate to upstreams and messages).
    pub trace: TraceParent,
    /// The request id, when the hop is an HTTP request.
    pub request_id: Option<HeaderValue>,
}

tokio::task_local! {
    static HOP: HopContext;
}
