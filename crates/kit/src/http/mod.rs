//! The HTTP conventions every module gets from [`stack`].
//!
//! Layers, outermost first:
//! 1. `observe`: request id (kept if the client sent a sane one, generated
//!    otherwise, echoed in the response), W3C trace context (continued or
//!    started) on a `request` span so every log line inside carries
//!    `trace_id`/`span_id`, the per-request timeout (503 problem), and the
//!    `http_server_request_duration_seconds` histogram labelled by route
//!    template, never by raw path;
//! 2. panic catching: a panicking handler is a 500 problem, not a dropped
//!    connection;
//! 3. the request body limit, enforced by the extractors (413 problem);
//! 4. per route: remember the matched route template for the metric label.
//!
//! Unknown paths and methods answer problem+json 404/405 too.

mod extract;
mod observe;

pub use extract::{parse_json, ApiJson, ApiQuery};

use crate::problem::Problem;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use observe::{Observe, ObserveLayer, RouteLabelLayer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// HTTP settings shared by every module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest time a request may take before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.request_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "http.request_timeout",
                "must be above zero",
            ));
        }
        if self.body_limit_bytes == 0 {
            return Err(ConfigError::invalid(
                "http.body_limit_bytes",
                "must be above zero",
            ));
        }
        Ok(())
    }
}

/// Wraps a module's router in the platform's middleware stack.
pub fn stack(router: Router, service: &'static str, config: &HttpConfig) -> Router {
    let observe = ObserveLayer::new(Arc::new(Observe::new(service, config.request_timeout)));
    router
        .route_layer(RouteLabelLayer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(observe)
}

/// Labels the request metrics of `router`'s routes with `service` instead
/// of the stack's default, so modules sharing one listener (`reliable up`)
/// keep their own series. Apply to a module's router before merging it.
pub fn service_label(router: Router, service: &'static str) -> Router {
    router.route_layer(axum::middleware::map_response(
        move |mut response: Response| async move {
            response
                .extensions_mut()
                .insert(observe::ServiceLabel(service));
            response
        },
    ))
}

async fn not_found() -> Problem {
    Problem::not_found("no resource at this path")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    Problem::internal().into_response()
}
