//! Logs and traces.
//!
//! Logs are JSON, one object per line. Inside a request every line carries
//! `trace_id`, `span_id` and `request_id`, so a search by trace id finds
//! every line of the request; fields of enclosing `tracing` spans are
//! flattened in as well. When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, each
//! request is also a span exported over OTLP/HTTP, and the ids in the logs
//! are the exported ones.
//!
//! Why a task-local and not a `tracing` span per request: a span with its
//! fields costs a dozen allocations per request whether or not anything is
//! logged, which on a redirect that takes a few microseconds is a large
//! share of the work. The request context rides in a task-local that the
//! log layer reads only when a line is actually written; the `tracing`
//! span is created only when traces are exported.

use crate::trace_context::TraceParent;
use axum::http::HeaderValue;
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Instrument, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static OTEL_ENABLED: AtomicBool = AtomicBool::new(false);

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
/// plus OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(service: &'static str, filter: &str) -> Result<Telemetry, TelemetryError> {
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| TelemetryError::Filter {
            filter: filter.to_string(),
            reason: e.to_string(),
        })?;
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            )
        }
        _ => None,
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("reliable")));
    tracing_subscriber::registry()
        .with(env_filter)
        .with(JsonLogLayer::new(std::io::stdout))
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    OTEL_ENABLED.store(provider.is_some(), Ordering::SeqCst);
    Ok(Telemetry { provider })
}

/// What every log line written while serving a request carries.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// This hop's trace context (to propagate to upstreams and messages).
    pub trace: TraceParent,
    pub request_id: HeaderValue,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Starts a request: continues `remote` (or starts a trace) and, when
/// traces are exported, opens the OTel span whose ids the logs then use.
pub(crate) fn begin_request(
    service: &'static str,
    method: &'static str,
    request_id: &HeaderValue,
    remote: Option<TraceParent>,
) -> (Option<Span>, RequestContext) {
    let mut trace = match remote {
        Some(parent) => parent.child(),
        None => TraceParent::new_root(),
    };
    let mut span = None;
    if OTEL_ENABLED.load(Ordering::Relaxed) {
        let request_span = tracing::info_span!("request", service, http.request.method = method);
        if let Some(parent) = remote {
            let remote_context = SpanContext::new(
                opentelemetry::trace::TraceId::from(parent.trace_id),
                opentelemetry::trace::SpanId::from(parent.span_id),
                if parent.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            );
            let _ = request_span
                .set_parent(opentelemetry::Context::new().with_remote_span_context(remote_context));
        }
        let exported = request_span.context().span().span_context().clone();
        if exported.is_valid() {
            trace = TraceParent {
                trace_id: u128::from_be_bytes(exported.trace_id().to_bytes()),
                span_id: u64::from_be_bytes(exported.span_id().to_bytes()),
                sampled: exported.is_sampled(),
            };
        }
        span = Some(request_span);
    }
    let context = RequestContext {
        trace,
        request_id: request_id.clone(),
    };
    (span, context)
}

/// Runs `future` as the body of the request described by `context`.
pub(crate) async fn in_request<F: Future>(
    context: RequestContext,
    span: Option<Span>,
    future: F,
) -> F::Output {
    match span {
        Some(span) => REQUEST.scope(context, future.instrument(span)).await,
        None => REQUEST.scope(context, future).await,
    }
}

/// Runs `f` (which logs) as part of the request described by `context`.
pub(crate) fn with_request<R>(context: RequestContext, f: impl FnOnce() -> R) -> R {
    REQUEST.sync_scope(context, f)
}

/// The recorded fields of a span, kept in its extensions for the log layer.
struct SpanFields(Map<String, Value>);

/// Writes one JSON object per event: timestamp, level, target, the request
/// context, enclosing span fields (root first, so inner spans win), then
/// the event's own fields.
pub(crate) struct JsonLogLayer<W> {
    make_writer: W,
}

impl<W> JsonLogLayer<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_string()),
        );
        line.insert("target".into(), Value::String(meta.target().to_string()));
        let _ = REQUEST.try_with(|request| {
            line.insert(
                "trace_id".into(),
                Value::String(request.trace.trace_id_hex()),
            );
            line.insert("span_id".into(), Value::String(request.trace.span_id_hex()));
            line.insert(
                "request_id".into(),
                Value::String(String::from_utf8_lossy(request.request_id.as_bytes()).into_owned()),
            );
        });
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        // One write per line so concurrent lines never interleave.
        let _ = self.make_writer.make_writer_for(meta).write_all(&bytes);
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole source chain: "what we were doing: why it failed: ...".
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn log_lines_inside_a_request_carry_its_trace_and_span_ids() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(captured.clone()));
        let remote = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let context = tracing::subscriber::with_default(subscriber, || {
            let (span, context) =
                begin_request("svc", "GET", &HeaderValue::from_static("rid"), remote);
            runtime.block_on(in_request(context.clone(), span, async {
                let inner = tracing::info_span!("lookup", slug = "abc");
                inner.in_scope(|| tracing::info!(answer = 42, "inside"));
            }));
            tracing::info!("outside");
            context
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        let inside = &lines[0];
        assert_eq!(inside["message"], "inside");
        assert_eq!(inside["answer"], 42);
        assert_eq!(inside["slug"], "abc");
        assert_eq!(inside["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(inside["span_id"], context.trace.span_id_hex());
        assert_ne!(inside["span_id"], "00f067aa0ba902b7");
        assert_eq!(inside["request_id"], "rid");
        assert_eq!(inside["level"], "INFO");
        let outside = &lines[1];
        assert!(outside.get("trace_id").is_none());
    }
}
