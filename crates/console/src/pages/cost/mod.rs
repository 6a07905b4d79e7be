//! `/cost`: what the platform cost over a window and who spent it: cost
//! per module as stacked bars over time, the modules, the top routes and
//! models with their cost per 1,000 requests, LLM spend per API key
//! against its budget, the idle line and the 30-day projection.
//!
//! The figures come from the [`CostSource`](crate::sources::CostSource)
//! as they are; this page sorts them, keeps the top lines and derives the
//! shares and costs per 1,000 requests, so the JSON twin and the page
//! agree. The SLO page reads the same report for the cost per 1,000
//! requests beside each SLO ([`module_costs`]).

mod render;

use super::error_page;
use crate::error::PageError;
use crate::query::{self, Window};
use crate::sources::{CostLine, CostQuery, CostReport, CostStep, KeySpend};
use crate::{format, layout, App};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::problem::Problem;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Routes and models listed; the JSON says how many there were.
const TOP: usize = 10;
/// Bars drawn at most (the newest), whatever the source sends.
const MAX_STEPS: usize = 400;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostParams {
    window: Option<String>,
    refresh: Option<String>,
}

/// A module, route or model with its derived figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct PricedLine {
    #[serde(flatten)]
    pub line: CostLine,
    /// Its share of the total (idle included); `None` when the total is 0.
    pub share: Option<f64>,
    /// `None` without requests (a background task).
    pub cost_per_1k_requests: Option<f64>,
}

/// The cost over the window, sorted, most expensive first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CostSummary {
    pub currency: String,
    /// The prices are the compiled-in examples, not the operator's.
    pub example_prices: bool,
    /// Cost per module in each step, oldest first.
    pub steps: Vec<CostStep>,
    pub modules: Vec<PricedLine>,
    /// The top routes (at most 10).
    pub routes: Vec<PricedLine>,
    /// How many routes the source reported.
    pub route_count: usize,
    /// The top models (at most 10).
    pub models: Vec<PricedLine>,
    pub model_count: usize,
    /// Over budget first, then by projected month.
    pub keys: Vec<KeySpend>,
    pub idle: f64,
    pub total: f64,
    pub projected_month: f64,
}

/// The cost page: `cost` absent when this process does not measure cost
/// (`measured: false`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CostView {
    pub measured: bool,
    /// `1h`, `6h`, `24h` (default), `7d` or `30d`.
    pub window: String,
    pub since_ms: i64,
    pub now_ms: i64,
    /// The width of one bar, in seconds.
    pub step_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
}

/// One bar per step: 12 to 30 bars whatever the window.
fn step(window: Window) -> Duration {
    let minutes = match window {
        Window::H1 => 5,
        Window::H6 => 30,
        Window::H24 => 60,
        Window::D7 => 6 * 60,
        Window::D30 => 24 * 60,
    };
    Duration::from_secs(minutes * 60)
}

fn cost_query(app: &App, window: Window) -> CostQuery {
    let end = app.now();
    CostQuery {
        window: window.as_str().into(),
        start: end - chrono::Duration::milliseconds(window.millis()),
        end,
        step: step(window),
    }
}

fn priced(mut lines: Vec<CostLine>, total: f64) -> Vec<PricedLine> {
    lines.sort_by(|a, b| b.cost.total_cmp(&a.cost).then_with(|| a.name.cmp(&b.name)));
    lines
        .into_iter()
        .map(|line| PricedLine {
            share: (total > 0.0).then(|| line.cost / total),
            cost_per_1k_requests: format::per_1k(line.cost, line.requests),
            line,
        })
        .collect()
}

fn summary(report: CostReport) -> CostSummary {
    let total = report.total;
    let (route_count, model_count) = (report.routes.len(), report.models.len());
    let mut steps = report.steps;
    steps.sort_by_key(|s| s.start_ms);
    let steps = steps.split_off(steps.len().saturating_sub(MAX_STEPS));
    let mut keys = report.keys;
    keys.sort_by(|a, b| {
        b.over_budget
            .cmp(&a.over_budget)
            .then_with(|| b.projected_month.total_cmp(&a.projected_month))
            .then_with(|| a.key.cmp(&b.key))
    });
    let top = |lines| {
        let mut lines = priced(lines, total);
        lines.truncate(TOP);
        lines
    };
    CostSummary {
        currency: report.currency,
        example_prices: report.example_prices,
        steps,
        modules: priced(report.modules, total),
        routes: top(report.routes),
        route_count,
        models: top(report.models),
        model_count,
        keys,
        idle: report.idle,
        total,
        projected_month: report.projected_month,
    }
}

async fn load(app: &App, params: &CostParams) -> Result<CostView, PageError> {
    let window = Window::parse(params.window.as_deref())?;
    let query = cost_query(app, window);
    let cost = match &app.sources.cost {
        None => None,
        Some(source) => Some(summary(
            source
                .cost(&query)
                .await
                .map_err(|e| PageError::source("the cost", e))?,
        )),
    };
    Ok(CostView {
        measured: cost.is_some(),
        window: window.as_str().into(),
        since_ms: query.start.timestamp_millis(),
        now_ms: query.end.timestamp_millis(),
        step_seconds: query.step.as_secs(),
        cost,
    })
}

/// Per module, its cost per 1,000 requests over `window`, and the
/// currency; `None` without a cost source or when it fails (logged: the
/// SLO page shows without it).
pub(crate) async fn module_costs(
    app: &App,
    window: Window,
) -> Option<(String, HashMap<String, Option<f64>>)> {
    let source = app.sources.cost.as_ref()?;
    match source.cost(&cost_query(app, window)).await {
        Ok(report) => Some((
            report.currency,
            report
                .modules
                .into_iter()
                .map(|m| (m.name, format::per_1k(m.cost, m.requests)))
                .collect(),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "console: the cost cannot be read for the SLO page");
            None
        }
    }
}

/// The cost per module over time, modules, top routes and models, LLM
/// spend per key, idle and the 30-day projection.
#[utoipa::path(get, path = "/api/v1/cost", tag = "console",
    params(("window" = Option<String>, Query, description = "1h, 6h, 24h (default), 7d or 30d")),
    responses(
        (status = 200, description = "The cost over the window, or `measured: false` when this process does not measure cost.", body = CostView),
        (status = 400, description = "An unknown window or parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cost cannot be read now (`/problems/unavailable`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(State(app): State<Arc<App>>, uri: Uri) -> Result<Json<CostView>, Problem> {
    let params = query::parse::<CostParams>(&uri).map_err(|e| e.problem())?;
    reload(&app, &params).map_err(|e| e.problem())?;
    load(&app, &params).await.map(Json).map_err(|e| e.problem())
}

/// The page reloads only when `?refresh=N` asks (cost moves slowly).
fn reload(app: &App, params: &CostParams) -> Result<Option<u64>, PageError> {
    match params.refresh.as_deref() {
        None => Ok(None),
        Some(text) => query::refresh(Some(text), app.refresh),
    }
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let params = match query::parse::<CostParams>(&uri) {
        Ok(params) => params,
        Err(e) => return error_page(e),
    };
    let refresh = match reload(&app, &params) {
        Ok(refresh) => refresh,
        Err(e) => return error_page(e),
    };
    // Validated above (digits only), so safe to repeat in links.
    let keep = params
        .refresh
        .as_deref()
        .map(|r| format!("&refresh={r}"))
        .unwrap_or_default();
    match load(&app, &params).await {
        Ok(view) => {
            layout::page("Cost", "/cost", refresh, render::page(&view, &keep)).into_response()
        }
        Err(e) => error_page(e),
    }
}
