//! `GET /api/v1/cost/allocation`: the platform's own cost in the shape of
//! OpenCost's `/allocation`, so tools written for OpenCost read it.
//!
//! Query parameters as OpenCost's: `window` (required), `aggregate`
//! (`module`, `route`, `model`, `key`; without it every measured line),
//! `step`, `includeIdle` (default true), `shareIdle` (default false). The
//! answer is OpenCost's envelope, `{"code": 200, "data": [{name:
//! Allocation}, ...]}` (one set per step), plus `currency` and `pricing`
//! (`example` when no `cost.pricing` is set: the prices are
//! cost.example.yaml's examples).
//!
//! Costs are not public: a key with the `cost:read` scope is needed, as
//! `Authorization: Bearer` or `X-Api-Key`, checked against the gateway's
//! key store (hashes compared, never raw keys). Where that store is
//! depends on the mode: `gateway.db` in the data dir in `up` (and in
//! `serve` with the gateway and no `database_url`), the shared database
//! in `serve` with `database_url`. A `serve` without the gateway and
//! without a PostgreSQL database has no key store: it measures, but
//! answers 503 (on a SQLite URL the keys would share the modules' file).

use crate::cost_live::{CostError, CostLive, PricingSource};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use console::sources::KeyVerifier;
use cost::{Allocation, IdleOptions, Window};
use kit::problem::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The endpoint's path.
pub const ALLOCATION_PATH: &str = "/api/v1/cost/allocation";
/// The scope a key needs.
pub const READ_SCOPE: &str = "cost:read";
/// Longest key accepted (real keys are far shorter).
const MAX_KEY_BYTES: usize = 512;
/// The shortest step: a bucket.
const MIN_STEP_MINUTES: i64 = 5;

/// What the endpoint needs.
#[derive(Clone)]
pub struct CostApiState {
    pub live: CostLive,
    /// `None`: this process has no key store (a `serve` without the
    /// gateway and without a database).
    pub keys: Option<Arc<dyn KeyVerifier>>,
}

pub fn routes(state: CostApiState) -> kit::http::Routes {
    kit::http::Routes::new()
        .route(ALLOCATION_PATH, get(allocation))
        .with_state(state)
}

/// What to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Module,
    Route,
    Model,
    Key,
}

impl Aggregate {
    pub fn property(self) -> &'static str {
        match self {
            Aggregate::Module => "module",
            Aggregate::Route => "route",
            Aggregate::Model => "model",
            Aggregate::Key => "key",
        }
    }
}

/// The query, as OpenCost names it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AllocationQuery {
    /// The window: `30m`, `24h`, `7d`, `today`, `yesterday`, `week`,
    /// `month`, `lastweek`, `lastmonth`, or two RFC 3339 times or Unix
    /// seconds separated by a comma.
    window: String,
    /// What to group by; without it every measured line.
    aggregate: Option<Aggregate>,
    /// One set per step (`5m` at least, at most the window); without it
    /// one set for the whole window.
    step: Option<String>,
    /// Report idle capacity (default true).
    include_idle: Option<bool>,
    /// Spread idle over the lines by CPU cost instead of an `__idle__`
    /// line (default false).
    share_idle: Option<bool>,
}

/// OpenCost's `/allocation` envelope.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllocationResponse {
    /// 200, as OpenCost's envelope carries it.
    pub code: u16,
    /// One set per step: allocation name -> allocation.
    pub data: Vec<BTreeMap<String, Allocation>>,
    /// Not in OpenCost: the prices' ISO 4217 currency.
    pub currency: String,
    /// Not in OpenCost: `file` (`cost.pricing`) or `example` (the
    /// compiled-in cost.example.yaml's example prices).
    pub pricing: PricingSource,
}

/// The OpenAPI document of the cost API.
#[derive(utoipa::OpenApi)]
#[openapi(paths(allocation), components(schemas(Aggregate)))]
pub struct CostApi;

/// What each module, route, model and key cost (OpenCost's `/allocation`).
///
/// Measured by this process itself; needs a key with the `cost:read` scope.
#[utoipa::path(
    get,
    path = "/api/v1/cost/allocation",
    tag = "platform",
    params(AllocationQuery),
    responses(
        (status = 200, description = "One allocation set per step.", body = AllocationResponse),
        (status = 400, description = "A window, step or aggregate that does not parse, or a step longer than the window (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or one that is not known (`/problems/unauthorized`).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `cost:read` scope (`/problems/forbidden`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store or the cost store does not answer, or this process has no key store (`/problems/unavailable`).", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn allocation(
    State(state): State<CostApiState>,
    headers: HeaderMap,
    query: Result<kit::http::ApiQuery<AllocationQuery>, Problem>,
) -> Response {
    if let Err(refused) = admit(&state, &headers).await {
        return refused;
    }
    let kit::http::ApiQuery(query) = match query {
        Ok(query) => query,
        Err(problem) => return problem.into_response(),
    };
    match answer(&state.live, &query).await {
        Ok(body) => Json(body).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn answer(live: &CostLive, query: &AllocationQuery) -> Result<AllocationResponse, Problem> {
    let window = Window::parse(&query.window, live.now())
        .map_err(|e| Problem::invalid_query("window", format!("`{}`: {}", e.text, e.reason)))?;
    let step = match &query.step {
        None => None,
        Some(text) => {
            let step = cost::window::parse_span(text.trim())
                .map_err(|reason| Problem::invalid_query("step", reason))?;
            if step < chrono::Duration::minutes(MIN_STEP_MINUTES) {
                return Err(Problem::invalid_query(
                    "step",
                    format!("at least {MIN_STEP_MINUTES}m (the measurement's bucket)"),
                ));
            }
            if step > window.end - window.start {
                return Err(Problem::invalid_query("step", "longer than the window"));
            }
            Some(step)
        }
    };
    let idle = IdleOptions {
        include_idle: query.include_idle.unwrap_or(true),
        share_idle: query.share_idle.unwrap_or(false),
    };
    let sets = live
        .allocation(&window, step, idle)
        .await
        .map_err(|error| match error {
            CostError::Window(e) => Problem::invalid_query("step", e.reason),
            CostError::Store(e) => {
                tracing::warn!(error = %e, "cost: reading the buckets");
                Problem::unavailable("the cost store does not answer")
            }
        })?;
    let data = sets
        .into_iter()
        .map(|set| match query.aggregate {
            Some(by) => set.aggregate(by.property()).allocations,
            None => set.allocations,
        })
        .collect();
    Ok(AllocationResponse {
        code: 200,
        data,
        currency: live.currency().to_string(),
        pricing: live.pricing_source(),
    })
}

/// The key a request presents: `Authorization: Bearer` or `X-Api-Key`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let (scheme, value) = auth.to_str().ok()?.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(value.trim());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

async fn admit(state: &CostApiState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(keys) = &state.keys else {
        return Err(Problem::unavailable(
            "this process has no key store to check keys against: run it with the gateway or with database_url",
        )
        .into_response());
    };
    let key = presented(headers).filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES);
    let Some(key) = key else {
        return Err(unauthorized());
    };
    match keys.scopes(key).await {
        Ok(Some(scopes)) if scopes.iter().any(|s| s == READ_SCOPE) => Ok(()),
        Ok(Some(_)) => Err(
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                .with_detail(format!("this key lacks the `{READ_SCOPE}` scope"))
                .into_response(),
        ),
        Ok(None) => Err(unauthorized()),
        Err(error) => {
            tracing::warn!(error = %error, "cost: the key store cannot be read");
            Err(Problem::unavailable("the key store cannot be read now").into_response())
        }
    }
}

fn unauthorized() -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(format!(
            "present an API key with the `{READ_SCOPE}` scope as `Authorization: Bearer` or `X-Api-Key`"
        ))
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"reliable cost\""),
    );
    response
}

/// The key store `GET /api/v1/cost/allocation` checks keys against; see
/// the module doc for where it is in each mode.
pub async fn key_store(
    config: &crate::settings::Config,
    embedded: bool,
    gateway_runs: bool,
) -> anyhow::Result<Option<Arc<dyn KeyVerifier>>> {
    use anyhow::Context as _;
    // A `serve` without the gateway reads the keys only where they live
    // apart from this process's modules: PostgreSQL's schema `gateway`.
    // On a SQLite URL they would share the modules' file, whose
    // `_sqlx_migrations` the key store's migration would refuse.
    if !embedded && !gateway_runs && config.shared_database_url().is_none() {
        return Ok(None);
    }
    let url = config.gateway_keys_url(embedded);
    let store = gateway::keys::connect(&url, &config.gateway.database)
        .await
        .context("opening the gateway's key store for the cost API's access check")?;
    Ok(Some(Arc::new(crate::console_sources::GatewayKeys::new(
        store,
    ))))
}
