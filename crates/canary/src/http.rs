//! The controller's API (`/canary/v1`), which `reliable canary` calls:
//!
//! | method and path | what it does |
//! |---|---|
//! | `POST /canary/v1/runs` | start a run from a spec (YAML body) |
//! | `GET /canary/v1/runs` | the latest runs |
//! | `GET /canary/v1/runs/{id}` | one run (id or target key) and its decisions after `after` |
//! | `POST /canary/v1/runs/{id}/abort` | roll back now |
//! | `POST /canary/v1/runs/{id}/promote` | promote now (manual override, logged) |
//! | `GET /canary/v1/judge` | one stateless judgement, in the shape Argo Rollouts' `web` metric provider reads |
//!
//! A co-located gateway asks for an API key with the `canary:admin` scope.

use crate::controller::{Controller, ControllerError, Decision, RunState};
use crate::judge_api::{self, JudgeQuery};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use kit::Problem;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The prefix of every route.
pub const PREFIX: &str = "/canary/v1";
/// The scope a fronting gateway asks for.
pub const SCOPE: &str = "canary:admin";
/// Largest spec accepted (a spec is a few hundred bytes).
const MAX_SPEC_BYTES: usize = 64 * 1024;

fn api() -> OpenApiRouter<Controller> {
    OpenApiRouter::new()
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(abort_run))
        .routes(routes!(promote_run))
        .routes(routes!(judge))
}

/// The API's routes over `controller`.
pub fn routes(controller: Controller) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(controller)
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

fn problem(error: ControllerError) -> Problem {
    match error {
        ControllerError::Spec(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-canary-spec",
            "The canary spec is invalid",
        )
        .with_invalid_param(
            if e.path.is_empty() {
                "spec".to_string()
            } else {
                e.path.clone()
            },
            format!("line {}: {}", e.line, e.message),
        )
        .with_detail(e.to_string()),
        ControllerError::Target(e) if e.is_transient() => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "target-unreachable",
            "The target could not be reached",
        )
        .with_detail(e.to_string())
        .with_retry_after(1),
        ControllerError::Target(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-target",
            "The target cannot be canaried",
        )
        .with_detail(e.to_string()),
        ControllerError::Metrics(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics-unreadable",
            "The metrics cannot be read",
        )
        .with_detail(e)
        .with_retry_after(5),
        e @ ControllerError::AlreadyRunning(_) => Problem::new(
            StatusCode::CONFLICT,
            "canary-running",
            "A canary already runs on this target",
        )
        .with_detail(e.to_string()),
        e @ ControllerError::NotFound(_) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such canary run")
                .with_detail(e.to_string())
        }
        e @ ControllerError::Finished { .. } => Problem::new(
            StatusCode::CONFLICT,
            "canary-finished",
            "The run already finished",
        )
        .with_detail(e.to_string()),
        ControllerError::Store(e) => e.to_problem("the canary database"),
    }
}

/// A run and its decisions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    run: RunState,
    /// Decisions after `after`, oldest first, each with its sequence number.
    #[schema(value_type = Vec<Object>)]
    decisions: Vec<Numbered>,
}

#[derive(Debug, Serialize)]
struct Numbered {
    seq: i64,
    #[serde(flatten)]
    decision: Decision,
}

/// Start a canary run from a spec (YAML). The target must exist and have
/// a canary side, the metrics must be readable, and no other run may be
/// unfinished on the target.
#[utoipa::path(post, path = "/canary/v1/runs", tag = "canary",
    request_body(content = String, content_type = "application/yaml", description = "The canary spec"),
    responses(
        (status = 201, description = "Started: the first step's weight is set.", body = RunState),
        (status = 409, description = "Another canary runs on the target (`/problems/canary-running`).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The spec is over 64 KiB (`/problems/body-too-large`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The spec is invalid (`/problems/invalid-canary-spec`, with the line and field) or names a target that cannot be canaried (`/problems/unknown-target`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The target or the metrics cannot be reached (`/problems/target-unreachable`, `/problems/metrics-unreadable`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_run(
    State(controller): State<Controller>,
    body: Bytes,
) -> Result<(StatusCode, Json<RunState>), Problem> {
    if body.len() > MAX_SPEC_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The spec is too large",
        )
        .with_detail(format!("at most {MAX_SPEC_BYTES} bytes")));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::invalid_field("spec", "is not UTF-8 text"))?;
    let state = controller.start(text).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(state)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only runs that are running or paused.
    #[serde(default)]
    unfinished: bool,
    /// At most this many, newest first (1 to 200, default 50).
    #[serde(default)]
    limit: Option<u16>,
    /// Only runs on this target (`gateway/links`, `inference/digits`):
    /// how a client finds a run by target, since a gateway refuses an
    /// encoded `/` in a path.
    #[serde(default)]
    target: Option<String>,
}

/// The latest runs, newest first.
#[utoipa::path(get, path = "/canary/v1/runs", tag = "canary", params(ListQuery),
    responses(
        (status = 200, description = "Runs, newest first.", body = Vec<RunState>),
        (status = 400, description = "A bad query parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_runs(
    State(controller): State<Controller>,
    kit::http::ApiQuery(query): kit::http::ApiQuery<ListQuery>,
) -> Result<Json<Vec<RunState>>, Problem> {
    let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
    let runs = controller
        .store()
        .list(query.unfinished, limit)
        .await
        .map_err(|e| problem(e.into()))?;
    Ok(Json(
        runs.into_iter()
            .map(|r| r.state)
            .filter(|r| query.target.as_ref().is_none_or(|t| *t == r.target))
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionsQuery {
    /// Only decisions with a sequence number above this (to follow a run).
    #[serde(default)]
    after: Option<u32>,
}

/// One run (by id, or the unfinished run on a target key such as
/// `gateway/links`) and its decisions.
#[utoipa::path(get, path = "/canary/v1/runs/{id}", tag = "canary",
    params(("id" = String, Path, description = "Run id or target key"), DecisionsQuery),
    responses(
        (status = 200, description = "The run and its decisions.", body = RunDetail),
        (status = 400, description = "A bad query parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run (`/problems/not-found`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_run(
    State(controller): State<Controller>,
    Path(id): Path<String>,
    kit::http::ApiQuery(query): kit::http::ApiQuery<DecisionsQuery>,
) -> Result<Json<RunDetail>, Problem> {
    let run = controller.find(&id).await.map_err(problem)?;
    let decisions = controller
        .store()
        .decisions(&run.state.id, i64::from(query.after.unwrap_or(0)), 1000)
        .await
        .map_err(|e| problem(e.into()))?;
    Ok(Json(RunDetail {
        run: run.state,
        decisions: decisions
            .into_iter()
            .map(|(seq, decision)| Numbered { seq, decision })
            .collect(),
    }))
}

/// Who asked, for the record: the caller's `by` (free text, as a
/// commit author is), else "an operator".
fn who(body: &Bytes) -> String {
    #[derive(Deserialize)]
    struct By {
        by: Option<String>,
    }
    serde_json::from_slice::<By>(body)
        .ok()
        .and_then(|b| b.by)
        .filter(|b| !b.is_empty() && b.len() <= 100 && b.chars().all(|c| !c.is_control()))
        .unwrap_or_else(|| "an operator".to_string())
}

/// Roll the run back now.
#[utoipa::path(post, path = "/canary/v1/runs/{id}/abort", tag = "canary",
    params(("id" = String, Path, description = "Run id or target key")),
    request_body(content = Object, description = "Optional: `{\"by\": \"who\"}`"),
    responses(
        (status = 200, description = "Aborted: the weight is 0.", body = RunState),
        (status = 404, description = "No such run (`/problems/not-found`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run already finished (`/problems/canary-finished`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn abort_run(
    State(controller): State<Controller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RunState>, Problem> {
    let by = who(&body);
    controller.abort(&id, &by).await.map(Json).map_err(problem)
}

/// Promote the run now, whatever the judge says (logged with who asked).
#[utoipa::path(post, path = "/canary/v1/runs/{id}/promote", tag = "canary",
    params(("id" = String, Path, description = "Run id or target key")),
    request_body(content = Object, description = "Optional: `{\"by\": \"who\"}`"),
    responses(
        (status = 200, description = "Promoted.", body = RunState),
        (status = 404, description = "No such run (`/problems/not-found`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run already finished (`/problems/canary-finished`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn promote_run(
    State(controller): State<Controller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RunState>, Problem> {
    let by = who(&body);
    tracing::warn!(run = %id, by = %by, "manual canary promotion requested");
    controller
        .promote(&id, &by)
        .await
        .map(Json)
        .map_err(problem)
}

/// Judge a canary against its baseline over the last `window`, without a
/// run: what an Argo Rollouts AnalysisTemplate's `web` provider calls.
/// `verdict` is `pass`, `fail` or `inconclusive`.
#[utoipa::path(get, path = "/canary/v1/judge", tag = "canary", params(JudgeQuery),
    responses(
        (status = 200, description = "The judgement.", body = judge_api::JudgeAnswer),
        (status = 400, description = "A bad query parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown SLO or a target kind that cannot measure it (`/problems/unknown-slo`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The metrics cannot be read (`/problems/metrics-unreadable`).", body = Problem, content_type = "application/problem+json"),
    ))]
async fn judge(
    State(controller): State<Controller>,
    kit::http::ApiQuery(query): kit::http::ApiQuery<JudgeQuery>,
) -> Result<Json<judge_api::JudgeAnswer>, Problem> {
    judge_api::answer(&controller, query).await.map(Json)
}
