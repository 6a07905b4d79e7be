//! Which of kit's security headers a response carries: the gateway's,
//! the shortener's and kit's own tests check the same three names.

use axum::http::HeaderMap;

/// Kit's security headers, in the order [`security_headers`] lists them.
pub const SECURITY_HEADERS: [&str; 3] = [
    "x-content-type-options",
    "content-security-policy",
    "referrer-policy",
];

/// The security headers `headers` holds (a reqwest or an axum response's:
/// both are `http`'s map).
pub fn security_headers(headers: &HeaderMap) -> Vec<&'static str> {
    SECURITY_HEADERS
        .into_iter()
        .filter(|name| headers.contains_key(*name))
        .collect()
}
