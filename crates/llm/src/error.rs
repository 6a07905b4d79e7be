//! Every way a request can fail, and how each leaves: the OpenAI error
//! envelope (`{"error": {"message", "type", "param", "code"}}`) with the
//! status an OpenAI client expects, and `Retry-After` where waiting helps.
//! The client's faults (4xx) say what to fix; ours (5xx) say what failed
//! without internals.

use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use openai::error::ApiError;
use openai::request::RequestError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    #[error("the request body is over {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the model `{0}` does not exist")]
    UnknownModel(String),
    #[error("max_tokens {asked} is above the model's limit of {cap}")]
    MaxTokensAboveCap { asked: u64, cap: u64 },
    #[error("an API key with the llm:invoke scope is required")]
    Unauthenticated,
    #[error("this API key may not call the model `{0}`")]
    ModelNotAllowed(String),
    #[error("rate limit reached: {limit}; retry later")]
    RateLimited {
        limit: &'static str,
        retry_after: Duration,
    },
    #[error("token budget exhausted: {limit} ({used} of {budget} tokens used)")]
    BudgetExhausted {
        limit: &'static str,
        used: u64,
        budget: u64,
        retry_after: Duration,
    },
    #[error("this request may use up to {asked} tokens, above the key's {limit} of {allowed}: lower max_tokens or the prompt")]
    OverLimit {
        limit: &'static str,
        asked: u64,
        allowed: u64,
    },
    #[error("the rate limiter is unavailable")]
    LimiterUnavailable,
    #[error("no backend of the model is available")]
    NoBackend,
    #[error("the backend failed: {0}")]
    Backend(&'static str),
    #[error("the backend did not answer in time")]
    BackendTimeout,
    #[error("the server is shutting down")]
    Stopping,
    #[error("the usage database is unavailable")]
    UsageUnavailable,
}

impl LlmError {
    pub fn limiter(error: ratelimit::LimiterError) -> Self {
        tracing::warn!(error = %error, "rate limiter unavailable");
        LlmError::LimiterUnavailable
    }

    pub fn status(&self) -> StatusCode {
        match self {
            LlmError::BadRequest(_)
            | LlmError::BodyUnreadable
            | LlmError::MaxTokensAboveCap { .. }
            | LlmError::OverLimit { .. } => StatusCode::BAD_REQUEST,
            LlmError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            LlmError::UnknownModel(_) => StatusCode::NOT_FOUND,
            LlmError::Unauthenticated => StatusCode::UNAUTHORIZED,
            LlmError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            LlmError::RateLimited { .. } | LlmError::BudgetExhausted { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            LlmError::LimiterUnavailable
            | LlmError::NoBackend
            | LlmError::Stopping
            | LlmError::UsageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            LlmError::Backend(_) => StatusCode::BAD_GATEWAY,
            LlmError::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The envelope an OpenAI client parses.
    pub fn api_error(&self) -> ApiError {
        let message = self.to_string();
        let (kind, code, param): (&str, &str, Option<String>) = match self {
            LlmError::BadRequest(e) => return ApiError::from(e),
            LlmError::BodyTooLarge { .. } => ("invalid_request_error", "request_too_large", None),
            LlmError::BodyUnreadable => ("invalid_request_error", "invalid_body", None),
            LlmError::UnknownModel(_) => (
                "invalid_request_error",
                "model_not_found",
                Some("model".into()),
            ),
            LlmError::MaxTokensAboveCap { .. } => (
                "invalid_request_error",
                "invalid_value",
                Some("max_tokens".into()),
            ),
            LlmError::OverLimit { .. } => (
                "invalid_request_error",
                "request_over_limit",
                Some("max_tokens".into()),
            ),
            LlmError::Unauthenticated => ("invalid_request_error", "invalid_api_key", None),
            LlmError::ModelNotAllowed(_) => (
                "invalid_request_error",
                "model_not_allowed",
                Some("model".into()),
            ),
            LlmError::RateLimited { limit, .. } => (
                if limit.starts_with("tokens") {
                    "tokens"
                } else {
                    "requests"
                },
                "rate_limit_exceeded",
                None,
            ),
            LlmError::BudgetExhausted { .. } => ("insufficient_quota", "budget_exceeded", None),
            LlmError::LimiterUnavailable
            | LlmError::NoBackend
            | LlmError::Stopping
            | LlmError::UsageUnavailable => ("server_error", "service_unavailable", None),
            LlmError::Backend(_) => ("server_error", "backend_error", None),
            LlmError::BackendTimeout => ("server_error", "timeout", None),
        };
        let error = ApiError::new(message, kind).with_code(code);
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. }
            | LlmError::BudgetExhausted { retry_after, .. } => Some(*retry_after),
            LlmError::LimiterUnavailable
            | LlmError::NoBackend
            | LlmError::Stopping
            | LlmError::UsageUnavailable => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, at least 1: `Retry-After: 0` invites a
/// retry storm.
pub fn retry_after_header(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

impl IntoResponse for LlmError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut response = (status, self.api_error().to_json()).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(wait) = self.retry_after() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_header(wait));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_header(Duration::ZERO), "1");
        assert_eq!(retry_after_header(Duration::from_millis(1500)), "2");
        assert_eq!(retry_after_header(Duration::from_secs(3600)), "3600");
    }

    #[test]
    fn a_budget_refusal_says_which_limit_and_when() {
        let error = LlmError::BudgetExhausted {
            limit: "tokens_per_day",
            used: 1000,
            budget: 1000,
            retry_after: Duration::from_secs(7200),
        };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "7200");
    }
}
