//! `/slos` and `/slos/{id}`: per SLO its SLI, objective, budget left with
//! the policy band it puts the service in, burn rates, alerts, and the SLI
//! and budget burn-down over the chosen window.

use super::error_page;
use crate::error::PageError;
use crate::query::{self, Window};
use crate::{format, layout, svg, App};
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::problem::Problem;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use slo::alerts::{Alert, AlertState, SloPoint};
use slo::policy::Policy;
use slo::status::{human_duration, SloStatus};
use std::sync::Arc;

/// Chart points per SLO on the list, and on an SLO's own page.
const LIST_POINTS: usize = 240;
const DETAIL_POINTS: usize = 720;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SloParams {
    window: Option<String>,
    refresh: Option<String>,
}

/// The policy band a remaining budget puts a service in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Band {
    /// The rule's decision (`freeze`, `reliability-first`, `caution`), or
    /// `ship features` above every rule, or `no data`.
    pub decision: String,
    /// The rule's threshold (budget share); `None` above every rule.
    pub below: Option<f64>,
    pub reason: String,
}

/// One SLO's card.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SloCard {
    #[serde(flatten)]
    pub status: SloStatus,
    /// `None` when no error-budget policy is loaded.
    pub band: Option<Band>,
    /// Its pending and firing alerts.
    pub alerts: Vec<Alert>,
    /// SLI and budget over the window, oldest first.
    pub series: Vec<SloPoint>,
    /// What a request of its service cost over the window; `None` when
    /// the process does not measure cost.
    pub cost: Option<SloCost>,
}

/// The cost of the SLO's service, beside the SLO.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SloCost {
    pub currency: String,
    /// Cost per 1,000 requests over the window; `None` when the service
    /// answered none.
    pub per_1k_requests: Option<f64>,
}

/// The SLO page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SlosView {
    /// `1h`, `6h`, `24h`, `7d` or `30d`.
    pub window: String,
    /// The charts start here (Unix ms).
    pub since_ms: i64,
    pub now_ms: i64,
    /// Where the numbers come from (`local` or a Prometheus URL).
    pub source: String,
    /// The policy's rules, lowest threshold first.
    pub policy: Vec<Band>,
    pub slos: Vec<SloCard>,
}

fn band(policy: Option<&Policy>, remaining: Option<f64>) -> Option<Band> {
    let policy = policy?;
    let Some(remaining) = remaining.filter(|r| r.is_finite()) else {
        return Some(Band {
            decision: "no data".into(),
            below: None,
            reason: "no SLI data, so the remaining budget is unknown".into(),
        });
    };
    Some(match policy.rule_for(remaining) {
        Some(rule) => Band {
            decision: rule.decision.clone(),
            below: Some(rule.below),
            reason: rule.reason.clone(),
        },
        None => Band {
            decision: "ship features".into(),
            below: None,
            reason: "budget above every threshold of the error-budget policy".into(),
        },
    })
}

/// `bad` for the policy's strictest band, `warn` for the others, `ok`
/// above them all.
fn band_class(policy: Option<&Policy>, band: &Band) -> &'static str {
    let strictest = policy.and_then(|p| p.rules().first()).map(|r| r.below);
    match band.below {
        Some(b) if Some(b) == strictest => "bad",
        Some(_) => "warn",
        None if band.decision == "no data" => "muted",
        None => "ok",
    }
}

async fn load(app: &App, params: &SloParams, only: Option<&str>) -> Result<SlosView, PageError> {
    query::refresh(params.refresh.as_deref(), app.refresh)?;
    let window = Window::parse(params.window.as_deref())?;
    if let Some(id) = only {
        if !query::is_name(id) {
            return Err(PageError::BadId(
                "an SLO id is 1 to 128 letters, digits, `.`, `_`, `-` or `:`".into(),
            ));
        }
    }
    let now_ms = app.now().timestamp_millis();
    let since_ms = now_ms - window.millis();
    let report = app.sources.slos.report();
    let alerts = app.sources.slos.alerts();
    let policy = app.sources.policy.as_ref();
    let costs = super::cost::module_costs(app, window).await;
    let cost_of = |service: &str| {
        costs.as_ref().map(|(currency, modules)| SloCost {
            currency: currency.clone(),
            per_1k_requests: modules.get(service).copied().flatten(),
        })
    };
    let points = if only.is_some() {
        DETAIL_POINTS
    } else {
        LIST_POINTS
    };
    let slos: Vec<SloCard> = report
        .slos
        .into_iter()
        .filter(|s| only.is_none_or(|id| s.id == id))
        .map(|status| SloCard {
            band: band(policy, status.budget_remaining),
            alerts: alerts
                .iter()
                .filter(|a| a.slo_id == status.id)
                .cloned()
                .collect(),
            series: app.sources.slos.series(&status.id, since_ms, points),
            cost: cost_of(&status.service),
            status,
        })
        .collect();
    if let (Some(id), true) = (only, slos.is_empty()) {
        return Err(PageError::UnknownSlo(id.to_string()));
    }
    Ok(SlosView {
        window: window.as_str().into(),
        since_ms,
        now_ms,
        source: report.source,
        policy: policy
            .map(|p| {
                p.rules()
                    .iter()
                    .map(|r| Band {
                        decision: r.decision.clone(),
                        below: Some(r.below),
                        reason: r.reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        slos,
    })
}

/// Every SLO's card.
#[utoipa::path(get, path = "/api/v1/slos", tag = "console",
    params(("window" = Option<String>, Query, description = "Chart span: 1h, 6h, 24h (default), 7d or 30d")),
    responses(
        (status = 200, description = "Every SLO with its band, alerts and series.", body = SlosView),
        (status = 400, description = "An unknown window or parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api_list(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Result<Json<SlosView>, Problem> {
    let params = query::parse::<SloParams>(&uri).map_err(|e| e.problem())?;
    load(&app, &params, None)
        .await
        .map(Json)
        .map_err(|e| e.problem())
}

/// One SLO's card.
#[utoipa::path(get, path = "/api/v1/slos/{id}", tag = "console",
    params(
        ("id" = String, Path, description = "SLO id"),
        ("window" = Option<String>, Query, description = "Chart span: 1h, 6h, 24h (default), 7d or 30d"),
    ),
    responses(
        (status = 200, description = "The SLO (the `slos` list holds exactly one).", body = SlosView),
        (status = 400, description = "A malformed id (`/problems/invalid-id`) or bad parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such SLO (`/problems/not-found`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<SlosView>, Problem> {
    let params = query::parse::<SloParams>(&uri).map_err(|e| e.problem())?;
    load(&app, &params, Some(&id))
        .await
        .map(Json)
        .map_err(|e| e.problem())
}

pub(crate) async fn page_list(State(app): State<Arc<App>>, uri: Uri) -> Response {
    html_page(&app, &uri, None).await
}

pub(crate) async fn page_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    html_page(&app, &uri, Some(&id)).await
}

async fn html_page(app: &App, uri: &Uri, only: Option<&str>) -> Response {
    let result = async {
        let params = query::parse::<SloParams>(uri)?;
        let refresh = query::refresh(params.refresh.as_deref(), app.refresh)?;
        // Validated above (digits only), so safe to repeat in links.
        let keep = params
            .refresh
            .as_deref()
            .map(|r| format!("&refresh={r}"))
            .unwrap_or_default();
        Ok::<_, PageError>((load(app, &params, only).await?, refresh, keep))
    }
    .await;
    match result {
        Ok((view, refresh, keep)) => {
            let title = only.map_or_else(|| "SLOs".to_string(), |id| format!("SLO {id}"));
            layout::page(
                &title,
                "/slos",
                refresh,
                render(app, &view, uri.path(), &keep),
            )
            .into_response()
        }
        Err(e) => error_page(e),
    }
}

/// `keep`: the query to carry over in the window links (`&refresh=0`).
fn render(app: &App, view: &SlosView, path: &str, keep: &str) -> Markup {
    let policy = app.sources.policy.as_ref();
    html! {
        h1 { "SLOs" }
        p {
            "Window: "
            @for w in Window::ALL {
                @if w.as_str() == view.window { strong { (w.as_str()) } " " }
                @else { a href=(format!("{path}?window={}{keep}", w.as_str())) { (w.as_str()) } " " }
            }
            span.muted { " · source " (view.source) }
        }
        @if view.slos.is_empty() { p.muted { "No SLO is evaluated." } }
        div.grid {
            @for card in &view.slos { (render_card(policy, card, &view.window)) }
        }
        @if !view.policy.is_empty() {
            div.card {
                h2 { "Error-budget policy" }
                table {
                    thead { tr { th { "budget left below" } th { "decision" } th { "why" } } }
                    tbody {
                        @for b in &view.policy {
                            tr { td { (format::percent(b.below)) } td { (b.decision) } td { (b.reason) } }
                        }
                        tr { td { "above all" } td { "ship features" } td.muted { "" } }
                    }
                }
            }
        }
    }
}

fn render_card(policy: Option<&Policy>, card: &SloCard, window: &str) -> Markup {
    let s = &card.status;
    let sli: Vec<(i64, Option<f64>)> = card.series.iter().map(|p| (p.at_ms, p.sli)).collect();
    let budget: Vec<(i64, Option<f64>)> = card
        .series
        .iter()
        .map(|p| (p.at_ms, p.budget_remaining))
        .collect();
    html! {
        div.card {
            h2 { a href=(format!("/slos/{}", s.id)) { (s.name) } }
            p.muted { (s.service) " · " (s.id) }
            div.kv {
                span { "SLI over " (human_duration(s.period_seconds as f64)) }
                span.big { (format::percent(s.sli)) }
                span { "objective" } span { (format::percent(Some(s.objective))) }
                span { "budget left" }
                span {
                    (format::percent(s.budget_remaining))
                    @if let Some(t) = s.budget_remaining_seconds.filter(|t| t.is_finite()) {
                        " (" (human_duration(t)) ")"
                    }
                }
                @if let Some(cost) = &card.cost {
                    span { "cost per 1,000 requests" }
                    span { (format::money(cost.per_1k_requests, &cost.currency)) " " span.muted { (s.service) ", last " (window) } }
                }
                @if let Some(band) = &card.band {
                    span { "policy" }
                    span { span class=(format!("badge {}", band_class(policy, band))) { (band.decision) } " " span.muted { (band.reason) } }
                }
            }
            table {
                thead { tr { th { "alert window" } th { "burn rate" } } }
                tbody {
                    @for b in &s.burn_rates { tr { td { (b.window) } td { (format::burn(b.burn_rate)) } } }
                }
            }
            @if card.alerts.is_empty() {
                p.muted { "No alert pending or firing." }
            } @else {
                ul {
                    @for a in &card.alerts {
                        li {
                            @match a.state {
                                AlertState::Firing => span.badge.bad { "firing" },
                                AlertState::Pending => span.badge.warn { "pending" },
                            }
                            " " (a.name) " (" (a.severity.as_str()) ") since " (format::time_ms(a.since_ms))
                        }
                    }
                }
            }
            h2 { "SLI, last " (window) }
            (svg::line_chart("SLI", &sli, Some(s.objective), format::percent))
            h2 { "Budget left, last " (window) }
            (svg::line_chart("Budget left", &budget, Some(0.0), format::percent))
        }
    }
}
