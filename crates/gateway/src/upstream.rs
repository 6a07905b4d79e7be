//! Where an endpoint's requests go: to an HTTP base URL over the pooled
//! client, or into an in-process [`Router`] called as a tower service.
//!
//! In-process endpoints are the modules that share the gateway's process
//! (`reliable up`, `serve --target gateway,shortener`): calling their
//! router directly saves a loopback TCP round trip per request while
//! everything around the call (timeout, breaker, retries, size limits,
//! header rules, metrics) stays the one code path in [`crate::proxy`].
//! What a TCP hop would have told the module, the call says in the
//! request: the gateway's resolved client address arrives as
//! `ConnectInfo`, so modules that read their peer see the client and not
//! the gateway.

use crate::HttpClient;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http::uri::Authority;
use http_body_util::Full;
use std::net::{IpAddr, SocketAddr};
use tower::ServiceExt;

/// The `server_address` metric label of every in-process endpoint.
pub const IN_PROCESS: &str = "in-process";

pub enum Upstream {
    Http(Authority),
    InProcess(Router),
}

impl Upstream {
    /// The URI to request `target` (path and query) of this upstream at.
    pub(crate) fn uri(&self, target: &str) -> String {
        match self {
            Upstream::Http(authority) => format!("http://{authority}{target}"),
            Upstream::InProcess(_) => target.to_string(),
        }
    }

    /// Sends `request` (its URI made by [`Upstream::uri`]); `client` is
    /// the address an in-process module sees as its peer. An error is the
    /// HTTP client's: an in-process router always answers.
    pub(crate) async fn send(
        &self,
        http: &HttpClient,
        request: http::Request<Full<Bytes>>,
        client: IpAddr,
    ) -> Result<Response, hyper_util::client::legacy::Error> {
        match self {
            Upstream::Http(_) => Ok(http.request(request).await?.map(Body::new)),
            Upstream::InProcess(router) => {
                let mut request = request.map(Body::new);
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(client, 0)));
                Ok(router
                    .clone()
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never| match never {}))
            }
        }
    }
}
