//! `/api/v1/orders`: create (idempotent), read, list by customer, and the
//! state transitions `confirm`, `ship`, `cancel`.

use crate::domain::{
    order_json, Action, Currency, CustomerId, IdempotencyKey, LineItem, NewOrder, OrderError,
    OrderEvent, OrderId, Quantity, Sku, MAX_ITEMS,
};
use crate::state::AppState;
use crate::storage::{CreateOutcome, IdempotentCreate, StoreError, TransitionOutcome};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kit::http::{ApiJson, ApiQuery};
use kit::trace_context::TraceParent;
use kit::Problem;
use serde::Deserialize;
use std::sync::Arc;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create_order).get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/confirm", post(confirm))
        .route("/api/v1/orders/{id}/ship", post(ship))
        .route("/api/v1/orders/{id}/cancel", post(cancel))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    customer_id: String,
    items: Vec<CreateItem>,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateItem {
    sku: String,
    quantity: i64,
    unit_price_minor: i64,
}

fn order_problem(field: &str, e: OrderError) -> Problem {
    Problem::invalid_field(field, e.to_string())
}

impl CreateOrder {
    /// Parses every field, naming the first bad one.
    fn parse(self) -> Result<NewOrder, Problem> {
        let customer_id = CustomerId::parse(&self.customer_id)
            .map_err(|e| Problem::invalid_field("customer_id", e.to_string()))?;
        let currency = Currency::parse(&self.currency).ok_or_else(|| {
            Problem::invalid_field("currency", "must be an ISO 4217 code such as EUR or USD")
        })?;
        if self.items.len() > MAX_ITEMS {
            return Err(order_problem("items", OrderError::TooManyItems));
        }
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let sku = Sku::parse(&item.sku).map_err(|e| {
                    Problem::invalid_field(&format!("items[{i}].sku"), e.to_string())
                })?;
                let quantity = Quantity::parse(item.quantity)
                    .map_err(|e| order_problem(&format!("items[{i}].quantity"), e))?;
                LineItem::new(sku, quantity, item.unit_price_minor)
                    .map_err(|e| order_problem(&format!("items[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        NewOrder::new(customer_id, currency, items).map_err(|e| order_problem("items", e))
    }
}

/// A `POST /api/v1/orders` body as the handler reads it: the JSON shape
/// (`kit::http::parse_json`, what `ApiJson` runs), then every field. Public
/// so the fuzz target drives the same code; every failure is a 4xx.
pub fn parse_create_body(body: &[u8]) -> Result<NewOrder, Problem> {
    kit::http::parse_json::<CreateOrder>(body)?.parse()
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Problem> {
    let value = headers.get(&IDEMPOTENCY_KEY).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency-key-missing",
            "An Idempotency-Key header is required",
        )
        .with_detail("send a unique key (e.g. a UUID) per order; retries reuse it")
    })?;
    let invalid = |reason: String| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency-key-invalid",
            "The Idempotency-Key header is invalid",
        )
        .with_detail(reason)
    };
    let text = value
        .to_str()
        .map_err(|_| invalid("must be visible ASCII".into()))?;
    IdempotencyKey::parse(text).map_err(|e| invalid(e.to_string()))
}

/// Maps a storage failure to a response (`kit::storage`'s one mapping:
/// 503 when the database is unavailable, 500 otherwise, cause logged).
fn store_failure(error: StoreError) -> Problem {
    error.to_problem("the order database")
}

/// The request's own context, kept with the event: the relay's publish
/// span is its child.
fn event_traceparent(trace: Option<Extension<TraceParent>>) -> Option<String> {
    trace.map(|Extension(t)| t.to_string())
}

fn json_response(status: StatusCode, order_id: &str, body: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::LOCATION, format!("/api/v1/orders/{order_id}")),
        ],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, header::HeaderValue::from_static("true"));
    }
    response
}

async fn create_order(
    State(state): State<Arc<AppState>>,
    trace: Option<Extension<TraceParent>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrder>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let new_order = body.parse()?;
    let fingerprint = new_order.fingerprint();
    let now = state.clock.now();
    let order = new_order.into_order(OrderId::generate(), now);
    let event = OrderEvent::of(&order, event_traceparent(trace), now);
    let body = order_json(&order).to_string();
    let ttl = chrono::Duration::from_std(state.config.idempotency_ttl)
        .unwrap_or(chrono::Duration::days(1));
    let record = IdempotentCreate {
        key: &key,
        fingerprint: &fingerprint,
        response_status: StatusCode::CREATED.as_u16(),
        response_body: &body,
        expires_at: now + ttl,
    };
    match state
        .store
        .create(&order, &event, &record, now)
        .await
        .map_err(store_failure)?
    {
        CreateOutcome::Created => {
            state.wake_relay.notify_one();
            state.metrics.created.increment(1);
            Ok(json_response(
                StatusCode::CREATED,
                order.id.as_str(),
                body,
                false,
            ))
        }
        CreateOutcome::Replayed { status, body } => {
            state.metrics.replayed.increment(1);
            let order_id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
            Ok(json_response(status, &order_id, body, true))
        }
        CreateOutcome::KeyReused => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "The Idempotency-Key was used with a different request",
        )
        .with_detail("use a new key for a different order")),
    }
}

fn parse_order_id(value: &str) -> Result<OrderId, Problem> {
    OrderId::parse(value).map_err(|_| {
        Problem::not_found(format!(
            "no order `{}`",
            value.chars().take(64).collect::<String>()
        ))
    })
}

async fn get_order(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let id = parse_order_id(&id)?;
    match state.store.find(&id).await.map_err(store_failure)? {
        Some(order) => Ok(Json(order_json(&order))),
        None => Err(Problem::not_found(format!("no order `{id}`"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    customer_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(seq.to_string())
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .parse()
        .ok()
        .filter(|s| *s >= 0)
}

async fn list_orders(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<serde_json::Value>, Problem> {
    let customer = params
        .customer_id
        .as_deref()
        .ok_or_else(|| Problem::invalid_query("customer_id", "is required"))
        .and_then(|c| {
            CustomerId::parse(c).map_err(|e| Problem::invalid_query("customer_id", e.to_string()))
        })?;
    let after = match params.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Problem::invalid_query("cursor", "is not a cursor this API returned"))?,
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_query(
            "limit",
            format!("must be 1..={MAX_PAGE}"),
        ));
    }
    let page = state
        .store
        .list(&customer, after, limit)
        .await
        .map_err(store_failure)?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|(seq, _)| encode_cursor(*seq)))
        .flatten();
    let items: Vec<_> = page.iter().map(|(_, o)| order_json(o)).collect();
    Ok(Json(
        serde_json::json!({ "items": items, "next_cursor": next_cursor }),
    ))
}

async fn transition(
    state: Arc<AppState>,
    id: String,
    action: Action,
    trace: Option<Extension<TraceParent>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let id = parse_order_id(&id)?;
    let outcome = state
        .store
        .transition(&id, action, event_traceparent(trace), state.clock.now())
        .await
        .map_err(store_failure)?;
    match outcome {
        TransitionOutcome::Done(order) => {
            state.wake_relay.notify_one();
            state.metrics.transition(action);
            Ok(Json(order_json(&order)))
        }
        TransitionOutcome::Illegal(illegal) => Err(Problem::new(
            StatusCode::CONFLICT,
            "illegal-transition",
            "The order cannot make this transition",
        )
        .with_detail(illegal.to_string())),
        TransitionOutcome::NotFound => Err(Problem::not_found(format!("no order `{id}`"))),
    }
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    trace: Option<Extension<TraceParent>>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Confirm, trace).await
}

async fn ship(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    trace: Option<Extension<TraceParent>>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Ship, trace).await
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    trace: Option<Extension<TraceParent>>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Cancel, trace).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for bad in ["", "!!", "bm90LWEtbnVtYmVy", "LTE"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn create_bodies_parse_as_the_handler_reads_them() {
        let order = parse_create_body(
            br#"{"customer_id":"c-1","currency":"EUR","items":[{"sku":"a","quantity":2,"unit_price_minor":150}]}"#,
        )
        .expect("valid");
        assert_eq!(order.total_minor, 300);
        for (body, status, kind) in [
            (&br#"{"customer_id":"#[..], 400, "/problems/malformed-json"),
            (br#"{"customer_id":"c","currency":"EUR"}"#, 422, "/problems/invalid-body"),
            (
                br#"{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1000000,"unit_price_minor":9223372036854775807}]}"#,
                422,
                "/problems/invalid-field",
            ),
        ] {
            let problem = parse_create_body(body).expect_err("refused");
            assert_eq!(problem.status().as_u16(), status);
            assert_eq!(problem.kind(), kind);
        }
    }
}
