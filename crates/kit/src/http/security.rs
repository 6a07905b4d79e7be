//! The security headers every response gets, set by the observe layer in
//! one pass over the response, unless its handler sets those it needs
//! itself ([`super::CatchAll::with_own_security_headers`],
//! [`OwnSecurityHeaders`]): a proxy relays the origin's answer as it
//! came, and a redirect (no body to sniff or render) needs only its
//! `Referrer-Policy`.
//!
//! Three `SetResponseHeaderLayer`s did this before, each a `Router::layer`
//! of its own, and axum boxes the future of every router layer for every
//! request (a `MapFuture` box and its move, a boxed service clone, a
//! content-length pass): on the redirect path those were among the
//! largest costs of kit's stack (issue 18).

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

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

/// Marks a response whose handler set the security headers it needs:
/// kit's observe layer adds none (an answer relayed from another server,
/// where a `Content-Security-Policy` that loads nothing would break an
/// HTML app behind the proxy). For a handler served as a route; a
/// [`super::CatchAll::with_own_security_headers`] needs none. Free when
/// absent: a response without extensions has no map to look in.
#[derive(Clone, Copy, Debug)]
pub struct OwnSecurityHeaders;

/// Adds each security header a response does not set itself (a console
/// page with its own policy keeps its own): what kit does to every
/// answer, for handlers that set their own (their error answers).
pub fn add_missing(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
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
