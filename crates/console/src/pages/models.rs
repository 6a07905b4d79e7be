//! `/models`: every model version with its traffic share, p99 latency,
//! drift score and live accuracy. The versions and shares come from the
//! inference module's own API (the repository index, each model's serving
//! policy); latency, drift and accuracy from the process's metrics
//! (`inference_request_duration_seconds`, `inference_drift_score`,
//! `inference_feedback_total`), which no JSON endpoint serves.

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
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most models read (each costs one policy call).
const MAX_MODELS: usize = 50;

#[derive(Debug, Deserialize)]
struct IndexEntry {
    name: String,
    version: String,
    state: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Split {
    version: u64,
    percent: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Policy {
    default_version: Option<u64>,
    canary: Option<Split>,
    shadow: Option<Split>,
}

/// One model version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelVersion {
    pub model: String,
    pub version: String,
    /// `READY`, `UNAVAILABLE` or `FAILED`.
    pub state: String,
    /// Why it is not ready.
    pub reason: String,
    /// Share of unpinned requests it answers (0 to 1).
    pub traffic_share: Option<f64>,
    /// Share of requests mirrored to it (answers recorded, not returned).
    pub shadow_share: Option<f64>,
    /// Requests answered since the process started.
    pub requests: Option<f64>,
    /// 99th percentile latency since the process started, in seconds.
    pub p99_seconds: Option<f64>,
    /// The largest PSI over its features and predictions.
    pub drift_psi: Option<f64>,
    /// Correct share of the predictions that got feedback.
    pub live_accuracy: Option<f64>,
}

/// The models page: `{"running": false}` without the module.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelsView {
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<ModelVersion>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Per (model, version): what the metrics say.
#[derive(Debug, Default)]
struct Figures {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    psi: Option<f64>,
    correct: f64,
    judged: f64,
}

fn figures(text: &str) -> HashMap<(String, String), Figures> {
    let mut out: HashMap<(String, String), Figures> = HashMap::new();
    for line in text.lines() {
        let Some(sample) = slo::exposition::parse_line(line) else {
            continue;
        };
        let label = |name: &str| {
            sample
                .labels
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let (Some(model), Some(version)) = (label("model"), label("version")) else {
            continue;
        };
        let f = || Figures::default();
        match sample.name {
            "inference_request_duration_seconds_bucket" => {
                let le = match label("le").as_deref() {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
                if !le.is_nan() {
                    out.entry((model, version))
                        .or_insert_with(f)
                        .buckets
                        .push((le, sample.value));
                }
            }
            "inference_request_duration_seconds_count" => {
                out.entry((model, version)).or_insert_with(f).count = Some(sample.value);
            }
            "inference_drift_score" if label("statistic").as_deref() == Some("psi") => {
                let e = out.entry((model, version)).or_insert_with(f);
                e.psi = Some(e.psi.map_or(sample.value, |p| p.max(sample.value)));
            }
            "inference_feedback_total" => {
                let e = out.entry((model, version)).or_insert_with(f);
                e.judged += sample.value;
                if label("outcome").as_deref() == Some("correct") {
                    e.correct += sample.value;
                }
            }
            _ => {}
        }
    }
    out
}

/// The 99th percentile from cumulative buckets, interpolated within the
/// bucket it falls in (as Prometheus' `histogram_quantile` does).
fn p99(buckets: &mut [(f64, f64)]) -> Option<f64> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = 0.99 * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in buckets.iter() {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let within = (count - previous.1).max(f64::MIN_POSITIVE);
            return Some(previous.0 + (le - previous.0) * (rank - previous.1) / within);
        }
        previous = (le, count);
    }
    None
}

async fn read(api: &dyn ModuleApi, metrics: Option<String>) -> Result<Vec<ModelVersion>, String> {
    let index = api
        .post_json("/v2/repository/index", serde_json::json!({}))
        .await
        .map_err(|e| e.to_string())?;
    let index: Vec<IndexEntry> = serde_json::from_value(index)
        .map_err(|e| format!("the repository index has an unexpected shape: {e}"))?;
    let mut by_model: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
    for entry in index {
        by_model.entry(entry.name.clone()).or_default().push(entry);
    }
    let mut figures = metrics.as_deref().map(figures).unwrap_or_default();
    let mut out = Vec::new();
    for (name, mut versions) in by_model.into_iter().take(MAX_MODELS) {
        versions.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
        let ready: Vec<u64> = versions
            .iter()
            .filter(|v| v.state == "READY")
            .filter_map(|v| v.version.parse().ok())
            .collect();
        let policy = if ready.is_empty() || !query::is_name(&name) {
            None
        } else {
            match api
                .get_json(&format!("/v2/repository/models/{name}/policy"))
                .await
            {
                Ok(p) => serde_json::from_value::<Policy>(p).ok(),
                Err(e) => {
                    tracing::warn!(error = %e, model = %name, "console: a serving policy cannot be read");
                    None
                }
            }
        };
        let default = policy
            .as_ref()
            .and_then(|p| p.default_version)
            .or_else(|| ready.iter().copied().max());
        for v in versions {
            let number = v.version.parse::<u64>().ok();
            let canary = policy.as_ref().and_then(|p| p.canary.as_ref());
            let traffic_share = policy.as_ref().map(|_| {
                let canary_share = canary.map_or(0.0, |c| c.percent / 100.0);
                match number {
                    _ if v.state != "READY" => 0.0,
                    Some(n) if canary.is_some_and(|c| c.version == n) => canary_share,
                    Some(n) if Some(n) == default => 1.0 - canary_share,
                    _ => 0.0,
                }
            });
            let shadow_share = policy
                .as_ref()
                .and_then(|p| p.shadow.as_ref())
                .filter(|s| Some(s.version) == number)
                .map(|s| s.percent / 100.0);
            let mut f = figures
                .remove(&(name.clone(), v.version.clone()))
                .unwrap_or_default();
            out.push(ModelVersion {
                model: name.clone(),
                version: v.version,
                state: v.state,
                reason: v.reason,
                traffic_share,
                shadow_share,
                requests: f.count,
                p99_seconds: p99(&mut f.buckets),
                drift_psi: f.psi,
                live_accuracy: (f.judged > 0.0).then(|| f.correct / f.judged),
            });
        }
    }
    Ok(out)
}

async fn load(app: &App) -> ModelsView {
    let Some(api) = &app.sources.models else {
        return ModelsView {
            running: false,
            models: None,
            error: None,
        };
    };
    let metrics = app.sources.platform.metrics_text().await;
    match read(api.as_ref(), metrics).await {
        Ok(models) => ModelsView {
            running: true,
            models: Some(models),
            error: None,
        },
        Err(error) => ModelsView {
            running: true,
            models: None,
            error: Some(error),
        },
    }
}

/// Model versions with traffic share, latency, drift and live accuracy.
#[utoipa::path(get, path = "/api/v1/models", tag = "console",
    responses(
        (status = 200, description = "The model versions, or `{\"running\": false}` without the inference module.", body = ModelsView),
        (status = 400, description = "An unknown parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Result<Json<ModelsView>, Problem> {
    query::parse::<RefreshOnly>(&uri).map_err(|e| e.problem())?;
    Ok(Json(load(&app).await))
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(e) = query::parse::<RefreshOnly>(&uri) {
        return error_page(e);
    }
    let view = load(&app).await;
    if !view.running {
        return not_running("Models", "/models", "inference").into_response();
    }
    layout::page("Models", "/models", None, render(&view)).into_response()
}

fn render(view: &ModelsView) -> Markup {
    html! {
        h1 { "Models" }
        @if let Some(error) = &view.error {
            div.notice { "The inference API cannot be read: " (error) }
        }
        @if let Some(models) = &view.models {
            div.card {
                @if models.is_empty() { p.muted { "No model in the repository." } }
                @else {
                    table {
                        thead { tr { th { "model" } th { "version" } th { "state" } th { "traffic" } th { "p99" } th { "drift (PSI)" } th { "live accuracy" } } }
                        tbody {
                            @for m in models {
                                tr {
                                    td { (m.model) }
                                    td { (m.version) }
                                    td {
                                        @if m.state == "READY" { span.badge.ok { "ready" } }
                                        @else { span.badge.warn { (m.state) } br; span.muted { (m.reason) } }
                                    }
                                    td {
                                        (format::percent(m.traffic_share))
                                        @if let Some(s) = m.shadow_share { br; span.muted { "mirror " (format::percent(Some(s))) } }
                                    }
                                    td { (format::latency(m.p99_seconds)) }
                                    td { (format::number(m.drift_psi)) }
                                    td { (format::percent(m.live_accuracy)) }
                                }
                            }
                        }
                    }
                    p.muted { "Latency since the process started; drift is the largest PSI over the features (above 0.2 drifts); accuracy over the predictions that got feedback." }
                }
            }
        }
    }
}
