//! The HTTP conventions every module gets from [`stack`].
//!
//! Layers, outermost first:
//! 1. the request body limit, enforced by the extractors (413 problem);
//! 2. routing, then on every route and on the fallback `observe`: request
//!    id (kept if the client sent a sane one, generated otherwise, echoed
//!    in the response), W3C trace context (continued or started) so every
//!    log line inside carries `trace_id`/`span_id` (and, when traces are
//!    exported, a SERVER span named after the route template with the HTTP
//!    server attributes), the per-request timeout
//!    (503 problem), panic catching (500 problem, not a dropped
//!    connection), and the `http_server_request_duration_seconds`
//!    histogram labelled by route template, never by raw path.
//!
//! Unknown paths and methods answer problem+json 404/405 too, observed
//! like any route (`http_route="unmatched"` for unknown paths), unless a
//! [`CatchAll`] answers the paths no route matches
//! ([`stack_with_catch_all`]: the gateway's proxy, observed under its own
//! label). With [`front`], whose routes are [`Routes`] (their templates
//! known), the server hands those requests to the catch-all without going
//! through axum at all. Handlers read their request's trace context with
//! [`crate::telemetry::current_trace`]. A generated request id is also
//! written into the request's headers, for a handler that forwards them,
//! unless its catch-all forwards none
//! ([`CatchAll::keeping_request_headers`]).
//!
//! Every response gets the security headers a browser heeds
//! (`http.security_headers`): `X-Content-Type-Options: nosniff`, a
//! `Content-Security-Policy` that loads nothing and allows no framing, and
//! `Referrer-Policy: no-referrer`. A handler that sets its own (a console
//! page with its scripts) keeps its own. A handler may set those its
//! answers need itself ([`CatchAll::with_own_security_headers`],
//! [`OwnSecurityHeaders`]): the gateway relays the origin's answer as it
//! came, the shortener's redirect carries only `Referrer-Policy`.

mod extract;
mod find;
mod observe;
mod routes;
mod security;

pub use extract::{parse_json, ApiJson, ApiQuery};
pub use find::find_headers;
pub use observe::{one_segment, CatchAll};
pub use routes::{Front, FrontFuture, Routes};
pub use security::{add_missing as add_security_headers, OwnSecurityHeaders};

use crate::forwarded::TrustedProxies;
use crate::problem::Problem;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use observe::{Observe, ObserveLayer};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Set by an in-process caller on a request it hands straight to a
/// module's router (the gateway in front of co-located modules in
/// `reliable up`): the caller's own stack already ran for it, so the
/// request carries a checked `X-Request-Id` and the caller's
/// `traceparent`, and the caller waits `caller_timeout` for the answer
/// and echoes the request id itself. The module's observe layer then
/// keeps only what is the module's own (its trace context, metrics,
/// cost sampling and panic catching), and arms its timeout only when it
/// is shorter than the caller's, which would otherwise fire first.
#[derive(Debug, Clone, Copy)]
pub struct InProcessCall {
    pub caller_timeout: Duration,
    /// The caller's trace context, whose child the module's span is,
    /// handed over parsed: the caller still sends it as `traceparent`
    /// (handlers see the headers a remote call carries), and the module's
    /// stack need not parse that again (about 550 instructions a request,
    /// issue 18). `None`: the module parses the header, if any.
    pub trace: Option<crate::trace_context::TraceParent>,
}
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// More connection threads than this is a typo, not a machine.
const MAX_CONNECTION_THREADS: usize = 1024;

/// HTTP settings shared by every module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest time a request may take before it is answered 503.
    #[schemars(with = "crate::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes (413 beyond): what a
    /// module's API parses, and what the gateway forwards on routes that
    /// set no `max_body_bytes` of their own.
    pub body_limit_bytes: usize,
    /// Peers (CIDRs like `10.0.0.0/8`, or single addresses) whose
    /// `X-Forwarded-For` is believed: the load balancer in front of the
    /// gateway, and the gateway's addresses for modules that run in other
    /// pods. Empty (the default) believes no one and uses the TCP peer.
    pub trusted_proxies: Vec<String>,
    /// Send `X-Content-Type-Options`, `Content-Security-Policy` and
    /// `Referrer-Policy` on every response that does not set its own
    /// (answers the gateway relays pass as they came, unless their route
    /// sets `security_headers`; a redirect carries `Referrer-Policy`
    /// alone).
    pub security_headers: bool,
    /// Measure the CPU of one request in this many, per thread, for
    /// `reliable_cost_cpu_seconds_total{module,route}` (cost attribution,
    /// docs/operations/cost.md); each measured request counts this many
    /// times. 0 turns it off, 1 measures every request.
    pub cost_sample_every: u32,
    /// Serve the main listener's connections on this many threads of
    /// their own, each with a single-threaded runtime and, in the
    /// gateway, its own upstream connections, so that a request stays on
    /// one thread (docs/performance.md, "Connection threads"). Unset: one
    /// per CPU the process may use. 0 serves them on the shared runtime
    /// with everything else.
    pub connection_threads: Option<usize>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            security_headers: true,
            cost_sample_every: crate::cpu_cost::DEFAULT_SAMPLE_EVERY,
            connection_threads: None,
        }
    }
}

impl HttpConfig {
    /// `connection_threads`, or one per CPU the process may use (its
    /// cgroup's quota included) when unset.
    pub fn connection_threads(&self) -> usize {
        self.connection_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

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
        for (i, cidr) in self.trusted_proxies.iter().enumerate() {
            TrustedProxies::parse(std::slice::from_ref(cidr)).map_err(|e| {
                ConfigError::invalid(&format!("http.trusted_proxies[{i}]"), e.to_string())
            })?;
        }
        if self
            .connection_threads
            .is_some_and(|n| n > MAX_CONNECTION_THREADS)
        {
            return Err(ConfigError::invalid(
                "http.connection_threads",
                format!("must be at most {MAX_CONNECTION_THREADS}"),
            ));
        }
        Ok(())
    }

    /// `trusted_proxies`, parsed; [`HttpConfig::validate`] refuses a bad
    /// entry at start, and should one get here, trusting no one is the
    /// safe reading.
    pub fn trusted(&self) -> TrustedProxies {
        TrustedProxies::parse(&self.trusted_proxies).unwrap_or_default()
    }
}

/// Wraps a module's router in the platform's middleware stack.
///
/// Everything is in the one route layer (on every route, its 405 answer
/// and the fallback): axum boxes the future of each `Router::layer` and clones a
/// boxed service for it on every request, about 2,200 instructions a
/// layer on the redirect path (issue 18), so the stack adds none.
pub fn stack(router: Router, service: &'static str, config: &HttpConfig) -> Router {
    stack_with_catch_all(router, service, config, None)
}

/// [`stack`], with `catch_all` answering every path no route matches
/// instead of the 404 problem (the gateway's proxy). It is observed like a
/// route, under its own route label, and skips what a route pays for in
/// axum: the path parameters of a `/{*path}` route (the whole path
/// percent-decoded into the request, about 1,600 instructions), the
/// matched path, the method router and the handler's extractors.
pub fn stack_with_catch_all(
    router: Router,
    service: &'static str,
    config: &HttpConfig,
    catch_all: Option<CatchAll>,
) -> Router {
    let (router, observe) = stack_routes(router, service, config);
    match catch_all {
        Some(catch_all) => router.fallback_service(observe::catch_all(observe, catch_all)),
        None => router.fallback_service(ObserveLayer::new(observe).layer(tower::service_fn(
            |_: axum::extract::Request| async {
                Ok::<_, Infallible>(not_found().await.into_response())
            },
        ))),
    }
}

/// [`stack_with_catch_all`] for routes whose templates are known: when
/// all are and a catch-all answers the other paths (the gateway's proxy,
/// the shortener's redirect), the server hands a request for any of those
/// straight to the observed catch-all, around axum's routing (see
/// [`Front`]). The answer and what is observed are the same either way.
pub fn front(
    routes: Routes,
    service: &'static str,
    config: &HttpConfig,
    catch_all: Option<CatchAll>,
) -> Front {
    let Some(catch_all) = catch_all else {
        return stack(routes.into(), service, config).into();
    };
    let templates = routes.templates().map(<[String]>::to_vec);
    let (router, observe) = stack_routes(routes.into(), service, config);
    let observed = observe::catch_all(observe, catch_all);
    let router = router.fallback_service(observed.clone());
    Front::with_catch_all(router, templates.as_deref(), observed)
}

/// The observe layer on every route and on the 405 answer.
fn stack_routes(
    router: Router,
    service: &'static str,
    config: &HttpConfig,
) -> (Router, Arc<Observe>) {
    let observe = Arc::new(Observe::new(service, config));
    let layer = ObserveLayer::new(observe.clone());
    // Set before the route layer, so the layer wraps the 405 answer too.
    let router = router.method_not_allowed_fallback(method_not_allowed);
    // `route_layer` refuses a router without routes (it would be a no-op).
    let router = if router.has_routes() {
        router.route_layer(layer)
    } else {
        router
    };
    (router, observe)
}

/// Labels the request metrics of `router`'s routes with `service` instead
/// of the stack's default, so modules sharing one listener (`reliable up`)
/// keep their own series and their spans their own `service.name`. Apply
/// to a module's router before merging it.
pub fn service_label(router: Router, service: &'static str) -> Router {
    router.route_layer(observe::ModuleLabel(service))
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
