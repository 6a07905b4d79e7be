//! `GET /canary/v1/judge`: one judgement without a run, for a controller
//! that is not ours (Argo Rollouts) to step the weights and ask us only
//! whether the canary is worse.
//!
//! Argo's `web` metric provider calls a URL and reads the JSON answer
//! with `jsonPath`; an AnalysisTemplate then says
//! `successCondition: result.verdict == "pass"` and
//! `failureCondition: result.verdict == "fail"` (anything else is
//! inconclusive, which Argo pauses on). `deploy/base/` has ready ones.

use crate::controller::judging;
use crate::controller::Controller;
use crate::spec::{
    self, CanaryPlan, FailSafePolicy, InconclusivePolicy, JudgeSettings, RestartPolicy, Step,
    TargetSection,
};
use crate::target::Split;
use axum::http::StatusCode;
use kit::Problem;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use utoipa::IntoParams;

/// What to judge.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JudgeQuery {
    /// `gateway/ROUTE`, `inference/MODEL`, or `pods/SERVICE` (Argo
    /// Rollouts: the sides are pod template hashes).
    target: String,
    /// The baseline side: a gateway pool or a model version.
    baseline: String,
    /// The canary side: a gateway pool or a model version.
    canary: String,
    /// SLO ids, comma-separated (`gateway-availability,gateway-latency`).
    slo: String,
    /// How far back to compare (`5m`); Prometheus only: in process, the
    /// comparison covers the process's lifetime.
    #[serde(default)]
    window: Option<String>,
}

/// The judgement, flat for JSONPath (`{$.verdict}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JudgeAnswer {
    /// `pass`, `fail` or `inconclusive`.
    verdict: &'static str,
    /// Kayenta's score, 0 to 100 (none while a side lacks samples).
    score: Option<f64>,
    /// Why, when the SLO guard failed it.
    guard: Option<String>,
    /// Each SLO's verdict, p-value, effect, samples and evidence.
    #[schema(value_type = Vec<Object>)]
    metrics: Vec<judging::MetricEvidence>,
    /// Where the numbers came from.
    source: String,
}

fn bad(name: &str, reason: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "A query parameter is invalid",
    )
    .with_invalid_param(name, reason)
}

fn side_name(name: &str, value: &str) -> Result<String, Problem> {
    if value.is_empty()
        || value.len() > 200
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    {
        return Err(bad(name, "must be a pool name or a model version"));
    }
    Ok(value.to_string())
}

/// Judges the query with the controller's SLOs and metrics source.
pub async fn answer(controller: &Controller, query: JudgeQuery) -> Result<JudgeAnswer, Problem> {
    let baseline = side_name("baseline", &query.baseline)?;
    let canary = side_name("canary", &query.canary)?;
    let mut pods: Option<String> = None;
    let target = match query.target.split_once('/') {
        Some(("pods", service)) if !service.is_empty() => {
            pods = Some(side_name("target", service)?);
            TargetSection::Gateway {
                route: String::new(),
                admin_url: None,
                admin_key_env: None,
            }
        }
        Some(("gateway", route)) if !route.is_empty() => TargetSection::Gateway {
            route: side_name("target", route)?,
            admin_url: None,
            admin_key_env: None,
        },
        Some(("inference", model)) if !model.is_empty() && !model.contains('/') => {
            let version = |name: &str, v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(name, "must be a model version number"))
            };
            TargetSection::Inference {
                model: side_name("target", model)?,
                baseline_version: version("baseline", &baseline)?,
                canary_version: version("canary", &canary)?,
                url: None,
                admin_key_env: None,
            }
        }
        _ => {
            return Err(bad(
                "target",
                "must be gateway/ROUTE, inference/MODEL or pods/SERVICE",
            ))
        }
    };
    let window = match query.window.as_deref() {
        None => Duration::from_secs(300),
        Some(text) => yamlspec::parse_duration(text)
            .ok()
            .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(7 * 86_400))
            .ok_or_else(|| bad("window", "must be a duration from 1s to 7d, e.g. 5m"))?,
    };
    let mut metrics = Vec::new();
    for id in query
        .slo
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let metric = spec::metric_for(id, None, controller.slos()).map_err(|(_, message)| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-slo",
                "An SLO cannot be judged",
            )
            .with_invalid_param("slo", message)
        })?;
        if metrics
            .iter()
            .all(|m: &spec::MetricPlan| m.slo != metric.slo)
        {
            metrics.push(metric);
        }
    }
    if metrics.is_empty() || metrics.len() > 20 {
        return Err(bad("slo", "name 1 to 20 SLO ids, comma-separated"));
    }
    let plan = CanaryPlan {
        name: "judge".to_string(),
        target,
        steps: vec![Step {
            weight: 100.0,
            dwell: window,
        }],
        metrics,
        // One look: no repeated-looks correction.
        judge: JudgeSettings {
            interval: window,
            ..JudgeSettings::default()
        },
        max_duration: window,
        on_inconclusive: InconclusivePolicy::Pause,
        on_metrics_error: FailSafePolicy::Pause,
        on_restart: RestartPolicy::Rollback,
        prometheus: None,
    };
    let split = Split {
        baseline,
        canary,
        percent: 0.0,
    };
    let measured = match &pods {
        Some(service) => crate::target::Measured::Pods(service),
        None => crate::target::Measured::of(&plan.target),
    };
    let queries =
        judging::queries_for(measured, &query.target, &plan.metrics, &split).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-slo",
                "An SLO cannot be judged on this target",
            )
            .with_detail(e.to_string())
        })?;
    let source = controller.source_for(&plan);
    let now = SystemTime::now();
    let since = if source.is_in_process() {
        SystemTime::UNIX_EPOCH
    } else {
        now - window
    };
    let readings = source
        .read(&queries.flat(), since, now)
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics-unreadable",
                "The metrics cannot be read",
            )
            .with_detail(e.to_string())
            .with_retry_after(5)
        })?;
    let judgement = judging::judge(&plan, &queries, &readings).map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics-unreadable",
            "The metrics cannot be judged",
        )
        .with_detail(e)
    })?;
    let verdict = if judgement.guard.is_some() {
        "fail"
    } else {
        judgement.overall.verdict.as_str()
    };
    Ok(JudgeAnswer {
        verdict,
        score: judgement.overall.score,
        guard: judgement.guard,
        source: source.describe(),
        metrics: judgement.metrics,
    })
}
