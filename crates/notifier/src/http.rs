//! The operator's dead-letter API: `GET /api/v1/notifications/dead` lists
//! events whose notifications failed for good; `POST
//! /api/v1/notifications/dead/{id}/replay` sends one again now (removed on
//! success, kept with its attempt count on failure).

use crate::storage::{DeadLetter, StoreError};
use crate::worker::Worker;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::http::ApiQuery;
use kit::Problem;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub(crate) fn routes(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/api/v1/notifications/dead", get(list_dead))
        .route("/api/v1/notifications/dead/{id}/replay", post(replay))
        .with_state(worker)
}

/// `kit::storage`'s one mapping: 503 when the database is unavailable,
/// 500 otherwise, cause logged.
fn store_failure(error: StoreError) -> Problem {
    error.to_problem("the notification database")
}

fn dead_json(dead: &DeadLetter) -> Value {
    let payload: Value = serde_json::from_slice(&dead.event.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&dead.event.payload).into()));
    json!({
        "id": dead.id,
        "event_id": dead.event.id,
        "subject": dead.event.subject,
        "order_id": dead.event.key,
        "attempts": dead.attempts,
        "last_error": dead.last_error,
        "failed_at": dead.failed_at,
        "occurred_at": dead.event.occurred_at,
        "payload": payload,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list_dead(
    State(worker): State<Arc<Worker>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, Problem> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_query(
            "limit",
            format!("must be 1..={MAX_PAGE}"),
        ));
    }
    let after = params.after.unwrap_or(0);
    let page = worker
        .store
        .list_dead(after, limit)
        .await
        .map_err(store_failure)?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|d| d.id))
        .flatten();
    let items: Vec<Value> = page.iter().map(dead_json).collect();
    Ok(Json(json!({ "items": items, "next_after": next })))
}

async fn replay(
    State(worker): State<Arc<Worker>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let not_found = || {
        Problem::not_found(format!(
            "no dead letter `{}`",
            id.chars().take(32).collect::<String>()
        ))
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let dead = worker
        .store
        .find_dead(id)
        .await
        .map_err(store_failure)?
        .ok_or_else(not_found)?;
    match worker.send(&dead.event).await {
        Ok(()) => {
            worker.store.resolve_dead(id).await.map_err(store_failure)?;
            worker.metrics.dead_letters.decrement(1.0);
            tracing::info!(event_id = %dead.event.id, "dead letter replayed");
            Ok(Json(
                json!({ "status": "delivered", "event_id": dead.event.id }),
            ))
        }
        Err(e) => {
            let message = e.to_string();
            worker
                .store
                .replay_failed(id, &message, worker.clock.now())
                .await
                .map_err(store_failure)?;
            Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "delivery-failed",
                "The notification could not be delivered",
            )
            .with_detail(message))
        }
    }
}
