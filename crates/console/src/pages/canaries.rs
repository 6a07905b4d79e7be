//! `/canaries`: the running canaries with their step, weight, the judge's
//! latest verdict and its evidence, read from the canary module's own API
//! (`GET /canary/v1/runs?unfinished=true`, then `/canary/v1/runs/{id}`),
//! so the page shows what a script would see.

use super::{error_page, not_running, RefreshOnly};
use crate::sources::ModuleApi;
use crate::{format, layout, query, App};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::problem::Problem;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most runs shown (the canary API's own cap is 200).
const MAX_RUNS: usize = 20;

/// A run, as the canary API describes it (the fields shown).
#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct Run {
    pub id: String,
    pub name: String,
    pub target: String,
    /// `running` or `paused` here.
    pub phase: String,
    /// Index of the current step.
    pub step: u64,
    /// The canary's share of traffic (0 to 1).
    pub weight: f64,
    pub started_at: String,
    pub step_started_at: String,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct MetricEvidence {
    pub slo: String,
    pub kind: String,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    pub p_value: Option<f64>,
    pub effect: Option<f64>,
    pub n_baseline: u64,
    pub n_canary: u64,
    pub evidence: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct Overall {
    pub verdict: String,
    pub score: Option<f64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct Judgement {
    pub metrics: Vec<MetricEvidence>,
    pub overall: Overall,
    /// Set when the canary alone burns an SLO fast enough to page.
    pub guard: Option<String>,
}

/// The judge's latest look.
#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct Decision {
    pub at: String,
    pub step: u64,
    pub weight: f64,
    /// `hold`, `advance`, `promote`, `rollback` or `pause`.
    pub action: String,
    pub summary: String,
    pub judgement: Option<Judgement>,
}

#[derive(Debug, Deserialize)]
struct RunDetail {
    #[serde(default)]
    decisions: Vec<Decision>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CanaryRun {
    pub run: Run,
    pub latest: Option<Decision>,
}

/// The canaries page: `{"running": false}` without the module.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CanariesView {
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<CanaryRun>>,
    /// Why the runs could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

async fn read(api: &dyn ModuleApi) -> Result<Vec<CanaryRun>, String> {
    let list = api
        .get_json(&format!("/canary/v1/runs?unfinished=true&limit={MAX_RUNS}"))
        .await
        .map_err(|e| e.to_string())?;
    let runs: Vec<Run> = serde_json::from_value(list)
        .map_err(|e| format!("the canary API answered an unexpected shape: {e}"))?;
    let mut out = Vec::new();
    for run in runs.into_iter().take(MAX_RUNS) {
        // Ids are the controller's own; one that is not a plain name is
        // not put into a path.
        if !query::is_name(&run.id) {
            out.push(CanaryRun { run, latest: None });
            continue;
        }
        let latest = match api.get_json(&format!("/canary/v1/runs/{}", run.id)).await {
            Ok(detail) => serde_json::from_value::<RunDetail>(detail)
                .ok()
                .and_then(|d| d.decisions.into_iter().last()),
            Err(e) => {
                tracing::warn!(error = %e, run = %run.id, "console: a canary run cannot be read");
                None
            }
        };
        out.push(CanaryRun { run, latest });
    }
    Ok(out)
}

async fn load(app: &App) -> CanariesView {
    let Some(api) = &app.sources.canaries else {
        return CanariesView {
            running: false,
            runs: None,
            error: None,
        };
    };
    match read(api.as_ref()).await {
        Ok(runs) => CanariesView {
            running: true,
            runs: Some(runs),
            error: None,
        },
        Err(error) => CanariesView {
            running: true,
            runs: None,
            error: Some(error),
        },
    }
}

/// Running canaries with their step, weight and the judge's latest look.
#[utoipa::path(get, path = "/api/v1/canaries", tag = "console",
    responses(
        (status = 200, description = "The running canaries, or `{\"running\": false}` without the canary module.", body = CanariesView),
        (status = 400, description = "An unknown parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Result<Json<CanariesView>, Problem> {
    query::parse::<RefreshOnly>(&uri).map_err(|e| e.problem())?;
    Ok(Json(load(&app).await))
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(e) = query::parse::<RefreshOnly>(&uri) {
        return error_page(e);
    }
    let view = load(&app).await;
    if !view.running {
        return not_running("Canaries", "/canaries", "canary").into_response();
    }
    layout::page("Canaries", "/canaries", None, render(&view)).into_response()
}

fn verdict_class(verdict: &str) -> &'static str {
    match verdict {
        "pass" => "badge ok",
        "fail" => "badge bad",
        _ => "badge warn",
    }
}

fn render(view: &CanariesView) -> Markup {
    html! {
        h1 { "Canaries" }
        @if let Some(error) = &view.error {
            div.notice { "The canary API cannot be read: " (error) }
        }
        @if let Some(runs) = &view.runs {
            @if runs.is_empty() { p.muted { "No canary is running." } }
            @for c in runs {
                div.card {
                    h2 { (c.run.name) " " span.muted { "on " (c.run.target) } }
                    div.kv {
                        span { "phase" } span { (c.run.phase) }
                        span { "step" } span { (c.run.step + 1) }
                        span { "canary weight" } span.big { (format::percent(Some(c.run.weight))) }
                        span { "started" } span { (c.run.started_at) }
                        @if let Some(reason) = &c.run.reason { span { "reason" } span { (reason) } }
                    }
                    @match &c.latest {
                        None => p.muted { "The judge has not looked yet." },
                        Some(d) => {
                            p { "Latest look " (d.at) ": " strong { (d.action) } " — " (d.summary) }
                            @if let Some(j) = &d.judgement {
                                p {
                                    "Verdict " span class=(verdict_class(&j.overall.verdict)) { (j.overall.verdict) }
                                    " score " (format::number(j.overall.score))
                                    @if let Some(guard) = &j.guard { " · " span.bad { (guard) } }
                                }
                                table {
                                    thead { tr { th { "SLO" } th { "verdict" } th { "p" } th { "effect" } th { "n (base/canary)" } th { "evidence" } } }
                                    tbody {
                                        @for m in &j.metrics {
                                            tr {
                                                td { (m.slo) br; span.muted { (m.kind) } }
                                                td { span class=(verdict_class(&m.verdict)) { (m.verdict) } }
                                                td { (format::number(m.p_value)) }
                                                td { (format::number(m.effect)) }
                                                td { (m.n_baseline) " / " (m.n_canary) }
                                                td { (m.evidence) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
