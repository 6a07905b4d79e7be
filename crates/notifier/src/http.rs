//! The operator's dead-letter API: `GET /api/v1/notifications/dead` lists
//! events whose notifications failed for good; `POST
//! /api/v1/notifications/dead/{id}/replay` sends one again now (removed on
//! success, kept with its attempt count on failure).

use crate::storage::{DeadLetter, StoreError};
use crate::worker::Worker;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use kit::http::ApiQuery;
use kit::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// The routes and their OpenAPI document, built together.
fn api() -> OpenApiRouter<Arc<Worker>> {
    OpenApiRouter::new()
        .routes(routes!(list_dead))
        .routes(routes!(replay))
}

pub(crate) fn routes(worker: Arc<Worker>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(worker)
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    kit::openapi::add_link(
        &mut doc,
        "list_dead",
        "200",
        "replay",
        &[("id", "$response.body#/items/0/id")],
    );
    doc
}

/// `kit::storage`'s one mapping: 503 when the database is unavailable,
/// 500 otherwise, cause logged.
fn store_failure(error: StoreError) -> Problem {
    error.to_problem("the notification database")
}

/// An event whose notification failed for good.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterView {
    /// Pass to `replay`; ascending.
    id: i64,
    event_id: String,
    /// The event's subject (`orders.created`).
    subject: String,
    order_id: String,
    attempts: i64,
    last_error: String,
    failed_at: DateTime<Utc>,
    occurred_at: DateTime<Utc>,
    /// The event as published (JSON; a string if it was not JSON).
    #[schema(value_type = Object)]
    payload: Value,
}

impl DeadLetterView {
    fn of(dead: &DeadLetter) -> Self {
        let payload: Value = serde_json::from_slice(&dead.event.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&dead.event.payload).into()));
        Self {
            id: dead.id,
            event_id: dead.event.id.clone(),
            subject: dead.event.subject.clone(),
            order_id: dead.event.key.clone(),
            attempts: dead.attempts.into(),
            last_error: dead.last_error.clone(),
            failed_at: dead.failed_at,
            occurred_at: dead.event.occurred_at,
            payload,
        }
    }
}

/// One page of dead letters, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterPage {
    items: Vec<DeadLetterView>,
    /// Pass as `after` for the next page; absent on the last one.
    next_after: Option<i64>,
}

/// A replay that delivered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Replayed {
    /// `delivered`.
    status: &'static str,
    event_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// `next_after` of the previous page.
    after: Option<i64>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// List dead letters.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/dead",
    tag = "notifications",
    params(ListParams),
    responses((status = 200, description = "A page of dead letters.", body = DeadLetterPage))
)]
async fn list_dead(
    State(worker): State<Arc<Worker>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DeadLetterPage>, Problem> {
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
    Ok(Json(DeadLetterPage {
        items: page.iter().map(DeadLetterView::of).collect(),
        next_after: next,
    }))
}

/// Send a dead letter's notification again now.
///
/// Removed from the dead letters on success; kept, with one more attempt
/// counted, on failure.
#[utoipa::path(
    post,
    path = "/api/v1/notifications/dead/{id}/replay",
    tag = "notifications",
    params(("id" = i64, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Delivered.", body = Replayed),
        (status = 404, description = "No such dead letter. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Delivery failed again. Problem types: `/problems/delivery-failed`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn replay(
    State(worker): State<Arc<Worker>>,
    Path(id): Path<String>,
) -> Result<Json<Replayed>, Problem> {
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
            Ok(Json(Replayed {
                status: "delivered",
                event_id: dead.event.id,
            }))
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
