//! The security headers every response gets, as one tower layer.
//!
//! Three `SetResponseHeaderLayer`s did the same work, but each was a
//! `Router::layer` of its own, and axum boxes the future of every router
//! layer for every request (a `MapFuture` box and its move): on the
//! redirect path those boxes were among the largest `memcpy` callers
//! (issue 18). This layer sets the three headers in one pass over the
//! response, and [`super::stack`] applies it together with the body limit
//! as a single router layer.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// For API responses: load nothing, be framed by no one.
const CONTENT_SECURITY_POLICY: HeaderValue =
    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");

const HEADERS: [(HeaderName, HeaderValue); 3] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// Adds each security header a response does not set itself (a console
/// page with its own policy keeps its own).
pub(super) fn add_missing(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
    }
}

#[derive(Clone, Copy)]
pub(super) struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner }
    }
}

#[derive(Clone)]
pub(super) struct SecurityHeaders<S> {
    inner: S,
}

impl<S, R> Service<R> for SecurityHeaders<S>
where
    S: Service<R, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WithSecurityHeaders<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        WithSecurityHeaders {
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    pub(super) struct WithSecurityHeaders<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for WithSecurityHeaders<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(self.project().inner.poll(cx))?;
        add_missing(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_headers_are_added_and_a_handlers_own_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        add_missing(&mut headers);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'"
        );
        assert_eq!(headers.len(), 3);
    }
}
