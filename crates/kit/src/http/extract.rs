//! Extractors whose every rejection is a problem+json response.

use crate::problem::Problem;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON body extractor whose every failure is a problem+json response:
/// wrong content type 415, over the body limit 413, malformed JSON 400,
/// well-formed JSON of the wrong shape (unknown field, wrong type) 422.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected a JSON body",
            )
            .with_detail("send `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "Request body too large",
                    )
                } else {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable-body",
                        "Request body could not be read",
                    )
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document with the same error mapping as [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "The request body has the wrong shape",
            )
            .with_detail(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The request body is not valid JSON",
            )
            .with_detail(e.to_string()),
        }
    })
}

/// A query-string extractor whose failures are problem+json 400s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    "The query string is invalid",
                )
                .with_detail(rejection.body_text())
            })
    }
}
