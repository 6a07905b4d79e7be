//! The whole path of a span, without a process: `tracing` span, hop,
//! tagging, per-module export. Spans are exported as they end (simple
//! processor) into a recording exporter that keeps its Resource's name.

use super::*;
use crate::telemetry::hop::server_span;
use crate::telemetry::Hop;
use crate::trace_context::TraceParent;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::Key;
use tracing_subscriber::layer::SubscriberExt;

/// Every exported span with the `service.name` of its exporter.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, SpanData)>>>);

impl Recorded {
    fn spans(&self) -> Vec<(String, SpanData)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn named(&self, name: &str) -> (String, SpanData) {
        self.spans()
            .into_iter()
            .find(|(_, span)| span.name == name)
            .unwrap_or_else(|| panic!("no span named {name}: {:?}", self.spans()))
    }
}

#[derive(Debug)]
struct RecordingExporter {
    service: String,
    sink: Recorded,
}

impl SpanExporter for RecordingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut sink = self.sink.0.lock().unwrap_or_else(|e| e.into_inner());
        sink.extend(batch.into_iter().map(|span| (self.service.clone(), span)));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = resource
            .get(&Key::new("service.name"))
            .map(|v| v.as_str().into_owned())
            .unwrap_or_default();
        assert_eq!(
            resource
                .get(&Key::new("deployment.environment.name"))
                .map(|v| v.as_str().into_owned()),
            Some("test".to_string()),
            "a module's Resource keeps the provider's attributes"
        );
    }
}

/// Runs `f` under a subscriber that exports through the module routing.
fn traced<R>(f: impl FnOnce() -> R) -> (R, Recorded) {
    let recorded = Recorded::default();
    let sink = recorded.clone();
    let exporter = ModuleExporter::new("reliable", move || {
        Ok(RecordingExporter {
            service: String::new(),
            sink: sink.clone(),
        })
    })
    .expect("exporter");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ModuleTagger)
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name("reliable")
                .with_attribute(KeyValue::new("deployment.environment.name", "test"))
                .build(),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let result = tracing::subscriber::with_default(subscriber, f);
    (result, recorded)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

const REQUEST: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn producer_consumer_and_client_form_one_trace_each_under_its_module() {
    let request = TraceParent::parse(REQUEST).expect("valid");
    let ((published, processed, sent), recorded) = traced(|| {
        let producer = Hop::continuing(
            tracing::info_span!("publish", otel.kind = "producer"),
            "orders",
            Some(request),
        );
        let published = producer.traceparent();
        drop(producer);
        let consumer = Hop::continuing(
            tracing::info_span!("process", otel.kind = "consumer"),
            "notifier",
            Some(published),
        );
        let sent = runtime().block_on(consumer.run(async {
            let client = Hop::outgoing(
                tracing::info_span!("webhook", otel.kind = "client"),
                "ignored inside a hop",
                None,
            );
            client.fail("503");
            client.traceparent()
        }));
        (published, consumer.traceparent(), sent)
    });
    let (service, producer) = recorded.named("publish");
    assert_eq!(service, "orders");
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(producer.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        producer.span_context.span_id().to_string(),
        published.span_id_hex()
    );
    let (service, consumer) = recorded.named("process");
    assert_eq!(service, "notifier");
    assert_eq!(consumer.span_kind, SpanKind::Consumer);
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert_eq!(
        consumer.span_context.span_id().to_string(),
        processed.span_id_hex()
    );
    let (service, client) = recorded.named("webhook");
    assert_eq!(service, "notifier", "the client inherits its module");
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, consumer.span_context.span_id());
    assert_eq!(
        client.span_context.span_id().to_string(),
        sent.span_id_hex()
    );
    assert!(matches!(
        client.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    for (_, span) in recorded.spans() {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(
            span.attributes
                .iter()
                .all(|kv| kv.key.as_str() != MODULE_KEY),
            "the routing tag is not exported"
        );
    }
}

#[test]
fn a_request_takes_the_module_its_route_names_and_passes_it_to_its_children() {
    let ((), recorded) = traced(|| {
        let (server, _) = server_span("orders", "POST", Some("/api/v1/things"), None);
        // What the module's route layer does before the handler runs.
        server.module().name("notifier");
        let child = tracing::info_span!(parent: server.span(), "lookup");
        drop(child);
        server.finish(503);
        drop(tracing::info_span!("startup"));
    });
    let (service, request) = recorded.named("POST /api/v1/things");
    assert_eq!(service, "notifier");
    assert_eq!(request.span_kind, SpanKind::Server);
    let attribute = |name: &str| {
        request
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == name)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attribute("http.route"), Some("/api/v1/things".into()));
    assert_eq!(attribute("http.request.method"), Some("POST".into()));
    assert_eq!(
        attribute("http.response.status_code"),
        Some(opentelemetry::Value::I64(503))
    );
    assert_eq!(attribute("error.type"), Some("503".into()));
    assert_eq!(recorded.named("lookup").0, "notifier");
    assert_eq!(
        recorded.named("startup").0,
        "reliable",
        "outside any module"
    );
}

#[test]
fn batches_split_by_module_and_the_last_tag_wins() {
    let span = |name: &'static str, tags: &[&'static str]| {
        let mut data = opentelemetry_sdk::trace::SpanData {
            name: name.into(),
            ..empty_span()
        };
        data.attributes = tags
            .iter()
            .map(|tag| KeyValue::new(MODULE_KEY, *tag))
            .collect();
        data
    };
    let groups = by_module(
        vec![
            span("a", &["orders"]),
            span("b", &[]),
            span("c", &["orders", "shortener"]),
            span("d", &["orders"]),
        ],
        "reliable",
    );
    let names: Vec<(String, Vec<String>)> = groups
        .into_iter()
        .map(|(module, spans)| {
            assert!(spans.iter().all(|s| s.attributes.is_empty()));
            (module, spans.iter().map(|s| s.name.to_string()).collect())
        })
        .collect();
    assert_eq!(
        names,
        [
            ("orders".to_string(), vec!["a".to_string(), "d".to_string()]),
            ("reliable".to_string(), vec!["b".to_string()]),
            ("shortener".to_string(), vec!["c".to_string()]),
        ]
    );
}

fn empty_span() -> SpanData {
    SpanData {
        span_context: opentelemetry::trace::SpanContext::empty_context(),
        parent_span_id: opentelemetry::trace::SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: "".into(),
        start_time: std::time::SystemTime::UNIX_EPOCH,
        end_time: std::time::SystemTime::UNIX_EPOCH,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: opentelemetry::trace::Status::Unset,
        instrumentation_scope: Default::default(),
    }
}
