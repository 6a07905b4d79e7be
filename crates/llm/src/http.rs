//! The OpenAI-compatible endpoints, and the usage report.
//!
//! Request and response bodies are OpenAI's; the schemas below document
//! the fields the gateway reads or adds. Every other field passes through
//! to the backend untouched. Errors are OpenAI's envelope.

use crate::error::LlmError;
use crate::service::Service;
use crate::usage::{UsageQuery, UsageRow};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use openai::request::Endpoint;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The admin route prefix (the gateway asks for the `llm:admin` scope).
pub const USAGE_PREFIX: &str = "/v1/usage";

fn api() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(completions))
        .routes(routes!(embeddings))
        .routes(routes!(models))
        .routes(routes!(usage))
}

pub(crate) fn routes(service: Arc<Service>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(service)
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    doc.info.title = "Reliable LLM gateway (OpenAI-compatible)".to_string();
    doc
}

/// The OpenAI error envelope.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ErrorEnvelope {
    error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ErrorObject {
    message: String,
    #[schema(example = "invalid_request_error")]
    r#type: String,
    param: Option<String>,
    #[schema(example = "model_not_found")]
    code: Option<String>,
}

/// One chat message (other fields, such as `tool_calls` or `name`, pass
/// through).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool` or `function`.
    role: String,
    /// A string, an array of content parts, or null (an assistant message
    /// with tool calls).
    content: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct StreamOptions {
    /// Ask for a final chunk with the token usage.
    include_usage: Option<bool>,
}

/// A chat completion request. Fields not listed pass through.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct ChatCompletionRequest {
    /// A model name or alias from `GET /v1/models`.
    #[schema(example = "chat-small")]
    model: String,
    #[schema(min_items = 1)]
    messages: Vec<Message>,
    /// Server-sent events, one chunk per event, `data: [DONE]` last.
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// At most the model's cap; the cap when absent.
    #[schema(minimum = 1)]
    max_tokens: Option<u64>,
    #[schema(minimum = 1)]
    max_completion_tokens: Option<u64>,
    #[schema(minimum = 1, maximum = 128)]
    n: Option<u64>,
}

/// A (legacy) completion request. Fields not listed pass through.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct CompletionRequest {
    #[schema(example = "chat-small")]
    model: String,
    /// A string, an array of strings, of token ids, or of arrays of ids.
    prompt: serde_json::Value,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[schema(minimum = 1)]
    max_tokens: Option<u64>,
    #[schema(minimum = 1, maximum = 128)]
    n: Option<u64>,
}

/// An embeddings request. Fields not listed pass through.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct EmbeddingRequest {
    model: String,
    /// A string, an array of strings, of token ids, or of arrays of ids.
    input: serde_json::Value,
}

const ERRORS_400: &str = "Not JSON, or a field the gateway reads is wrong (`error.param` names it): `model`, `messages`, `stream`, `stream_options`, `max_tokens` (also above the model's cap), `n`.";

/// Create a chat completion, streamed or not.
///
/// Served by the model's deployments, least loaded first, falling back to
/// the next deployment or fallback model on a failure before the first
/// token. Streams are relayed event by event.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "llm",
    params(("x-api-key-name" = Option<String>, Header, description = "Set by the gateway in front: the caller's key")),
    request_body(content = ChatCompletionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A `chat.completion`, or with `stream: true` a `text/event-stream` of `chat.completion.chunk` events ending with `data: [DONE]` (or an error event if the backend failed mid-stream)."),
        (status = 400, description = ERRORS_400, body = ErrorEnvelope),
        (status = 401, description = "No API key named by the gateway.", body = ErrorEnvelope),
        (status = 403, description = "The key may not call this model.", body = ErrorEnvelope),
        (status = 404, description = "Unknown model (`code`: `model_not_found`).", body = ErrorEnvelope),
        (status = 413, description = "The body is over `llm.max_request_body_bytes`.", body = ErrorEnvelope),
        (status = 429, description = "A limit of the key: the message names it (`requests_per_minute`, `tokens_per_minute`, `tokens_per_day`, `tokens_per_month`).", body = ErrorEnvelope,
            headers(("retry-after" = u32, description = "Seconds"))),
        (status = 502, description = "Every attempt failed.", body = ErrorEnvelope),
        (status = 503, description = "No backend available, or the limiter is down (fail closed).", body = ErrorEnvelope,
            headers(("retry-after" = u32, description = "Seconds"))),
        (status = 504, description = "No first token within the timeout.", body = ErrorEnvelope),
    ))]
async fn chat_completions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    service
        .handle(Endpoint::ChatCompletions, &headers, body)
        .await
}

/// Create a completion (the legacy prompt API), streamed or not.
#[utoipa::path(post, path = "/v1/completions", tag = "llm",
    params(("x-api-key-name" = Option<String>, Header, description = "Set by the gateway in front: the caller's key")),
    request_body(content = CompletionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A `text_completion`, or a stream of them."),
        (status = 400, description = ERRORS_400, body = ErrorEnvelope),
        (status = 401, description = "No API key named by the gateway.", body = ErrorEnvelope),
        (status = 404, description = "Unknown model.", body = ErrorEnvelope),
        (status = 413, description = "The body is over the limit.", body = ErrorEnvelope),
        (status = 429, description = "A limit of the key.", body = ErrorEnvelope,
            headers(("retry-after" = u32, description = "Seconds"))),
        (status = 502, description = "Every attempt failed.", body = ErrorEnvelope),
        (status = 503, description = "No backend available.", body = ErrorEnvelope),
    ))]
async fn completions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    service.handle(Endpoint::Completions, &headers, body).await
}

/// Create embeddings, passed through to a backend that serves them.
#[utoipa::path(post, path = "/v1/embeddings", tag = "llm",
    params(("x-api-key-name" = Option<String>, Header, description = "Set by the gateway in front: the caller's key")),
    request_body(content = EmbeddingRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The backend's embeddings list."),
        (status = 400, description = "Not JSON, no `model`, or `input` of the wrong shape.", body = ErrorEnvelope),
        (status = 401, description = "No API key named by the gateway.", body = ErrorEnvelope),
        (status = 404, description = "Unknown model.", body = ErrorEnvelope),
        (status = 429, description = "A limit of the key.", body = ErrorEnvelope),
        (status = 502, description = "Every attempt failed.", body = ErrorEnvelope),
        (status = 503, description = "No backend available.", body = ErrorEnvelope),
    ))]
async fn embeddings(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    service.handle(Endpoint::Embeddings, &headers, body).await
}

/// The model list, as OpenAI's `GET /v1/models` gives it.
#[derive(Serialize, ToSchema)]
struct ModelList {
    #[schema(example = "list")]
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Serialize, ToSchema)]
struct ModelEntry {
    /// A public name or alias (never a backend's own name).
    #[schema(example = "chat-small")]
    id: String,
    #[schema(example = "model")]
    object: &'static str,
    /// Unix seconds; 0 (the gateway does not know).
    created: u64,
    #[schema(example = "reliable")]
    owned_by: &'static str,
}

/// List the models served: configured names and aliases, and the models
/// discovered from backends.
#[utoipa::path(get, path = "/v1/models", tag = "llm",
    responses((status = 200, description = "The models.", body = ModelList)))]
async fn models(State(service): State<Arc<Service>>) -> Json<ModelList> {
    let mut data = Vec::new();
    for model in service.catalog.list() {
        for id in std::iter::once(model.name).chain(model.aliases.iter().map(String::as_str)) {
            data.push(ModelEntry {
                id: id.to_string(),
                object: "model",
                created: 0,
                owned_by: "reliable",
            });
        }
    }
    Json(ModelList {
        object: "list",
        data,
    })
}

/// The usage report's filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageParams {
    /// One key's name; all keys when absent.
    key: Option<String>,
    /// RFC 3339, inclusive; 24 hours before `to` when absent.
    from: Option<DateTime<Utc>>,
    /// RFC 3339, exclusive; now when absent.
    to: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct UsageReport {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Per key, model and backend.
    data: Vec<UsageLine>,
}

#[derive(Serialize, ToSchema)]
struct UsageLine {
    key: String,
    model: String,
    backend: String,
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Requests whose usage the gateway estimated (no usage from the
    /// backend).
    estimated_requests: u64,
}

impl From<UsageRow> for UsageLine {
    fn from(row: UsageRow) -> Self {
        Self {
            key: row.key,
            model: row.model,
            backend: row.backend,
            requests: row.requests,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            estimated_requests: row.estimated_requests,
        }
    }
}

/// Token usage per key, model and backend over a time range (admins: the
/// gateway asks for the `llm:admin` scope).
#[utoipa::path(get, path = "/v1/usage", tag = "llm",
    params(UsageParams),
    responses(
        (status = 200, description = "The usage.", body = UsageReport),
        (status = 400, description = "`from` is not before `to`, or a time is not RFC 3339.", body = ErrorEnvelope),
        (status = 503, description = "The usage database is unavailable.", body = ErrorEnvelope),
    ))]
async fn usage(
    State(service): State<Arc<Service>>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return bad_usage_query("the query must be key, from and to (RFC 3339 times)");
    };
    let to = params.to.unwrap_or_else(|| service.settler.clock.now());
    let from = params.from.unwrap_or(to - chrono::Duration::hours(24));
    if from >= to {
        return bad_usage_query("`from` must be before `to`");
    }
    let query = UsageQuery {
        key: params.key,
        from,
        to,
    };
    match service.usage.summary(&query).await {
        Ok(rows) => Json(UsageReport {
            from,
            to,
            data: rows.into_iter().map(UsageLine::from).collect(),
        })
        .into_response(),
        Err(e) => {
            tracing::error!(error = &e as &dyn std::error::Error, "usage query failed");
            LlmError::UsageUnavailable.into_response()
        }
    }
}

fn bad_usage_query(message: &str) -> Response {
    let error =
        openai::error::ApiError::new(message, "invalid_request_error").with_code("invalid_query");
    let mut response = (StatusCode::BAD_REQUEST, error.to_json()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
