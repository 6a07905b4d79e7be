//! `/alerts`: the live evaluator's firing and pending alerts, and the
//! transitions of the last days (at most 7).

use super::error_page;
use crate::error::PageError;
use crate::{format, layout, query, App};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::problem::Problem;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use slo::alerts::{Alert, AlertState, AlertTransition};
use std::sync::Arc;
use std::time::Duration;

/// The history's reach, and its default.
const MAX_SINCE: Duration = Duration::from_secs(7 * 86_400);
/// Most transitions shown.
const HISTORY_LIMIT: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertParams {
    since: Option<String>,
    refresh: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AlertView {
    #[serde(flatten)]
    pub alert: Alert,
    /// The runbook as a link target, when it is one we link to.
    pub runbook_url: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TransitionView {
    #[serde(flatten)]
    pub transition: AlertTransition,
    pub runbook_url: Option<String>,
}

/// The alerts page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AlertsView {
    pub now_ms: i64,
    /// The history starts here (Unix ms).
    pub since_ms: i64,
    pub firing: Vec<AlertView>,
    pub pending: Vec<AlertView>,
    /// Newest first.
    pub history: Vec<TransitionView>,
}

/// Only a relative `docs/runbooks/*.md` path or an `https://` URL becomes
/// a link; anything else (a `javascript:` URL, a path out of the runbook
/// directory) stays text.
pub(crate) fn runbook_url(runbook: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if let Some(rest) = runbook.strip_prefix("https://") {
        let ok = !rest.is_empty()
            && runbook.len() <= 2_048
            && !runbook.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\')
            });
        return ok.then(|| runbook.to_string());
    }
    let ok = runbook.starts_with("docs/runbooks/")
        && runbook.ends_with(".md")
        && runbook.len() <= 256
        && !runbook.contains("..")
        && runbook.chars().all(plain);
    ok.then(|| runbook.to_string())
}

async fn load(app: &App, params: &AlertParams) -> Result<AlertsView, PageError> {
    query::refresh(params.refresh.as_deref(), app.refresh)?;
    let since = query::since("since", params.since.as_deref(), MAX_SINCE, MAX_SINCE)?;
    let now = app.now();
    let since_at = now - since;
    let view = |alert: Alert| AlertView {
        runbook_url: alert.runbook.as_deref().and_then(runbook_url),
        alert,
    };
    let (firing, pending): (Vec<_>, Vec<_>) = app
        .sources
        .slos
        .alerts()
        .into_iter()
        .partition(|a| a.state == AlertState::Firing);
    let history = app
        .sources
        .slos
        .alert_history(since_at, HISTORY_LIMIT)
        .await
        .map_err(|e| PageError::source("the alert history", e))?;
    Ok(AlertsView {
        now_ms: now.timestamp_millis(),
        since_ms: since_at.timestamp_millis(),
        firing: firing.into_iter().map(view).collect(),
        pending: pending.into_iter().map(view).collect(),
        history: history
            .into_iter()
            .map(|t| TransitionView {
                runbook_url: t.runbook.as_deref().and_then(runbook_url),
                transition: t,
            })
            .collect(),
    })
}

/// Firing and pending alerts, and the transitions since `since`.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "console",
    params(("since" = Option<String>, Query, description = "History span such as 6h or 2d; at most and by default 7d")),
    responses(
        (status = 200, description = "Alerts and their history.", body = AlertsView),
        (status = 400, description = "A bad or out-of-range parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The alert history cannot be read (`/problems/unavailable`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Result<Json<AlertsView>, Problem> {
    let params = query::parse::<AlertParams>(&uri).map_err(|e| e.problem())?;
    load(&app, &params).await.map(Json).map_err(|e| e.problem())
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let params = match query::parse::<AlertParams>(&uri) {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let result = match query::refresh(params.refresh.as_deref(), app.refresh) {
        Ok(refresh) => load(&app, &params).await.map(|v| (v, refresh)),
        Err(e) => Err(e),
    };
    match result {
        Ok((view, refresh)) => {
            layout::page("Alerts", "/alerts", refresh, render(&view)).into_response()
        }
        Err(e) => error_page(e),
    }
}

fn runbook(text: Option<&str>, url: Option<&str>) -> Markup {
    html! {
        @match (text, url) {
            (_, Some(url)) => a href=(url) { (url) },
            (Some(text), None) => span.muted { (text) },
            (None, None) => span.muted { "none" },
        }
    }
}

fn table(title: &str, alerts: &[AlertView], now_ms: i64) -> Markup {
    html! {
        div.card {
            h2 { (title) " (" (alerts.len()) ")" }
            @if alerts.is_empty() {
                p.muted { "None." }
            } @else {
                table {
                    thead { tr { th { "alert" } th { "severity" } th { "SLO" } th { "since" } th { "runbook" } } }
                    tbody {
                        @for v in alerts {
                            @let a = &v.alert;
                            tr {
                                td { (a.name) br; span.muted { (a.summary) } }
                                td { (a.severity.as_str()) }
                                td { a href=(format!("/slos/{}", a.slo_id)) { (a.slo_id) } }
                                td {
                                    (format::time_ms(a.firing_since_ms.unwrap_or(a.since_ms)))
                                    br; span.muted { (format::ago(now_ms, a.firing_since_ms.unwrap_or(a.since_ms))) }
                                }
                                td { (runbook(a.runbook.as_deref(), v.runbook_url.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn render(view: &AlertsView) -> Markup {
    html! {
        h1 { "Alerts" }
        (table("Firing", &view.firing, view.now_ms))
        (table("Pending", &view.pending, view.now_ms))
        div.card {
            h2 { "History since " (format::time_ms(view.since_ms)) }
            @if view.history.is_empty() {
                p.muted { "No alert started or stopped firing." }
            } @else {
                table {
                    thead { tr { th { "when" } th { "alert" } th { "event" } th { "severity" } th { "runbook" } } }
                    tbody {
                        @for v in &view.history {
                            @let t = &v.transition;
                            tr {
                                td { (format::time_ms(t.at_ms)) }
                                td { (t.name) br; span.muted { (t.service) " · " (t.slo_id) } }
                                td {
                                    @if t.firing { span.badge.bad { "fired" } } @else { span.badge.ok { "resolved" } }
                                }
                                td { (t.severity.as_str()) }
                                td { (runbook(t.runbook.as_deref(), v.runbook_url.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    }
}
