//! The log half of telemetry: one JSON object per line.
//!
//! A line carries the hop's `trace_id`/`span_id` (and `request_id` when
//! the hop is an HTTP request) from the task-local [`super::HOP`], so the
//! ids are the exported ones whether or not a `tracing` span exists.

use super::HOP;
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

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
        let _ = HOP.try_with(|hop| {
            line.insert("trace_id".into(), Value::String(hop.trace.trace_id_hex()));
            line.insert("span_id".into(), Value::String(hop.trace.span_id_hex()));
            if let Some(request_id) = &hop.request_id {
                line.insert(
                    "request_id".into(),
                    Value::String(String::from_utf8_lossy(request_id.as_bytes()).into_owned()),
                );
            }
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
        let text = super::error_chain(value);
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
    use crate::telemetry::{begin_request, in_request, Hop};
    use crate::trace_context::TraceParent;
    use axum::http::HeaderValue;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

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
            let (span, context) = begin_request(
                "svc",
                "GET",
                Some("/x"),
                &HeaderValue::from_static("rid"),
                remote,
            );
            runtime.block_on(in_request(context.clone(), span.as_ref(), async {
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

    #[test]
    fn log_lines_inside_a_hop_carry_its_ids_and_no_request_id() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(captured.clone()));
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let hop = tracing::subscriber::with_default(subscriber, || {
            let hop = Hop::continuing(
                tracing::info_span!("process", messaging.message.id = "e1"),
                "notifier",
                parent,
            );
            runtime.block_on(hop.run(async { tracing::info!("delivered") }));
            hop.traceparent()
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
        let line: Value = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span_id"], hop.span_id_hex());
        assert_ne!(line["span_id"], "00f067aa0ba902b7");
        assert_eq!(line["messaging.message.id"], "e1");
        assert!(line.get("request_id").is_none());
    }
}
