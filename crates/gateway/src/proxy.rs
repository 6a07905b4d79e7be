//! The request path, in order: header size, path (the admin API's own
//! prefix is refused, never forwarded), route, client IP,
//! admission (key, scope, rate), the route's concurrency limit, the body,
//! then attempts against the chosen pool: pick an endpoint (power of two
//! choices), forward with the route's timeout, record the outcome in the
//! endpoint's breaker, and retry within the budget when that is safe.
//!
//! Bodies stream both ways. A request body up to [`REPLAY_BUFFER_BYTES`]
//! is kept whole so it can be sent again; a longer one streams to one
//! endpoint. A response streams to the client as the upstream sends it
//! (server-sent events pass through event by event); the endpoint's
//! in-flight slot is held until it ends. Size limits hold either way: a
//! declared `Content-Length` over the limit is refused up front (413 for a
//! request, 502 for a response), and a streamed body that passes it is
//! cut off.
//!
//! Safe to retry, when the body was not consumed (empty or kept): a
//! connect failure (nothing was sent) for any method; a 502/503/504 answer
//! or a broken connection for idempotent methods only. A timeout is never
//! retried: the upstream may still be working on it and the client has
//! already waited the route's whole timeout. The route's timeout covers
//! the wait for the response head, not a stream after it.
//!
//! The request's own time (kit's `http.request_timeout`, handed to the
//! catch-all) bounds the whole: admission and the body must be done by
//! its deadline (503 `request-timeout` otherwise), each attempt waits its
//! route's timeout or until the deadline, whichever is sooner (504), and
//! no retry starts after it. So a request registers one timer (its
//! attempt's), where kit's and the attempt's were two.
//!
//! An endpoint may be an HTTP address or an in-process router
//! ([`crate::upstream`]); nothing on this path depends on which, except
//! the one call that sends the request.

use crate::error::GatewayError;
use crate::forwarding::{strip_hop_by_hop, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use crate::path::CleanPath;
use crate::routes::Route;
use crate::upstream::Upstream;
use crate::{admission, Pool, Shared};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, Method};
use http_body_util::Limited;
use kit::trace_context::TraceParent;
use resilience::body::{Guarded, ReadAheadError, RequestBody};
use resilience::{backoff, classify_status, is_idempotent, Classify, ClientError, Retry, Verdict};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const X_GATEWAY_POOL: HeaderName = HeaderName::from_static("x-gateway-pool");
pub const X_API_KEY_NAME: HeaderName = HeaderName::from_static("x-api-key-name");

/// Request bodies up to this size are kept whole so that a failed attempt
/// can be retried; longer ones stream and are sent once.
pub const REPLAY_BUFFER_BYTES: usize = 64 * 1024;

/// The axum handler of `/`.
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    // Served as an axum route, whose observe layer keeps the time; the
    // answer is dressed as the catch-all's are, so kit leaves it be.
    let mut response = respond(shared, request, peer, None).await;
    response
        .extensions_mut()
        .insert(kit::http::OwnSecurityHeaders);
    response
}

/// The answer to one request from `peer` (the TCP client, when known):
/// forwarded, or the problem that stopped it; within `timeout` when kit
/// handed the request's time to the gateway. The problem carries kit's
/// security headers (`http.security_headers`); a relayed answer only on
/// a route with `security_headers`: kit adds none to either.
pub(crate) async fn respond(
    shared: Arc<Shared>,
    request: Request,
    peer: Option<SocketAddr>,
    timeout: Option<Duration>,
) -> Response {
    let started = Instant::now();
    let deadline = timeout.map(|timeout| started + timeout);
    let mut rate_headers = Vec::new();
    let mut labels = ("unmatched", "none");
    let mut dialect = kit::problem::ErrorDialect::Problem;
    let result = forward(
        &shared,
        request,
        peer,
        deadline,
        &mut rate_headers,
        &mut labels,
        &mut dialect,
    )
    .await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            metrics::counter!("gateway_errors_total", "gateway_route" => labels.0, "error_type" => e.kind())
                .increment(1);
            let mut problem = e.problem().in_dialect(dialect).into_response();
            if shared.config.security_headers {
                kit::http::add_security_headers(problem.headers_mut());
            }
            problem
        }
    };
    for (name, value) in rate_headers {
        response.headers_mut().insert(name, value);
    }
    shared.request_durations.record(
        (labels.0, labels.1, response.status().as_u16(), ""),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// What one pass over the request's names and values finds, where
/// lookups would each be a hash and a probe (most of them for names the
/// request does not carry).
struct Scan {
    /// The headers' size as sent.
    bytes: usize,
    /// The first `Content-Length`, if it parses.
    declared_length: Option<usize>,
    /// `X-Api-Key` or `Authorization` is there: a key may be presented.
    key_headers: bool,
}

fn scan_headers(headers: &HeaderMap) -> Scan {
    let mut scan = Scan {
        bytes: 0,
        declared_length: None,
        key_headers: false,
    };
    let mut length_seen = false;
    for (name, value) in headers {
        scan.bytes += name.as_str().len() + value.len() + 4;
        if name == CONTENT_LENGTH && !length_seen {
            length_seen = true;
            scan.declared_length = parse_length(value);
        } else if name == AUTHORIZATION || name == admission::X_API_KEY {
            scan.key_headers = true;
        }
    }
    scan
}

fn parse_length(value: &HeaderValue) -> Option<usize> {
    value.to_str().ok().and_then(|v| v.parse::<usize>().ok())
}

/// The request's host without its port, lowercase: borrowed from the
/// request when it already is (a lowercased copy cost ~490 instructions
/// a request).
fn host_of(request: &Request) -> Option<Cow<'_, str>> {
    let (host, upper) = match request
        .headers()
        .get(HOST)
        .and_then(|h| split_host(h.as_bytes()))
    {
        Some(found) => found,
        None => split_host(request.uri().host()?.as_bytes())?,
    };
    Some(if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// A `Host` value without its port (digits after the last `:`, none
/// included), and whether it has an uppercase letter; `None` when it is
/// not text (as [`HeaderValue::to_str`] says). One pass over the bytes,
/// where the text check, the split and the case check were three (about
/// 340 instructions a request, issue 18).
fn split_host(value: &[u8]) -> Option<(&str, bool)> {
    let (mut colon, mut port, mut upper) = (None, false, false);
    for (i, &byte) in value.iter().enumerate() {
        match byte {
            b':' => (colon, port) = (Some(i), true),
            b'0'..=b'9' => {}
            b'A'..=b'Z' => (upper, port) = (true, false),
            b'\t' | b' '..=b'~' => port = false,
            _ => return None,
        }
    }
    let name = match colon {
        Some(i) if port => &value[..i],
        _ => value,
    };
    Some((std::str::from_utf8(name).ok()?, upper))
}

async fn forward(
    shared: &Shared,
    request: Request,
    peer: Option<SocketAddr>,
    deadline: Option<Instant>,
    rate_headers: &mut Vec<(HeaderName, HeaderValue)>,
    labels: &mut (&'static str, &'static str),
    dialect: &mut kit::problem::ErrorDialect,
) -> Result<Response, GatewayError> {
    let limits = &shared.config;
    let scan = scan_headers(request.headers());
    if scan.bytes > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    let path = CleanPath::parse(request.uri().path())?;
    // The admin API is the gateway's own: never forwarded, whatever the
    // routes say. With `admin_on_public` its paths were matched before the
    // proxy; what is left under the prefix is no admin path.
    if path.has_prefix(crate::admin::PREFIX) {
        return Err(if limits.admin_on_public {
            GatewayError::NoRoute
        } else {
            GatewayError::AdminNotPublic
        });
    }
    let host = host_of(&request);
    let route = shared
        .routes
        .find(&path, request.method(), host.as_deref())
        .ok_or(GatewayError::NoRoute)?;
    labels.0 = route.name;
    *dialect = route.errors;
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.ip());
    let client_ip = shared.trusted.client_ip(peer, request.headers());
    let key = by(
        deadline,
        admission::admit(
            shared,
            route,
            request.headers(),
            scan.key_headers,
            client_ip,
            rate_headers,
        ),
    )
    .await??;
    let _permit = route
        .concurrency
        .clone()
        .try_acquire_owned()
        .map_err(|_| GatewayError::Shed)?;

    // What X-Forwarded-Host says; the host borrows the request, which is
    // taken apart next.
    let forwarded_host = host.and_then(|h| HeaderValue::from_str(&h).ok());
    let (parts, body) = request.into_parts();
    let limit = route.max_body_bytes;
    if scan.declared_length.is_some_and(|n| n > limit) {
        return Err(GatewayError::BodyTooLarge);
    }
    let body = by(
        deadline,
        RequestBody::read_ahead(body, REPLAY_BUFFER_BYTES.min(limit), limit),
    )
    .await?
    .map_err(|e| match e {
        ReadAheadError::TooLarge(_) => GatewayError::BodyTooLarge,
        ReadAheadError::Read(_) => GatewayError::BodyRead,
    })?;

    let pool = route.choose_pool(&parts.headers);
    labels.1 = pool.name;
    let trace = kit::telemetry::current_trace().unwrap_or_else(TraceParent::new_root);
    let forwarding = Forwarding {
        peer,
        client: client_ip,
        host: forwarded_host,
        key_name: key
            .as_ref()
            .and_then(|key| HeaderValue::from_str(key.name.as_str()).ok()),
        trace,
    };
    // A retry sends the headers again, but the client consumes each
    // attempt's request: a retry makes them again from the client's own,
    // kept as they came. Copying those (values hyper shares) cost ~650
    // instructions where a copy of the prepared ones cost ~1,050 (the
    // gateway's own values are promoted to shared buffers when copied)
    // and ~200 more to drop.
    let replay = (body.is_replayable() && shared.config.retry.max_retries > 0)
        .then(|| parts.headers.clone());
    let headers = forwarding.headers(parts.headers);
    let mut target = route.upstream_path(path);
    if let Some(query) = parts.uri.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut outgoing = Outgoing {
        method: parts.method,
        target,
        headers: Some(headers),
        replay,
        forwarding,
        body,
        client_ip,
        deadline,
    };
    let mut response = attempts(shared, route, pool, &mut outgoing).await?;
    if route.security_headers {
        kit::http::add_security_headers(response.headers_mut());
    }
    // The name lives as long as the process: the value points at it
    // rather than copying it (an allocation a request).
    if let Ok(name) =
        HeaderValue::from_maybe_shared(bytes::Bytes::from_static(pool.name.as_bytes()))
    {
        response.headers_mut().insert(X_GATEWAY_POOL, name);
    }
    Ok(response)
}

/// `step` if it is done by `deadline`. A step that is ready when first
/// polled (an API key found in the cache, an empty body) makes no timer
/// ([`kit::deadline`]).
async fn by<T>(
    deadline: Option<Instant>,
    step: impl std::future::Future<Output = T>,
) -> Result<T, GatewayError> {
    match deadline {
        Some(deadline) => kit::deadline::by(deadline, step)
            .await
            .map_err(|_| GatewayError::RequestTimeout),
        None => Ok(step.await),
    }
}

/// The length an answer declares: its body's exact size when known
/// (hyper reads it from `Content-Length`, so no lookup is needed; about
/// 170 instructions a request), else its `Content-Length`, which a
/// module's own streamed answer may set by hand.
fn declared_response_length(headers: &HeaderMap, body: &impl hyper::body::Body) -> Option<usize> {
    match body.size_hint().exact() {
        Some(exact) => Some(usize::try_from(exact).unwrap_or(usize::MAX)),
        None => headers.get(CONTENT_LENGTH).and_then(parse_length),
    }
}

/// Hop-by-hop out, forwarding headers in, the key never passed on. The
/// client's `Host` stays until an attempt sends: [`Upstream::send`]
/// replaces it with the endpoint's own (one probe, where a remove here
/// and an insert there were two) or drops it for an in-process module.
fn prepare_headers(
    headers: &mut HeaderMap,
    peer: IpAddr,
    client: IpAddr,
    forwarded_host: Option<HeaderValue>,
) {
    strip_hop_by_hop(headers);
    // One pass notes which of the names removed below are there: a
    // remove is a hash and a probe even for an absent name, and most
    // requests carry none of them.
    let (mut key, mut key_name, mut authorization) = (false, false, false);
    for name in headers.keys() {
        match name.as_str() {
            "x-api-key" => key = true,
            "x-api-key-name" => key_name = true,
            "authorization" => authorization = true,
            _ => {}
        }
    }
    if key {
        headers.remove(admission::X_API_KEY);
    }
    // Only the gateway says who called: a client's own claim is dropped.
    if key_name {
        headers.remove(X_API_KEY_NAME);
    }
    if authorization
        && headers
            .get(AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer rlk_"))
    {
        headers.remove(AUTHORIZATION);
    }
    // A chain from an untrusted peer is dropped, not extended: upstreams
    // that read it must not see the spoofed part.
    let chain = if peer == client {
        kit::net::ip_text(peer)
    } else {
        let previous = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        format!("{previous}, {peer}")
    };
    if let Ok(chain) = HeaderValue::try_from(chain) {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = forwarded_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// What the gateway adds to a request's headers, kept so that a retry
/// can make them again.
struct Forwarding {
    peer: IpAddr,
    client: IpAddr,
    /// X-Forwarded-Host.
    host: Option<HeaderValue>,
    /// X-Api-Key-Name: the caller's key, when one was presented.
    key_name: Option<HeaderValue>,
    trace: TraceParent,
}

impl Forwarding {
    /// The headers an attempt sends, from the client's `headers`.
    fn headers(&self, mut headers: HeaderMap) -> HeaderMap {
        prepare_headers(&mut headers, self.peer, self.client, self.host.clone());
        if let Some(name) = &self.key_name {
            headers.insert(X_API_KEY_NAME, name.clone());
        }
        headers
    }
}

struct Outgoing {
    method: Method,
    target: String,
    /// The next attempt's headers, until it takes them.
    headers: Option<HeaderMap>,
    /// The client's headers as they came, while a retry may follow.
    replay: Option<HeaderMap>,
    forwarding: Forwarding,
    body: RequestBody,
    /// What an in-process module sees as its peer.
    client_ip: IpAddr,
    /// When the request's time is up, if the gateway keeps it.
    deadline: Option<Instant>,
}

impl Outgoing {
    /// The headers of the next attempt: the prepared ones the first time,
    /// made again from the client's for a retry.
    fn next_headers(&mut self) -> Option<HeaderMap> {
        self.headers.take().or_else(|| {
            let replay = self.replay.clone()?;
            Some(self.forwarding.headers(replay))
        })
    }

    /// Whether a failure that allows `retry` may be followed by another
    /// attempt: never once a streamed body was sent.
    fn may_retry(&self, retry: Retry) -> bool {
        self.body.is_replayable() && retry.allows(is_idempotent(&self.method))
    }
}

/// How one attempt ended.
enum Attempt {
    Answered(Response),
    /// Failed; `retry` says whether another endpoint may be tried, and
    /// `answer` is the upstream's own response (a 502/503/504) to relay if
    /// no retry happens.
    Failed {
        error: GatewayError,
        retry: Retry,
        answer: Option<Response>,
    },
}

impl Attempt {
    fn failed(error: GatewayError, retry: Retry) -> Self {
        Attempt::Failed {
            error,
            retry,
            answer: None,
        }
    }
}

async fn attempts(
    shared: &Shared,
    route: &Route,
    pool: &Pool,
    outgoing: &mut Outgoing,
) -> Result<Response, GatewayError> {
    route.retry_budget.deposit();
    let retry = &shared.config.retry;
    let mut last_endpoint = None;
    let mut attempt = 0u32;
    loop {
        let Some(slot) = pool.pick(last_endpoint.as_ref()) else {
            return Err(GatewayError::NoEndpoint);
        };
        let endpoint = slot.endpoint().clone();
        match once(shared, route, slot, &endpoint, outgoing).await {
            Attempt::Answered(response) => return Ok(response),
            Attempt::Failed {
                error,
                retry: may,
                answer,
            } => {
                attempt += 1;
                let give_up = |answer: Option<Response>| answer.ok_or(error);
                if !outgoing.may_retry(may) || attempt > retry.max_retries {
                    return give_up(answer);
                }
                if !route.retry_budget.try_withdraw() {
                    metrics::counter!("gateway_retries_denied_total", "gateway_route" => route.name)
                        .increment(1);
                    return give_up(answer);
                }
                metrics::counter!("gateway_retries_total", "gateway_route" => route.name)
                    .increment(1);
                let pause = backoff(retry.backoff, attempt);
                // A retry that could not start before the request's time
                // is up is not worth its wait.
                if outgoing
                    .deadline
                    .is_some_and(|deadline| Instant::now() + pause >= deadline)
                {
                    return give_up(answer);
                }
                drop(answer);
                tokio::time::sleep(pause).await;
                last_endpoint = Some(endpoint);
            }
        }
    }
}

fn gateway_error(error: &ClientError) -> GatewayError {
    match error {
        ClientError::Connect(_) | ClientError::Exchange(_) => GatewayError::Unreachable,
        ClientError::Tls(_) => GatewayError::UpstreamTls,
        ClientError::RequestBodyTooLarge(_) => GatewayError::BodyTooLarge,
        ClientError::Timeout(_) => GatewayError::Timeout,
    }
}

/// One attempt on the endpoint of `slot`; an answer's body holds the
/// slot until it has streamed.
async fn once(
    shared: &Shared,
    route: &Route,
    slot: resilience::InFlight<Upstream>,
    endpoint: &crate::Endpoint,
    outgoing: &mut Outgoing,
) -> Attempt {
    let Some(body) = outgoing.body.next_attempt() else {
        return Attempt::failed(GatewayError::Unreachable, Retry::Never);
    };
    // Always there: a retry follows only a replayable body, and then the
    // client's headers were kept.
    let Some(headers) = outgoing.next_headers() else {
        return Attempt::failed(GatewayError::Unreachable, Retry::Never);
    };
    let Ok(uri) = endpoint.target.uri(&outgoing.target) else {
        return Attempt::failed(GatewayError::Unreachable, Retry::Never);
    };
    // Set part by part: the builder moves its `Result` of the parts
    // through every call.
    let mut request = http::Request::new(body);
    *request.method_mut() = outgoing.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let started = Instant::now();
    // The route's timeout, or the request's time left if that is less.
    let timeout = match outgoing.deadline {
        Some(deadline) => route
            .timeout
            .min(deadline.saturating_duration_since(started)),
        None => route.timeout,
    };
    if timeout.is_zero() {
        return Attempt::failed(GatewayError::Timeout, Retry::Never);
    }
    let max = shared.config.max_response_body_bytes;
    let hop = kit::telemetry::exporting().then(|| client_span(route, endpoint, &request));
    // Each attempt sends its own CLIENT span's context when traces are
    // exported; the request's otherwise.
    let trace = hop
        .as_ref()
        .map_or(outgoing.forwarding.trace, |hop| hop.traceparent());
    let send = endpoint
        .target
        .send(request, outgoing.client_ip, timeout, Some(trace));
    let sent = match &hop {
        Some(hop) => hop.run(send).await,
        None => send.await,
    };
    let outcome = match sent {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if declared_response_length(&parts.headers, &body).is_some_and(|n| n > max) {
                // The endpoint answered; the answer is ours to refuse.
                endpoint.record(true);
                Attempt::failed(GatewayError::ResponseTooLarge, Retry::Never)
            } else {
                let verdict = classify_status(parts.status);
                endpoint.record(verdict == Verdict::Success);
                strip_hop_by_hop(&mut parts.headers);
                let body = Body::new(Guarded::new(Limited::new(body, max), slot));
                let response = Response::from_parts(parts, body);
                match verdict {
                    Verdict::Failure(retry @ (Retry::Safe | Retry::IfIdempotent)) => {
                        Attempt::Failed {
                            error: GatewayError::Unreachable,
                            retry,
                            answer: Some(response),
                        }
                    }
                    _ => Attempt::Answered(response),
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = &e as &dyn std::error::Error, endpoint = %endpoint.label, "upstream request failed");
            if e.blames_endpoint() {
                endpoint.record(false);
            }
            Attempt::failed(gateway_error(&e), e.retry())
        }
    };
    // Status code of an answer, or the error kind (OTel `error.type`).
    let (status, error_type) = match &outcome {
        Attempt::Answered(r)
        | Attempt::Failed {
            answer: Some(r), ..
        } => (r.status().as_u16(), ""),
        Attempt::Failed { error, .. } => (0, error.kind()),
    };
    shared.attempt_durations.record(
        (endpoint.pool, endpoint.label, status, error_type),
        started.elapsed().as_secs_f64(),
    );
    if let Some(hop) = hop {
        if status != 0 {
            hop.span().record("http.response.status_code", status);
        }
        if status >= 500 {
            hop.fail(status.to_string());
        } else if !error_type.is_empty() {
            hop.fail(error_type);
        }
    }
    outcome
}

/// The CLIENT span of one upstream attempt (OpenTelemetry HTTP client
/// conventions), a child of the request's SERVER span. It ends when the
/// response head is in; the body streams after it. `url.full` is the
/// endpoint and the route's prefix, never the client's own path or query,
/// which may carry tokens.
fn client_span(
    route: &Route,
    endpoint: &resilience::Endpoint<Upstream>,
    request: &http::Request<resilience::body::ClientBody>,
) -> kit::telemetry::Hop {
    let base = endpoint.target.base();
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "upstream",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = base.map_or(endpoint.label, |b| b.authority().host()),
        server.port = base.and_then(|b| b.authority().port_u16()),
        url.full = tracing::field::Empty,
        gateway.route = route.name,
        gateway.pool = endpoint.pool,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(base) = base {
        span.record("url.full", format!("{base}{}", route.upstream_prefix()));
    }
    kit::telemetry::Hop::outgoing(span, crate::SERVICE, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[test]
    fn a_host_loses_a_numeric_port_and_says_whether_it_needs_lowercasing() {
        let cases: [(&[u8], _); 9] = [
            (b"api.example.com", Some(("api.example.com", false))),
            (b"127.0.0.1:8080", Some(("127.0.0.1", false))),
            (b"API.Example.com:443", Some(("API.Example.com", true))),
            (b"host:", Some(("host", false))),
            (b"[::1]:8080", Some(("[::1]", false))),
            (b"[::1]", Some(("[::1]", false))),
            // Not a port: the whole value is the host.
            (b"host:80a", Some(("host:80a", false))),
            (b"host:8A", Some(("host:8A", true))),
            (b"caf\xc3\xa9", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                split_host(value),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn an_answers_length_is_its_bodys_exact_size_else_its_header() {
        let mut headers = HeaderMap::new();
        // hyper's body knows the length `Content-Length` declared: the
        // header is not read.
        let known = Full::new(bytes::Bytes::from_static(b"12345"));
        assert_eq!(declared_response_length(&headers, &known), Some(5));
        // A streamed body of unknown size: the header a module set by hand.
        let stream = || {
            StreamBody::new(futures::stream::empty::<
                Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
            >())
            .boxed()
        };
        assert_eq!(declared_response_length(&headers, &stream()), None);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("70000"));
        assert_eq!(declared_response_length(&headers, &stream()), Some(70000));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("not a number"));
        assert_eq!(declared_response_length(&headers, &stream()), None);
    }
}
