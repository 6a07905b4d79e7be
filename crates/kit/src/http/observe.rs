//! `ObserveLayer`: request id, trace context, timeout, panic catching, the
//! duration histogram, the body limit and the security headers, as one
//! plain tower service. It runs on each
//! route (a route layer) and on the fallback, so the matched route template
//! is right there in the request; separate layers for panics and for
//! carrying the route label out of the router cost an allocation and a
//! future each per request, and `from_fn` middleware (which clones the
//! inner router and boxes a future) showed up at ~5% of CPU on the
//! redirect path.

use super::{security, InProcessCall, TRACEPARENT, X_REQUEST_ID};
use crate::cpu_cost;
use crate::metrics::HTTP_SERVER_REQUESTS;
use crate::problem::Problem;
use crate::telemetry;
use crate::trace_context::TraceParent;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};

/// `Box::pin(future)`, with the room allocated first and the future
/// written into it: `Box::pin` of a finished future copies all of it
/// (the gateway's is kilobytes, most of it not yet in use) from the
/// stack into the box, 370 instructions of `memcpy` a request for the
/// proxy's (issue 18). A macro, not a function: a function's argument
/// is a finished future again, and the copy comes back. Whether the
/// compiler writes the future in place is its choice: the gateway's
/// proxy future is copied again since its handler takes the peer as an
/// argument (748 instructions, issue 18; docs/performance.md).
macro_rules! pinned_in_place {
    ($future:expr) => {{
        // Bound first, so the box's type is the future's own, not the
        // trait object the caller coerces it to.
        let boxed = Box::write(Box::new_uninit(), $future);
        Box::into_pin(boxed)
    }};
}

pub(super) struct Observe {
    service: &'static str,
    timeout: Duration,
    /// The largest body the route's extractors read (413 beyond).
    body_limit: DefaultBodyLimit,
    /// Add the security headers a response does not set itself.
    security_headers: bool,
    durations: RequestDurations,
    /// One request in this many has its CPU measured (`cpu_cost`).
    cost_sample_every: u32,
}

/// Histogram handles per (route, method, status), resolved once: the
/// `metrics` registry lookup hashes and allocates every label, which is a
/// measurable share of a microsecond-scale request. Cardinality is bounded
/// by the route templates, the known methods and the status codes. The
/// first place looked is the route's own [`RouteSeries`]; this map is
/// shared by every route and holds what those do not.
struct RequestDurations {
    by_route: RwLock<HashMap<String, SeriesOfRoute>>,
}

/// The histograms of one route, by (method, status code).
type SeriesOfRoute = HashMap<(&'static str, u16), metrics::Histogram>;

impl RequestDurations {
    fn new() -> Self {
        Self {
            by_route: RwLock::new(HashMap::new()),
        }
    }

    /// `service` is only read when a series is first seen: a route
    /// template belongs to one module, so it never changes for a route.
    fn histogram(
        &self,
        service: &'static str,
        route: &str,
        method: &'static str,
        status: u16,
    ) -> metrics::Histogram {
        {
            let routes = self.by_route.read().unwrap_or_else(|e| e.into_inner());
            if let Some(histogram) = routes.get(route).and_then(|m| m.get(&(method, status))) {
                return histogram.clone();
            }
        }
        let histogram = crate::metrics::latency_histogram(
            HTTP_SERVER_REQUESTS,
            &[
                ("service", service),
                ("http_route", route),
                ("http_request_method", method),
                ("http_response_status_code", &status.to_string()),
            ],
        );
        self.by_route
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_string())
            .or_default()
            .insert((method, status), histogram.clone());
        histogram
    }
}

/// The histogram handles one route has used, found without hashing.
///
/// The observe layer wraps each route separately (`route_layer`), so each
/// wrapped route gets one of these: its requests share a route template,
/// and a handful of (method, status) pairs, so a short scan finds the
/// handle. Issue 18's profile had the shared map's two SipHash lookups per
/// request among the redirect's and the gateway's top costs. The
/// fallback (every unmatched path) shares one too; past [`Self::MAX`]
/// entries, new label sets go to the shared map only.
#[derive(Default)]
struct RouteSeries {
    seen: RwLock<Vec<Seen>>,
}

struct Seen {
    service: &'static str,
    route: Box<str>,
    method: &'static str,
    status: u16,
    histogram: metrics::Histogram,
}

impl RouteSeries {
    const MAX: usize = 32;

    fn record(
        &self,
        shared: &RequestDurations,
        service: &'static str,
        route: &str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        let is_it = |s: &Seen| {
            s.status == status && s.method == method && s.service == service && *s.route == *route
        };
        {
            let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = seen.iter().find(|s| is_it(s)) {
                s.histogram.record(seconds);
                return;
            }
        }
        let histogram = shared.histogram(service, route, method, status);
        histogram.record(seconds);
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        // Two first requests of one label set may both get here: keep one.
        if seen.len() < Self::MAX && !seen.iter().any(is_it) {
            seen.push(Seen {
                service,
                route: route.into(),
                method,
                status,
                histogram,
            });
        }
    }
}

/// The `service` label of a module's routes when several modules share one
/// listener (set by [`ModuleLabel`]).
#[derive(Clone, Copy)]
pub(super) struct ServiceLabel(pub(super) &'static str);

/// The route layer of [`super::service_label`]: names the module in the
/// request's trace context before the handler runs (so the handler's spans
/// belong to it) and labels the response for the duration histogram.
#[derive(Clone, Copy)]
pub(super) struct ModuleLabel(pub(super) &'static str);

impl<S> Layer<S> for ModuleLabel {
    type Service = ModuleLabelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ModuleLabelService {
            inner,
            module: self.0,
        }
    }
}

#[derive(Clone)]
pub(super) struct ModuleLabelService<S> {
    inner: S,
    module: &'static str,
}

impl<S> Service<Request> for ModuleLabelService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Labelled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(slot) = request.extensions().get::<telemetry::ModuleSlot>() {
            slot.name(self.module);
        }
        Labelled {
            inner: self.inner.call(request),
            module: self.module,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner response with its [`ServiceLabel`].
    pub(super) struct Labelled<F> {
        #[pin]
        inner: F,
        module: &'static str,
    }
}

impl<F, E> Future for Labelled<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        response.extensions_mut().insert(ServiceLabel(this.module));
        Poll::Ready(Ok(response))
    }
}

impl Observe {
    pub(super) fn new(service: &'static str, config: &super::HttpConfig) -> Self {
        Self {
            service,
            timeout: config.request_timeout,
            body_limit: DefaultBodyLimit::max(config.body_limit_bytes),
            security_headers: config.security_headers,
            durations: RequestDurations::new(),
            cost_sample_every: config.cost_sample_every,
        }
    }
}

/// Whether a client's `X-Request-Id` is worth keeping: 1 to 128 visible
/// ASCII characters.
fn is_sane_request_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 32 random hex digits ([`crate::ids`]: unique, not secret), written
/// byte by byte without the `fmt` machinery, in a buffer whose clones
/// share it (one allocation; a copied slice is copied again on its first
/// clone).
fn new_request_id() -> HeaderValue {
    let mut digits = [0u8; 32];
    crate::trace_context::put_hex(&mut digits, &crate::ids::nonzero_u128().to_be_bytes());
    HeaderValue::from_maybe_shared(axum::body::Bytes::from_owner(digits))
        .unwrap_or(HeaderValue::from_static("0"))
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::CONNECT => "CONNECT",
        // OTel semantic conventions: unknown methods collapse to one value.
        _ => "_OTHER",
    }
}

/// Request id, trace context, timeout, panic to 500, duration histogram,
/// failure logs.
#[derive(Clone)]
pub(super) struct ObserveLayer(Arc<Observe>);

impl ObserveLayer {
    pub(super) fn new(observe: Arc<Observe>) -> Self {
        Self(observe)
    }
}

/// The route's service with its body limit: set here, inside the route
/// layer, because a `Router::layer` of its own would cost every request a
/// boxed future and a boxed service clone (issue 18).
type Limited<S> = <DefaultBodyLimit as Layer<S>>::Service;

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<Limited<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner: self.0.body_limit.layer(inner),
            observe: self.0.clone(),
            series: Arc::default(),
            fixed_route: None,
            own_security_headers: false,
            writes_request_id: true,
        }
    }
}

#[derive(Clone)]
pub(super) struct ObserveService<S> {
    inner: S,
    observe: Arc<Observe>,
    /// This route's handles (one per `layer` call, that is per route).
    series: Arc<RouteSeries>,
    /// The route label of a [`CatchAll`], and the paths it claims (the
    /// others are unmatched); routes read axum's matched path.
    fixed_route: Option<(&'static str, PathClaim)>,
    /// The claimed paths' answers carry their own security headers
    /// ([`CatchAll::with_own_security_headers`]).
    own_security_headers: bool,
    /// A generated request id is written into the request's headers
    /// (not with [`CatchAll::keeping_request_headers`]).
    writes_request_id: bool,
}

/// Answers every path no route matches, in place of the 404 problem (see
/// [`super::stack_with_catch_all`]): the gateway's proxy. Its requests
/// are observed under `route` like a route's; it enforces its own body
/// limit (no extractor runs before it). Cloning it (axum does for each
/// request) copies a pointer.
#[derive(Clone)]
pub struct CatchAll {
    route: &'static str,
    /// The paths it answers; the others get the 404 problem and are
    /// observed as unmatched.
    claims: PathClaim,
    handler: Arc<CatchAllHandler>,
    /// The handler answers within the time it is handed: kit arms no
    /// timer for its requests ([`CatchAll::keeping_time`]).
    keeps_time: bool,
    /// Its handler sets the security headers its answers need
    /// ([`CatchAll::with_own_security_headers`]).
    own_security_headers: bool,
    /// Its handler forwards none of the request's headers
    /// ([`CatchAll::keeping_request_headers`]).
    keeps_request_headers: bool,
}

type CatchAllHandler = dyn Fn(Request, Option<SocketAddr>, Option<Duration>) -> BoxFuture<'static, Response>
    + Send
    + Sync;

/// Which request paths a [`CatchAll`] answers.
type PathClaim = fn(&str) -> bool;

/// Every path: a proxy's catch-all.
fn every_path(_: &str) -> bool {
    true
}

/// One non-empty segment (`/abc`, not `/`, `/a/b` or `/abc/`): what an
/// axum route `/{param}` matches.
pub fn one_segment(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

impl CatchAll {
    /// `route` is the `http_route` label of its requests (`/{*path}`).
    /// `handler` gets the request and its client's address: the TCP peer
    /// (or, in process, the caller's client), `None` where none is known.
    /// It comes as an argument, not as axum's `ConnectInfo`: the first
    /// extension of a request allocates its map (about 480 instructions a
    /// request, issue 18).
    pub fn new<F, Fut>(route: &'static str, handler: F) -> Self
    where
        F: Fn(Request, Option<SocketAddr>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self {
            route,
            claims: every_path,
            handler: Arc::new(move |request, peer, _| pinned_in_place!(handler(request, peer))),
            keeps_time: false,
            own_security_headers: false,
            keeps_request_headers: false,
        }
    }

    /// A catch-all that keeps the request's time itself. `handler` is
    /// also handed how long the request may take to answer (its response
    /// head): `Some` of the stack's `http.request_timeout` (or what an
    /// in-process caller still waits, when that is less), from when kit
    /// took the request; then kit arms no timer of its own, and the
    /// handler must answer by then. `None` where kit keeps the time (the
    /// catch-all reached through axum as a route, or an in-process caller
    /// that waits less than the timeout and so bounds it).
    ///
    /// Why: a handler that waits on something with a deadline of its own
    /// (the gateway: each upstream attempt) would otherwise pay for two
    /// timer entries a request, and one costs about 850 instructions
    /// (issue 18).
    pub fn keeping_time<F, Fut>(route: &'static str, handler: F) -> Self
    where
        F: Fn(Request, Option<SocketAddr>, Option<Duration>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self {
            route,
            claims: every_path,
            handler: Arc::new(move |request, peer, timeout| {
                pinned_in_place!(handler(request, peer, timeout))
            }),
            keeps_time: true,
            own_security_headers: false,
            keeps_request_headers: false,
        }
    }

    /// Answers only the paths `claims` accepts (for example
    /// [`one_segment`], a module's `/{slug}` as its catch-all); the others
    /// get the 404 problem, observed as unmatched, as without it.
    #[must_use]
    pub fn claiming(mut self, claims: fn(&str) -> bool) -> Self {
        self.claims = claims;
        self
    }

    /// Its handler sets the security headers its answers need, and kit
    /// adds none to the paths it claims: a proxy relays the origin's
    /// answers as they came (a `Content-Security-Policy` that loads
    /// nothing would break an HTML app behind it); a redirect, with no
    /// body to sniff or render, needs only `Referrer-Policy`. Answers
    /// that need the whole set (errors with a body) get it from
    /// [`super::add_security_headers`]. A path it does not claim still
    /// gets kit's 404 with the headers.
    #[must_use]
    pub fn with_own_security_headers(mut self) -> Self {
        self.own_security_headers = true;
        self
    }

    /// Its handler forwards none of the request's headers, so kit leaves
    /// them as the client sent them: a request id kit generates (none
    /// sent, or one not worth keeping) is the request's in its context
    /// ([`crate::telemetry`]), its logs and its answer's `X-Request-Id`,
    /// but is not written into the request's headers, which only a
    /// handler that forwards them (a proxy) needs. Why: the write costs
    /// a header insert, about 240 instructions a request (issue 18; the
    /// shortener's redirect).
    #[must_use]
    pub fn keeping_request_headers(mut self) -> Self {
        self.keeps_request_headers = true;
        self
    }

    pub fn route(&self) -> &'static str {
        self.route
    }

    /// Whether it answers `path`.
    pub fn claims(&self, path: &str) -> bool {
        (self.claims)(path)
    }
}

impl Service<Request> for CatchAll {
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::Map<
        BoxFuture<'static, Response>,
        fn(Response) -> Result<Response, Infallible>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// Through axum (its fallback), the peer comes as `ConnectInfo`.
    fn call(&mut self, request: Request) -> Self::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        // Served as a route, whose observe layer keeps the time.
        self.answer(request, peer, None)
    }
}

impl CatchAll {
    /// `call`, which needs no `&mut`, with the peer given, and the time
    /// the handler must keep, if any.
    fn answer(
        &self,
        request: Request,
        peer: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> <Self as Service<Request>>::Future {
        let claimed = self.claims(request.uri().path());
        self.answer_claimed(claimed, request, peer, timeout)
    }

    /// [`Self::answer`], whether it claims the path already known.
    fn answer_claimed(
        &self,
        claimed: bool,
        request: Request,
        peer: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> <Self as Service<Request>>::Future {
        if !claimed {
            return unclaimed().map(Ok);
        }
        (self.handler)(request, peer, timeout).map(Ok)
    }
}

fn unclaimed() -> BoxFuture<'static, Response> {
    Box::pin(async { super::not_found().await.into_response() })
}

/// `catch_all` observed as a route named after it.
pub(super) fn catch_all(observe: Arc<Observe>, catch_all: CatchAll) -> ObserveService<CatchAll> {
    ObserveService {
        fixed_route: Some((catch_all.route, catch_all.claims)),
        own_security_headers: catch_all.own_security_headers,
        writes_request_id: !catch_all.keeps_request_headers,
        inner: catch_all,
        observe,
        series: Arc::default(),
    }
}

/// The route a request is observed under.
enum RouteName {
    /// The template axum matched.
    Matched(MatchedPath),
    /// A [`CatchAll`]'s label.
    Fixed(&'static str),
    /// No route: the 404 fallback.
    Unmatched,
}

impl RouteName {
    fn template(&self) -> Option<&str> {
        match self {
            RouteName::Matched(path) => Some(path.as_str()),
            RouteName::Fixed(route) => Some(route),
            RouteName::Unmatched => None,
        }
    }
}

impl<S> Service<Request> for ObserveService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObservedFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let treatment = Treatment {
            fixed_route: self
                .fixed_route
                .map(|(route, claims)| (route, claims(request.uri().path()))),
            own_security_headers: self.own_security_headers,
            inner_keeps_time: false,
            writes_request_id: self.writes_request_id,
        };
        let inner = &mut self.inner;
        observed(
            &self.observe,
            &self.series,
            treatment,
            request,
            |request, _| inner.call(request),
        )
    }
}

impl ObserveService<CatchAll> {
    /// `call` through `&self` (the catch-all needs no `&mut`), for the
    /// server's way around axum ([`super::Front`]).
    pub(super) fn call_ref(&self, request: Request, peer: Option<SocketAddr>) -> ObservedFuture {
        // Decided once, for the label and for the answer.
        let claimed = self.inner.claims(request.uri().path());
        let treatment = Treatment {
            fixed_route: Some((self.inner.route, claimed)),
            own_security_headers: self.own_security_headers,
            inner_keeps_time: self.inner.keeps_time,
            writes_request_id: self.writes_request_id,
        };
        observed(
            &self.observe,
            &self.series,
            treatment,
            request,
            |request, timeout| self.inner.answer_claimed(claimed, request, peer, timeout),
        )
    }
}

/// The response future of an observed request.
pub(super) type ObservedFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// How [`observed`] treats a request of its route.
struct Treatment {
    /// A [`CatchAll`]'s label, and whether it claims the request's path.
    fixed_route: Option<(&'static str, bool)>,
    /// See [`ObserveService`].
    own_security_headers: bool,
    /// The request's timeout is handed to the inner service instead of
    /// armed here.
    inner_keeps_time: bool,
    /// See [`ObserveService`].
    writes_request_id: bool,
}

/// Observes the request `inner` answers: what [`ObserveService`] does.
fn observed<F>(
    observe: &Arc<Observe>,
    series: &Arc<RouteSeries>,
    treatment: Treatment,
    mut request: Request,
    inner: impl FnOnce(Request, Option<Duration>) -> F,
) -> ObservedFuture
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let Treatment {
        fixed_route,
        own_security_headers,
        inner_keeps_time,
        writes_request_id,
    } = treatment;
    let start = Instant::now();
    let method = method_label(request.method());
    let route = match fixed_route {
        Some((route, true)) => RouteName::Fixed(route),
        Some((_, false)) => RouteName::Unmatched,
        // Set by the router before route layers run; absent on the
        // fallback.
        None => request
            .extensions()
            .get::<MatchedPath>()
            .cloned()
            .map_or(RouteName::Unmatched, RouteName::Matched),
    };
    // A catch-all that sets its own: on the paths it claims (the others
    // get kit's 404).
    let adds_security =
        observe.security_headers && !(own_security_headers && matches!(route, RouteName::Fixed(_)));
    let in_process = request.extensions_mut().remove::<InProcessCall>();
    let [sent_id, sent_trace] =
        super::find_headers(request.headers(), [&X_REQUEST_ID, &TRACEPARENT]);
    let remote = in_process.and_then(|call| call.trace).or_else(|| {
        sent_trace
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse)
    });
    // The in-process caller's stack already checked (or made) the id
    // and put it in the headers.
    let sent_id = match in_process {
        Some(_) => sent_id,
        None => sent_id.filter(|id| is_sane_request_id(id)),
    };
    let request_id = match sent_id.cloned() {
        Some(id) => id,
        // None sent, or one not worth keeping: replaced, so that what
        // the handler forwards and logs agree.
        None => {
            let id = new_request_id();
            if writes_request_id {
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
            }
            id
        }
    };
    let timeout = match in_process {
        Some(call) if call.caller_timeout <= observe.timeout => None,
        _ => Some(observe.timeout),
    };
    let (armed, handed) = if inner_keeps_time {
        (None, timeout)
    } else {
        (timeout, None)
    };
    let (server, context) = telemetry::begin_request(
        observe.service,
        method,
        route.template(),
        &request_id,
        remote,
    );
    // Handlers read the context from the task (`telemetry::current_trace`).
    if let Some(server) = &server {
        // The module's route layer names the module in it (ModuleLabel).
        request.extensions_mut().insert(server.module().clone());
    }
    // A handler that panics is a bug, and the client still deserves an
    // answer (500 problem), not a dropped connection.
    // Decided before the inner call: a module the handler calls
    // in-process starts its own request inside this one (cpu_cost).
    let cpu_scale = cpu_cost::sample(observe.cost_sample_every);
    let inner = std::panic::catch_unwind(AssertUnwindSafe(|| inner(request, handed)));
    let observe = observe.clone();
    let series = series.clone();
    pinned_in_place!(async move {
        let mut cpu_nanos = None;
        let outcome = match inner {
            Ok(inner) => {
                let guarded = AssertUnwindSafe(inner).catch_unwind();
                let handled = telemetry::in_request(
                    context.clone(),
                    server.as_ref(),
                    Deadline::new(start, armed, guarded),
                );
                match cpu_scale {
                    Some(scale) => {
                        let (outcome, nanos) = cpu_cost::Measured::new(handled, scale).await;
                        cpu_nanos = Some(nanos);
                        outcome
                    }
                    None => handled.await,
                }
            }
            Err(panic) => Ok(Err(panic)),
        };
        let mut response = match outcome {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(never))) => match never {},
            Ok(Err(_panic)) => {
                telemetry::with_request(context.clone(), || {
                    tracing::error!("request handler panicked")
                });
                Problem::internal().into_response()
            }
            Err(_) => {
                telemetry::with_request(
                    context.clone(),
                    || tracing::warn!(timeout = ?observe.timeout, "request timed out"),
                );
                Problem::unavailable("the request took longer than the server's timeout")
                    .into_response()
            }
        };
        let status = response.status();
        let route = route.template().unwrap_or("unmatched");
        let service = response
            .extensions_mut()
            .remove::<ServiceLabel>()
            .map_or(observe.service, |s| s.0);
        // Taken off every response, so it never reaches an outer
        // (in-process gateway) request and labels that.
        let tag = response.extensions_mut().remove::<cpu_cost::CostTag>();
        if let Some(nanos) = cpu_nanos {
            let model = tag.as_ref().map(|t| &*t.model);
            cpu_cost::charge_request(service, route, model, nanos);
        }
        let elapsed = start.elapsed();
        series.record(
            &observe.durations,
            service,
            route,
            method,
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
        if status.is_server_error() || tracing::enabled!(tracing::Level::DEBUG) {
            telemetry::with_request(context, || {
                let elapsed_ms = elapsed.as_secs_f64() * 1e3;
                if status.is_server_error() {
                    tracing::warn!(http.route = %route, status = status.as_u16(), elapsed_ms, "request failed");
                } else {
                    tracing::debug!(http.route = %route, status = status.as_u16(), elapsed_ms, "request completed");
                }
            });
        }
        if let Some(server) = server {
            server.finish(status.as_u16());
        }
        let adds_security = adds_security
            && response
                .extensions()
                .get::<security::OwnSecurityHeaders>()
                .is_none();
        let headers = response.headers_mut();
        // No room reserved up front: a map grows by doubling, so the four
        // inserts below cross its capacity once at most, and a reserve
        // counts the security headers a response may already carry. Under
        // `reliable up` the module's stack has added them, and reserving
        // four for the one header left grew the map on every request
        // (about 1,300 instructions, issue 18).
        if in_process.is_none() {
            headers.insert(X_REQUEST_ID, request_id);
        }
        if adds_security {
            security::add_missing(headers);
        }
        Ok(response)
    })
}

pin_project_lite::pin_project! {
    /// [`crate::deadline::by`] when there is a timeout to arm: a timer
    /// entry costs a registration and a removal per request, which an
    /// in-process call whose caller waits less can skip (and a handler
    /// that answers when first polled never makes).
    #[project = DeadlineProj]
    enum Deadline<F> {
        Armed { #[pin] timeout: crate::deadline::Deadline<F> },
        Unarmed { #[pin] inner: F },
    }
}

impl<F: Future> Deadline<F> {
    /// `timeout` from `start`.
    fn new(start: Instant, timeout: Option<Duration>, inner: F) -> Self {
        match timeout {
            Some(after) => Deadline::Armed {
                timeout: crate::deadline::by(start + after, inner),
            },
            None => Deadline::Unarmed { inner },
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, crate::deadline::Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DeadlineProj::Armed { timeout } => timeout.poll(cx),
            DeadlineProj::Unarmed { inner } => inner.poll(cx).map(Ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(series: &RouteSeries) -> usize {
        series.seen.read().map(|s| s.len()).unwrap_or(0)
    }

    #[test]
    fn a_route_keeps_one_handle_per_label_set_and_at_most_max() {
        let shared = RequestDurations::new();
        let series = RouteSeries::default();
        for _ in 0..3 {
            series.record(&shared, "svc", "/{slug}", "GET", 302, 0.001);
        }
        assert_eq!(seen(&series), 1);
        series.record(&shared, "svc", "/{slug}", "GET", 404, 0.001);
        series.record(&shared, "svc", "/{slug}", "HEAD", 302, 0.001);
        assert_eq!(seen(&series), 3);
        // The shared map holds the same label sets, by route.
        let routes = shared.by_route.read().expect("map");
        assert_eq!(routes.get("/{slug}").map(HashMap::len), Some(3));
        drop(routes);
        // Past MAX, new label sets are still recorded (shared map) but not
        // kept by the route.
        for status in 100..200 {
            series.record(&shared, "svc", "/{slug}", "GET", status, 0.001);
        }
        assert_eq!(seen(&series), RouteSeries::MAX);
        let routes = shared.by_route.read().expect("map");
        assert_eq!(routes.get("/{slug}").map(HashMap::len), Some(103));
    }
}
