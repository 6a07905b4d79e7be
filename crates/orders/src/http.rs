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
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kit::http::{ApiJson, ApiQuery};
use kit::Problem;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// The routes and their OpenAPI document, built together so they cannot
/// drift.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(confirm))
        .routes(routes!(ship))
        .routes(routes!(cancel))
}

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(state)
}

/// The orders API's OpenAPI document, with the links from a created order
/// to what can be done with it.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    for to in ["get_order", "confirm", "ship", "cancel"] {
        kit::openapi::add_link(
            &mut doc,
            "create_order",
            "201",
            to,
            &[("id", "$response.body#/id")],
        );
    }
    for from in ["confirm", "ship", "cancel"] {
        kit::openapi::add_link(
            &mut doc,
            from,
            "200",
            "get_order",
            &[("id", "$response.body#/id")],
        );
    }
    list_currencies(&mut doc);
    doc
}

/// The currency of a new order is one of the listed codes: an enum in the
/// document, from the same list the parser uses.
fn list_currencies(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(order))) = components.schemas.get_mut("CreateOrder") else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(currency))) = order.properties.get_mut("currency") {
        currency.pattern = None;
        currency.enum_values = Some(
            crate::domain::Currency::codes()
                .iter()
                .map(|c| serde_json::Value::from(*c))
                .collect(),
        );
    }
}

/// An order to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    #[schema(example = "cust-42", pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    customer_id: String,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<CreateItem>,
    /// ISO 4217 code, upper case.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// One line of an order to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateItem {
    #[schema(example = "sku-1", pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    sku: String,
    #[schema(minimum = 1, maximum = 1_000_000)]
    quantity: i64,
    /// Unit price in minor units (cents), 0 or more.
    #[schema(minimum = 0)]
    unit_price_minor: i64,
}

/// One page of a customer's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderPage {
    items: Vec<crate::domain::OrderView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
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
fn event_traceparent() -> Option<String> {
    kit::telemetry::current_trace().map(|t| t.to_string())
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

/// Create an order, idempotently.
///
/// The same `Idempotency-Key` with the same body answers the stored
/// response again (with `Idempotent-Replayed: true`); with a different
/// body, 422. The order's `orders.created` event is written in the same
/// transaction (transactional outbox).
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    params(("idempotency-key" = String, Header, description = "A unique key per order (a UUID); retries reuse it. Up to 255 visible ASCII characters.", pattern = "^[!-~]{1,255}$")),
    request_body = CreateOrder,
    responses(
        (status = 201, description = "Created (or replayed).", body = crate::domain::OrderView,
            headers(("location" = String), ("idempotent-replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "The Idempotency-Key header is missing or invalid. Problem types: `/problems/idempotency-key-missing`, `/problems/idempotency-key-invalid`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key was used with another body. Problem types: `/problems/idempotency-key-reused`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_order(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrder>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let new_order = body.parse()?;
    let fingerprint = new_order.fingerprint();
    let now = state.clock.now();
    let order = new_order.into_order(OrderId::generate(), now);
    let event = OrderEvent::of(&order, event_traceparent(), now);
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

/// Get an order.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id", pattern = "^ord_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The order.", body = crate::domain::OrderView),
        (status = 404, description = "No such order. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Whose orders (required).
    #[param(required = true, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    customer_id: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
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

/// List a customer's orders by pages.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(ListParams),
    responses((status = 200, description = "A page of orders.", body = OrderPage))
)]
async fn list_orders(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<OrderPage>, Problem> {
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
    Ok(Json(OrderPage {
        items: page
            .iter()
            .map(|(_, o)| crate::domain::OrderView::of(o))
            .collect(),
        next_cursor,
    }))
}

async fn transition(
    state: Arc<AppState>,
    id: String,
    action: Action,
) -> Result<Json<serde_json::Value>, Problem> {
    let id = parse_order_id(&id)?;
    let outcome = state
        .store
        .transition(&id, action, event_traceparent(), state.clock.now())
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

/// Confirm a pending order.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/confirm",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id", pattern = "^ord_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The order after the change.", body = crate::domain::OrderView),
        (status = 404, description = "No such order. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow it. Problem types: `/problems/illegal-transition`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Confirm).await
}

/// Ship a confirmed order.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/ship",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id", pattern = "^ord_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The order after the change.", body = crate::domain::OrderView),
        (status = 404, description = "No such order. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow it. Problem types: `/problems/illegal-transition`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ship(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Ship).await
}

/// Cancel a pending or confirmed order.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id", pattern = "^ord_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The order after the change.", body = crate::domain::OrderView),
        (status = 404, description = "No such order. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow it. Problem types: `/problems/illegal-transition`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    transition(state, id, Action::Cancel).await
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
