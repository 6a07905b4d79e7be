//! Every way a request can fail at the gateway, and the problem+json each
//! one becomes. Client faults are 4xx with a detail; upstream faults are
//! 502/503/504 with a stable `type` so clients and dashboards can tell a
//! shed request from an open breaker from a timeout.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use kit::Problem;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("bad path: {0}")]
    BadPath(#[from] crate::path::PathError),
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("no route")]
    NoRoute,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("reading the request body failed")]
    BodyRead,
    #[error("API key missing")]
    KeyMissing,
    #[error("API key malformed")]
    KeyMalformed,
    #[error("API key unknown or revoked")]
    KeyRejected,
    #[error("API key lacks scope")]
    WrongScope(String),
    #[error("rate limited")]
    RateLimited,
    #[error("rate limiter unavailable")]
    LimiterDown,
    #[error("route at its concurrency limit")]
    Shed,
    #[error("no endpoint can take the request (breakers open or health checks failing)")]
    NoEndpoint,
    #[error("upstream unreachable")]
    Unreachable,
    #[error("TLS with the upstream failed")]
    UpstreamTls,
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream response too large")]
    ResponseTooLarge,
    #[error("key store unavailable")]
    KeyStore,
    #[error("the request ran out of time before it was forwarded")]
    RequestTimeout,
    #[error("the admin API is not served on the public listener")]
    AdminNotPublic,
}

impl GatewayError {
    /// Bounded label for the `error_type` of metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::BadPath(_) => "bad-path",
            GatewayError::HeadersTooLarge => "headers-too-large",
            GatewayError::NoRoute => "no-route",
            GatewayError::BodyTooLarge => "body-too-large",
            GatewayError::BodyRead => "body-read",
            GatewayError::KeyMissing => "api-key-missing",
            GatewayError::KeyMalformed => "api-key-malformed",
            GatewayError::KeyRejected => "api-key-rejected",
            GatewayError::WrongScope(_) => "api-key-scope",
            GatewayError::RateLimited => "rate-limited",
            GatewayError::LimiterDown => "rate-limiter-unavailable",
            GatewayError::Shed => "overloaded",
            GatewayError::NoEndpoint => "circuit-open",
            GatewayError::Unreachable => "upstream-unreachable",
            GatewayError::UpstreamTls => "upstream-tls",
            GatewayError::Timeout => "upstream-timeout",
            GatewayError::ResponseTooLarge => "upstream-response-too-large",
            GatewayError::KeyStore => "key-store-unavailable",
            GatewayError::RequestTimeout => "request-timeout",
            GatewayError::AdminNotPublic => "admin-not-public",
        }
    }

    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        let (status, title, detail): (StatusCode, &str, String) = match self {
            GatewayError::BadPath(e) => (S::BAD_REQUEST, "Bad request path", e.to_string()),
            GatewayError::HeadersTooLarge => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request headers too large",
                "the request headers exceed the gateway's limit".into(),
            ),
            GatewayError::NoRoute => (
                S::NOT_FOUND,
                "Not found",
                "no route matches this request".into(),
            ),
            GatewayError::BodyTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "Request body too large",
                "the request body exceeds the gateway's limit".into(),
            ),
            GatewayError::BodyRead => (
                S::BAD_REQUEST,
                "Bad request body",
                "the request body could not be read".into(),
            ),
            GatewayError::KeyMissing => (
                S::UNAUTHORIZED,
                "API key required",
                "send a key as `Authorization: Bearer rlk_...` or `X-Api-Key`".into(),
            ),
            GatewayError::KeyMalformed => (
                S::UNAUTHORIZED,
                "Malformed API key",
                "an API key is `rlk_` followed by 64 lower-case hex digits".into(),
            ),
            GatewayError::KeyRejected => (
                S::UNAUTHORIZED,
                "Invalid API key",
                "the key is unknown or revoked".into(),
            ),
            GatewayError::WrongScope(scope) => (
                S::FORBIDDEN,
                "Insufficient scope",
                format!("this route needs a key with scope `{scope}`"),
            ),
            GatewayError::RateLimited => (
                S::TOO_MANY_REQUESTS,
                "Too many requests",
                "rate limit exceeded; see Retry-After".into(),
            ),
            GatewayError::LimiterDown => (
                S::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "the rate limiter is unavailable".into(),
            ),
            GatewayError::Shed => (
                S::SERVICE_UNAVAILABLE,
                "Overloaded",
                "too many requests in flight on this route".into(),
            ),
            GatewayError::NoEndpoint => (
                S::SERVICE_UNAVAILABLE,
                "Upstream unavailable",
                "every upstream endpoint is failing (circuit open); retry later".into(),
            ),
            GatewayError::Unreachable => (
                S::BAD_GATEWAY,
                "Bad gateway",
                "the upstream could not be reached".into(),
            ),
            GatewayError::UpstreamTls => (
                S::BAD_GATEWAY,
                "Bad gateway",
                "TLS with the upstream failed: its certificate is not signed by a trusted CA \
                 (a private CA goes in the pool's `ca_file`) or the handshake was refused"
                    .into(),
            ),
            GatewayError::Timeout => (
                S::GATEWAY_TIMEOUT,
                "Gateway timeout",
                "the upstream did not answer in time".into(),
            ),
            GatewayError::ResponseTooLarge => (
                S::BAD_GATEWAY,
                "Bad gateway",
                "the upstream response exceeds the gateway's limit".into(),
            ),
            GatewayError::RequestTimeout => (
                S::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "the request took longer than the server's timeout (`http.request_timeout`) \
                 before it could be forwarded (admission or the request body)"
                    .into(),
            ),
            GatewayError::KeyStore => (
                S::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "API keys cannot be checked right now".into(),
            ),
            GatewayError::AdminNotPublic => (
                S::FORBIDDEN,
                "Admin API not served here",
                "the admin API is served on `gateway.admin_listen`, not on the public listener \
                 (`gateway.admin_on_public` serves it here too)"
                    .into(),
            ),
        };
        let problem = Problem::new(status, self.kind(), title).with_detail(detail);
        match self {
            GatewayError::Shed | GatewayError::NoEndpoint | GatewayError::LimiterDown => {
                problem.with_retry_after(1)
            }
            _ => problem,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
