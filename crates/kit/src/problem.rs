//! RFC 9457 problem details: the one error format every Reliable API speaks.
//!
//! `type` is a stable, relative URI (`/problems/<kind>`) that clients can
//! match on; `title` is the human summary of the kind, `detail` the specifics
//! of this occurrence. Field-level validation failures are listed in
//! `invalid_params`. Internal errors never carry their cause to the client:
//! it is logged instead.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One field that failed validation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

/// The protocol a route's clients speak, which decides the `error` member
/// its problems carry beside RFC 9457's fields.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ErrorDialect {
    /// RFC 9457 only.
    #[default]
    Problem,
    /// The Open Inference Protocol: `"error": "<detail>"`.
    Oip,
    /// OpenAI's API: `"error": {"message", "type", "param", "code"}`.
    #[serde(rename = "openai")]
    OpenAi,
}

/// The `error` member's schema: a string (OIP) or OpenAI's object.
fn error_member_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, SchemaType, Type};
    let text = || Object::with_type(Type::String);
    let nullable_text = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .build()
    };
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("message", text())
        .property("type", text())
        .property("param", nullable_text())
        .property("code", nullable_text())
        .required("message")
        .required("type")
        .build();
    utoipa::openapi::schema::Schema::OneOf(
        OneOfBuilder::new()
            .item(text())
            .item(object)
            .description(Some(
                "The detail again, for protocols whose clients read `error`: a string (the Open Inference Protocol) or OpenAI's error object.",
            ))
            .build(),
    )
}

/// The `error` member's two shapes.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum ErrorMember {
    Text(Box<str>),
    OpenAi {
        message: String,
        r#type: &'static str,
        param: Option<String>,
        code: String,
    },
}

/// An `application/problem+json` response (RFC 9457).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable, relative URI of the kind of problem (`/problems/not-found`).
    #[serde(rename = "type")]
    kind: String,
    /// Human summary of the kind.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The fields that failed validation.
    #[serde(skip_serializing_if = "<[InvalidParam]>::is_empty")]
    #[schema(value_type = Vec<InvalidParam>)]
    invalid_params: Box<[InvalidParam]>,
    /// The detail again, under the name some protocols' clients read (the
    /// Open Inference Protocol's `{"error": "..."}`, OpenAI's `{"error":
    /// {"message", "type", "code"}}`); an RFC 9457 extension member,
    /// absent unless the route's protocol asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = error_member_schema)]
    error: Option<Box<ErrorMember>>,
    /// Seconds; `u32` (136 years) keeps the whole error small enough to
    /// return by value.
    #[serde(skip)]
    retry_after_secs: Option<u32>,
}

impl Problem {
    /// `kind` is a short kebab-case identifier, e.g. `slug-taken`.
    pub fn new(status: StatusCode, kind: &str, title: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            invalid_params: Box::default(),
            error: None,
            retry_after_secs: None,
        }
    }

    /// Repeats the detail (or the title) as an `error` member, for
    /// protocols whose clients read `{"error": "..."}`.
    pub fn with_error_member(mut self) -> Self {
        let text = self.detail.as_deref().unwrap_or(&self.title);
        self.error = Some(Box::new(ErrorMember::Text(text.into())));
        self
    }

    /// Adds OpenAI's error object as the `error` member, so OpenAI clients
    /// read the problem as one of their API's errors: `type` from the
    /// status (`invalid_request_error`, `requests` for 429,
    /// `server_error`), `code` the problem's kind in snake case.
    pub fn with_openai_error(mut self) -> Self {
        let message = self.detail.as_deref().unwrap_or(&self.title).to_string();
        let r#type = match self.status {
            429 => "requests",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let code = self.kind.trim_start_matches("/problems/").replace('-', "_");
        self.error = Some(Box::new(ErrorMember::OpenAi {
            message,
            r#type,
            param: None,
            code,
        }));
        self
    }

    /// The `error` member a route's protocol wants.
    pub fn in_dialect(self, dialect: ErrorDialect) -> Self {
        match dialect {
            ErrorDialect::Problem => self,
            ErrorDialect::Oip => self.with_error_member(),
            ErrorDialect::OpenAi => self.with_openai_error(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_invalid_param(
        mut self,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        let mut params = std::mem::take(&mut self.invalid_params).into_vec();
        params.push(InvalidParam {
            name: name.into(),
            reason: reason.into(),
        });
        self.invalid_params = params.into_boxed_slice();
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// 422: the request was well-formed but a field is invalid.
    pub fn invalid_field(name: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "A field of the request is invalid",
        )
        .with_detail(format!("{name}: {reason}"))
        .with_invalid_param(name, reason)
    }

    /// 400: a query parameter is invalid.
    pub fn invalid_query(name: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "A query parameter is invalid",
        )
        .with_detail(format!("{name}: {reason}"))
        .with_invalid_param(name, reason)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(what)
    }

    /// 500 without details: the cause belongs in the logs, not the response.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }

    /// 503: a dependency is unavailable or the request ran out of time.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail(detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after_secs;
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_rfc9457() {
        let problem = Problem::invalid_field("url", "must be http or https");
        let json = serde_json::to_value(&problem).expect("serializable");
        assert_eq!(json["type"], "/problems/invalid-field");
        assert_eq!(json["status"], 422);
        assert_eq!(json["invalid_params"][0]["name"], "url");
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }

    #[test]
    fn each_dialect_adds_the_error_member_its_clients_read() {
        let problem = || {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "api-key-missing",
                "API key required",
            )
            .with_detail("this route needs an API key")
        };
        let plain =
            serde_json::to_value(problem().in_dialect(ErrorDialect::Problem)).expect("json");
        assert!(plain.get("error").is_none());
        let oip = serde_json::to_value(problem().in_dialect(ErrorDialect::Oip)).expect("json");
        assert_eq!(oip["error"], "this route needs an API key");
        let openai =
            serde_json::to_value(problem().in_dialect(ErrorDialect::OpenAi)).expect("json");
        assert_eq!(openai["type"], "/problems/api-key-missing");
        assert_eq!(openai["error"]["message"], "this route needs an API key");
        assert_eq!(openai["error"]["type"], "invalid_request_error");
        assert_eq!(openai["error"]["code"], "api_key_missing");
        assert!(openai["error"]["param"].is_null());
        let limited = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many")
            .with_openai_error();
        assert_eq!(
            serde_json::to_value(limited).expect("json")["error"]["type"],
            "requests"
        );
    }
}
