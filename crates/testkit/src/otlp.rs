//! An OTLP/HTTP trace receiver for tests: a server on a free loopback port
//! that accepts `POST /v1/traces` in protobuf (what the `opentelemetry-otlp`
//! HTTP exporter sends), decodes each request with the generated OTLP
//! messages, and keeps every span with the `service.name` of its Resource.
//! Point `OTEL_EXPORTER_OTLP_ENDPOINT` at [`Collector::endpoint`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// One received span, ids in lower-case hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the Resource the span arrived under.
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: SpanKind,
    /// Attribute values as text (numbers and booleans written out).
    pub attributes: HashMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// Requests whose body was not an OTLP trace request.
    undecodable: Mutex<usize>,
}

#[derive(Clone)]
pub struct Collector {
    inner: Arc<Inner>,
    endpoint: String,
}

impl Collector {
    /// Starts the receiver on the current Tokio runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind OTLP receiver: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("OTLP receiver address: {e}"));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            endpoint: format!("http://{addr}"),
        }
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter adds
    /// `/v1/traces`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.inner
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    pub fn undecodable(&self) -> usize {
        *self
            .inner
            .undecodable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

async fn receive(State(inner): State<Arc<Inner>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        *inner.undecodable.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| text_of(kv.value.as_ref()))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    inner
        .spans
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(received);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text_of(kv.value.as_ref())))
        .collect()
}

fn text_of(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
