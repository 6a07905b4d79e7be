//! Where an endpoint's requests go: to an `http://` or `https://` base
//! URL over the pool's client, or into an in-process module's stack
//! ([`kit::http::Front`]), called directly.
//!
//! In-process endpoints are the modules that share the gateway's process
//! (`reliable up`, `serve --target gateway,shortener`): calling their
//! router directly saves a loopback TCP round trip per request while
//! everything around the call (timeout, breaker, retries, size limits,
//! header rules, metrics) stays the one code path in [`crate::proxy`].
//! What a TCP hop would have told the module, the call says in the
//! request: the gateway's resolved client address arrives as the peer
//! (a catch-all's argument, a route's `ConnectInfo`), so modules that read
//! their peer see the client and not the gateway.

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use kit::trace_context::TraceParent;
use resilience::body::{BoxError, ClientBody};
use resilience::{BaseUrl, ClientError, HttpClient, ResponseBody};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// An answer's body as the endpoint gives it: hyper's for an HTTP
/// endpoint, the module's own for an in-process one. One type, so the
/// proxy boxes the body once (with its limit and in-flight slot) rather
/// than boxing hyper's first.
pub enum UpstreamBody {
    Http(ResponseBody),
    InProcess(Body),
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Http(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            UpstreamBody::InProcess(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http(body) => body.is_end_stream(),
            UpstreamBody::InProcess(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Http(body) => body.size_hint(),
            UpstreamBody::InProcess(body) => body.size_hint(),
        }
    }
}

/// The `server_address` metric label of every in-process endpoint.
pub const IN_PROCESS: &str = "in-process";

// One per endpoint, made when the routes load and only borrowed on the
// request path, so its size costs nothing there; boxing the client would
// add a pointer chase per request instead.
#[allow(clippy::large_enum_variant)]
pub enum Upstream {
    /// A remote endpoint and the client of its pool (which carries the
    /// pool's TLS trust).
    Http {
        base: BaseUrl,
        client: HttpClient,
    },
    InProcess(kit::http::Front),
}

impl Upstream {
    /// The URI to request `target` (path and query) of this upstream at:
    /// origin-form for either kind (the client knows the server from the
    /// endpoint's base URL).
    pub(crate) fn uri(&self, target: &str) -> Result<http::Uri, http::Error> {
        Ok(http::Uri::try_from(target)?)
    }

    /// The base URL of a remote endpoint.
    pub(crate) fn base(&self) -> Option<&BaseUrl> {
        match self {
            Upstream::Http { base, .. } => Some(base),
            Upstream::InProcess(_) => None,
        }
    }

    /// Sends `request` (its URI made by [`Upstream::uri`]) and waits at
    /// most `timeout` for the response head; the body streams after.
    /// `client` is the address an in-process module sees as its peer;
    /// `trace` the trace context the upstream continues (its
    /// `traceparent` header, and for an in-process module the parsed
    /// value too).
    pub(crate) async fn send(
        &self,
        mut request: http::Request<ClientBody>,
        client: IpAddr,
        timeout: Duration,
        trace: Option<TraceParent>,
    ) -> Result<http::Response<UpstreamBody>, ClientError> {
        // In-process too: a module's router gets the headers a remote one
        // would (its observe layer takes the context from `InProcessCall`
        // rather than parsing this again).
        if let Some(trace) = trace {
            request
                .headers_mut()
                .insert(kit::http::TRACEPARENT, trace.header_value());
        }
        match self {
            Upstream::Http { base, client: http } => {
                // The upstream's own Host goes out (made once per
                // endpoint), in place of the client's.
                request
                    .headers_mut()
                    .insert(http::header::HOST, base.host_header().clone());
                Ok(http
                    .send_to_within(base, request, timeout)
                    .await?
                    .map(UpstreamBody::Http))
            }
            Upstream::InProcess(router) => {
                // An empty body (most requests) becomes axum's own empty
                // one, which allocates nothing; `Body::new` boxes the
                // already boxed body a second time (issue 18).
                let mut request = request.map(|body| {
                    if body.is_end_stream() {
                        Body::empty()
                    } else {
                        Body::new(body)
                    }
                });
                // A module is reached by no host name: the client's Host
                // is not passed on (X-Forwarded-Host says it).
                request.headers_mut().remove(http::header::HOST);
                // The module's stack need not redo what the gateway's did.
                request.extensions_mut().insert(kit::http::InProcessCall {
                    caller_timeout: timeout,
                    trace,
                });
                let call = router.call(request, Some(SocketAddr::new(client, 0)));
                match tokio::time::timeout(timeout, call).await {
                    Ok(answer) => Ok(answer
                        .unwrap_or_else(|never| match never {})
                        .map(UpstreamBody::InProcess)),
                    Err(_) => Err(ClientError::Timeout(timeout)),
                }
            }
        }
    }

    /// An active health check: `GET path` answers 2xx within `timeout`.
    /// The gateway itself asks: an in-process module sees a loopback peer.
    pub(crate) async fn is_ready(&self, path: &str, timeout: Duration) -> bool {
        let Ok(uri) = self.uri(path) else {
            return false;
        };
        let Ok(request) = http::Request::get(uri).body(resilience::body::empty()) else {
            return false;
        };
        matches!(
            self.send(request, Ipv4Addr::LOCALHOST.into(), timeout, None).await,
            Ok(response) if response.status().is_success()
        )
    }
}
