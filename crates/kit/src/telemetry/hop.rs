//! Spans that cross a process boundary, and the `traceparent` each sends
//! on: [`Hop`] for messages and outgoing calls, [`begin_request`] for the
//! HTTP server side (see `http::observe`).

use super::routing::{ModuleSlot, MODULE_KEY};
use super::{exporting, HopContext, HOP};
use crate::trace_context::TraceParent;
use axum::http::HeaderValue;
use opentelemetry::trace::{SpanContext, Status, TraceContextExt, TraceFlags, TraceState};
use std::future::Future;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// One span of a trace that crosses a process boundary: a message
/// published or processed, a call made. Build the `tracing` span with its
/// kind (`otel.kind = "producer"`, ...) and its semantic-convention
/// fields, then make it a hop, which links it to the trace it continues
/// and gives the `traceparent` to send on.
///
/// Without trace export the hop still has ids of its own (same trace, new
/// span id), so log lines and the propagated `traceparent` stay right.
pub struct Hop {
    span: Span,
    trace: TraceParent,
}

impl Hop {
    /// `span` continues `parent` (the `traceparent` a message carried; a
    /// new trace when `None`) and belongs to `module`, as do the spans
    /// opened inside it.
    pub fn continuing(span: Span, module: &'static str, parent: Option<TraceParent>) -> Self {
        let trace = continue_in(&span, ModuleSlot::new(module), parent);
        Self { span, trace }
    }

    /// An outgoing call's span: inside a hop (a message being processed, a
    /// request being served) it is a child of the current span and of that
    /// hop's module; elsewhere (an operator's replay) it continues `parent`
    /// as `module`.
    pub fn outgoing(span: Span, module: &'static str, parent: Option<TraceParent>) -> Self {
        match HOP.try_with(|hop| hop.trace) {
            Ok(current) => {
                let trace = exported(&span).unwrap_or_else(|| current.child());
                Self { span, trace }
            }
            Err(_) => Self::continuing(span, module, parent),
        }
    }

    /// The context to send on (message header, request header).
    pub fn traceparent(&self) -> TraceParent {
        self.trace
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Marks the hop failed: `error.type` (a low-cardinality reason, such
    /// as a status code or `timeout`) and status ERROR.
    pub fn fail(&self, error_type: impl Into<String>) {
        let error_type = error_type.into();
        self.span.set_attribute("error.type", error_type.clone());
        self.span.set_status(Status::error(error_type));
    }

    /// Runs `future` inside this hop: in its span, and with its ids on
    /// every log line written meanwhile.
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        let context = HopContext {
            trace: self.trace,
            request_id: None,
        };
        HOP.scope(context, future.instrument(self.span.clone()))
            .await
    }
}

/// The trace context of the request or message this task is handling
/// (its own span's ids, the `traceparent` to send on), if any. The
/// observe layer sets it around every handler; a handler reads it here
/// rather than from the request's extensions (an insert into them cost
/// about 475 instructions a request, issue 18).
pub fn current_trace() -> Option<TraceParent> {
    HOP.try_with(|hop| hop.trace).ok()
}

/// Parents `span` on `remote` (a root when `None`) with `module` in the
/// context; returns the span's own context, exported or made up.
fn continue_in(span: &Span, module: ModuleSlot, remote: Option<TraceParent>) -> TraceParent {
    let mut parent = opentelemetry::Context::new();
    if let Some(remote) = remote {
        parent = parent.with_remote_span_context(SpanContext::new(
            opentelemetry::trace::TraceId::from(remote.trace_id),
            opentelemetry::trace::SpanId::from(remote.span_id),
            if remote.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        ));
    }
    // Fails only when the span is not exported; the fallback covers it.
    let _ = span.set_parent(parent.with_value(module));
    exported(span).unwrap_or_else(|| match remote {
        Some(remote) => remote.child(),
        None => TraceParent::new_root(),
    })
}

/// The exported context of `span`, if it is exported.
fn exported(span: &Span) -> Option<TraceParent> {
    let context = span.context();
    let exported = context.span().span_context().clone();
    exported.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(exported.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(exported.span_id().to_bytes()),
        sampled: exported.is_sampled(),
    })
}

/// The span of a request being served, when traces are exported.
pub(crate) struct ServerSpan {
    span: Span,
    /// Filled by the module's route layer once the router matched.
    module: ModuleSlot,
}

impl ServerSpan {
    #[cfg(test)]
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    pub(crate) fn module(&self) -> &ModuleSlot {
        &self.module
    }

    /// Records the answer (HTTP server conventions: 5xx is an error, 4xx
    /// is the client's) and the module now known, then ends the span.
    pub(crate) fn finish(self, status: u16) {
        self.span
            .set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            self.span.set_attribute("error.type", status.to_string());
            self.span.set_status(Status::error(status.to_string()));
        }
        self.span.set_attribute(MODULE_KEY, self.module.get());
    }
}

/// Starts a request: continues `remote` (or starts a trace) and, when
/// traces are exported, opens its SERVER span (named after the route
/// template) whose ids the logs then use. `service` is the module until
/// the route's own label names another.
pub(crate) fn begin_request(
    service: &'static str,
    method: &'static str,
    route: Option<&str>,
    request_id: &HeaderValue,
    remote: Option<TraceParent>,
) -> (Option<ServerSpan>, HopContext) {
    let (server, trace) = if exporting() {
        let (server, trace) = server_span(service, method, route, remote);
        (Some(server), trace)
    } else {
        let trace = match remote {
            Some(parent) => parent.child(),
            None => TraceParent::new_root(),
        };
        (None, trace)
    };
    let context = HopContext {
        trace,
        request_id: Some(request_id.clone()),
    };
    (server, context)
}

/// The SERVER span of a request, named after its route template.
pub(crate) fn server_span(
    service: &'static str,
    method: &'static str,
    route: Option<&str>,
    remote: Option<TraceParent>,
) -> (ServerSpan, TraceParent) {
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
    );
    let module = ModuleSlot::new(service);
    let trace = continue_in(&span, module.clone(), remote);
    (ServerSpan { span, module }, trace)
}

/// Runs `future` as the body of the request described by `context`.
pub(crate) async fn in_request<F: Future>(
    context: HopContext,
    server: Option<&ServerSpan>,
    future: F,
) -> F::Output {
    match server {
        Some(server) => {
            HOP.scope(context, future.instrument(server.span.clone()))
                .await
        }
        None => HOP.scope(context, future).await,
    }
}

/// Runs `f` (which logs) as part of the hop described by `context`.
pub(crate) fn with_request<R>(context: HopContext, f: impl FnOnce() -> R) -> R {
    HOP.sync_scope(context, f)
}
