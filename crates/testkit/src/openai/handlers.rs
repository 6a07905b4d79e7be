//! The routes: a request's intake (recorded, counted, parsed), the
//! failures decided before any work, then embeddings, models and health
//! here, generations in [`super::generation`].

use super::generation::{self, cut, malformed};
use super::server::ConnectionKill;
use super::wire::{self, Endpoint};
use super::{Exchange, Failure, RecordedRequest, Script, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .with_state(shared)
}

type AppState = State<Arc<Shared>>;

async fn chat(
    State(shared): AppState,
    Extension(kill): Extension<ConnectionKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(shared, kill, Endpoint::Chat, headers, body).await
}

async fn completions(
    State(shared): AppState,
    Extension(kill): Extension<ConnectionKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(shared, kill, Endpoint::Completions, headers, body).await
}

async fn health(State(shared): AppState) -> &'static str {
    shared.count(|s| s.health_checks += 1);
    "ok"
}

async fn models(State(shared): AppState) -> Json<Value> {
    shared.count(|s| s.model_lists += 1);
    let data: Vec<Value> = shared
        .script()
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "scripted"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Records the request and parses its body; a body that is not JSON is
/// answered 400 (and counted completed).
fn receive(
    shared: &Arc<Shared>,
    path: &str,
    headers: HeaderMap,
    raw: &Bytes,
) -> (Exchange, Result<Value, Response>) {
    let parsed = serde_json::from_slice::<Value>(raw);
    let body = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(raw).into_owned()),
    };
    // Recorded before it is counted, so a test that waited for the count
    // finds the body.
    shared.record(RecordedRequest {
        path: path.to_string(),
        headers,
        body,
    });
    let mut exchange = Exchange::begin(shared);
    match parsed {
        Ok(value) => (exchange, Ok(value)),
        Err(e) => {
            exchange.complete();
            let answer = wire::error(400, &format!("the body is not JSON: {e}"));
            (exchange, Err(answer))
        }
    }
}

/// The failures decided before any work: a status now, or silence.
async fn answer_early(exchange: &mut Exchange, script: &Script) -> Option<Response> {
    match script.failure {
        Some(Failure::Status(code)) => {
            exchange.complete();
            Some(wire::error(
                code,
                &format!("scripted failure: status {code}"),
            ))
        }
        // Never answers; the exchange stays open until the client leaves
        // and hyper drops this future.
        Some(Failure::HangBeforeFirstByte) => std::future::pending().await,
        _ => None,
    }
}

async fn generate(
    shared: Arc<Shared>,
    kill: ConnectionKill,
    endpoint: Endpoint,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = match endpoint {
        Endpoint::Chat => "/v1/chat/completions",
        Endpoint::Completions => "/v1/completions",
    };
    let script = shared.script();
    let (mut exchange, body) = receive(&shared, path, headers, &raw);
    let body = match body {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if let Some(answer) = answer_early(&mut exchange, &script).await {
        return answer;
    }
    if !script.ttft.is_zero() {
        tokio::time::sleep(script.ttft).await;
    }
    generation::produce(shared, kill, exchange, endpoint, &body, script).await
}

async fn embeddings(
    State(shared): AppState,
    Extension(kill): Extension<ConnectionKill>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let script = shared.script();
    let (mut exchange, body) = receive(&shared, "/v1/embeddings", headers, &raw);
    let body = match body {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if let Some(answer) = answer_early(&mut exchange, &script).await {
        return answer;
    }
    if !script.ttft.is_zero() {
        tokio::time::sleep(script.ttft).await;
    }
    let prompt_tokens = wire::prompt_tokens(&body);
    match script.failure {
        Some(Failure::MalformedSse) => return malformed(exchange, false),
        Some(Failure::DisconnectAfter(_)) => {
            shared.count(|s| s.prompt_tokens_served += u64::from(prompt_tokens));
            return cut(&mut exchange, &kill).await;
        }
        _ => {}
    }
    let inputs: Vec<&Value> = match body.get("input") {
        // A list of strings or of token lists is one input each; a list of
        // token ids is one input.
        Some(Value::Array(items)) if items.iter().any(|i| !i.is_number()) => items.iter().collect(),
        Some(input) => vec![input],
        None => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            json!({"object": "embedding", "index": index, "embedding": embedding(index, input)})
        })
        .collect();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| script.models.first().cloned())
        .unwrap_or_default();
    let mut answer = json!({"object": "list", "data": data, "model": model});
    if let (true, Some(object)) = (script.usage, answer.as_object_mut()) {
        object.insert(
            "usage".into(),
            json!({"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}),
        );
    }
    shared.count(|s| s.prompt_tokens_served += u64::from(prompt_tokens));
    exchange.complete();
    Json(answer).into_response()
}

/// The vector of input `index`: `[1.0, index, its word count, 0.5]`, fixed
/// so a test can check which input it belongs to.
fn embedding(index: usize, input: &Value) -> Vec<f32> {
    vec![1.0, index as f32, wire::count_input(input) as f32, 0.5]
}
