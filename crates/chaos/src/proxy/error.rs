//! toxiproxy's error envelope, `{"error": "...", "status": N}`.
//!
//! Clients of toxiproxy match on the status (409 for a name taken, 404 for
//! an unknown proxy or toxic, 400 for a bad body), so every refusal carries
//! the status toxiproxy 2.x gives it, with toxiproxy's message first and
//! the field at fault after it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request: the message and the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub message: String,
    pub status: u16,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            status: status.as_u16(),
        }
    }

    /// `bad request body: DETAIL` (400): not JSON, or a value out of range.
    pub fn bad_body(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {detail}"),
        )
    }

    /// `missing required field: FIELD` (400).
    pub fn missing(field: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    pub fn proxy_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("proxy not found: {name}"))
    }

    pub fn proxy_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("proxy already exists: {name}"),
        )
    }

    pub fn invalid_stream(got: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("stream was invalid, can be either upstream or downstream (got {got:?})"),
        )
    }

    pub fn invalid_toxic_type(got: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid toxic type: {got:?} (known: {})",
                super::toxic::TYPES.join(", ")
            ),
        )
    }

    pub fn toxic_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("toxic already exists: {name}"),
        )
    }

    pub fn toxic_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("toxic not found: {name}"))
    }

    /// The upstream's host does not resolve (400).
    pub fn bad_upstream(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("bad upstream: {detail}"))
    }

    /// The listen address is taken (409: toxiproxy answers 500 with the
    /// bind error; a taken address is a conflict, not a server fault).
    pub fn listen_in_use(listen: &str, error: &std::io::Error) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("listen tcp {listen}: {error}"),
        )
    }

    /// Any other bind failure (an address not on this host, a privileged
    /// port): the client's choice of address, so 400.
    pub fn bad_listen(listen: &str, error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("listen tcp {listen}: {error}"),
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "status": self.status })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.to_json())).into_response()
    }
}
