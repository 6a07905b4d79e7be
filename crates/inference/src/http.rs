//! The Open Inference Protocol v2 REST endpoints, the repository
//! extension, and Reliable's additions (model info, serving policy,
//! feedback), with their OpenAPI document.
//!
//! Errors are problem+json with the protocol's `error` member, so both
//! RFC 9457 clients and KServe/Triton clients read them. Bad input is
//! always a 4xx naming what is wrong; only a model failing on valid input
//! is a 500.

use crate::manifest::{Manifest, TensorSpec, Training};
use crate::models::{LoadedVersion, Model};
use crate::names::{ModelName, Version};
use crate::policy::ServingPolicy;
use crate::service::{InferError, Pin, Service};
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use kit::cpu_cost::CostTag;
use kit::Problem;
use oip::{
    InferRequest, ModelMetadata, RepositoryIndexRequest, RepositoryModel, ServerMetadata,
    TensorMetadata,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Pins the version of an unversioned request; also on every infer
/// response, naming the version that answered.
pub const VERSION_HEADER: &str = "x-model-version";

/// The repository prefix: admin operations (a fronting gateway asks for
/// the `models:admin` scope).
pub const REPOSITORY_PREFIX: &str = "/v2/repository";

fn api() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .routes(routes!(server_metadata))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(model_metadata))
        .routes(routes!(version_metadata))
        .routes(routes!(model_ready))
        .routes(routes!(version_ready))
        .routes(routes!(model_info))
        .routes(routes!(version_info))
        .routes(routes!(infer))
        .routes(routes!(infer_version))
        .routes(routes!(feedback))
        .routes(routes!(repository_index))
        .routes(routes!(load))
        .routes(routes!(unload))
        .routes(routes!(get_policy, put_policy))
}

pub(crate) fn routes(service: Arc<Service>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(service)
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    doc.info.title = "Reliable inference (Open Inference Protocol v2)".to_string();
    kit::openapi::add_link(
        &mut doc,
        "infer",
        "200",
        "feedback",
        &[("name", "$response.body#/model_name")],
    );
    doc
}

/// A problem whose body also carries the protocol's `error` member.
fn problem(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(status, kind, title)
        .with_detail(detail)
        .with_error_member()
}

/// The problem for an infer failure; a runtime failure is logged, not sent.
fn infer_problem(error: InferError) -> Problem {
    match &error {
        InferError::BadName(_) => problem(
            StatusCode::BAD_REQUEST,
            "invalid-name",
            "Invalid model name or version",
            error.to_string(),
        ),
        InferError::UnknownModel(_) => problem(
            StatusCode::NOT_FOUND,
            "model-not-found",
            "Model not found",
            error.to_string(),
        ),
        InferError::UnknownVersion(..) => problem(
            StatusCode::NOT_FOUND,
            "version-not-found",
            "Model version not found",
            error.to_string(),
        ),
        InferError::BadRequest(_) => problem(
            StatusCode::BAD_REQUEST,
            "invalid-input",
            "Invalid inference request",
            error.to_string(),
        ),
        InferError::QueueFull(..) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue-full",
            "Model busy",
            error.to_string(),
        )
        .with_retry_after(1),
        InferError::NotReady(..) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "model-not-ready",
            "Model not ready",
            error.to_string(),
        )
        .with_retry_after(1),
        InferError::Runtime(..) => {
            tracing::error!(error = %error, "inference failed");
            Problem::internal().with_error_member()
        }
    }
}

/// A JSON body: `application/json` or no content type (curl's habit); any
/// parse failure is a 400 with the parser's message.
fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .map(|m| {
                    let m = m.trim().to_ascii_lowercase();
                    m == "application/json"
                        || (m.starts_with("application/") && m.ends_with("+json"))
                })
                .unwrap_or(false)
        })
        .unwrap_or(true);
    if !json {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Expected a JSON body",
            "send `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        // 400 either way, as the protocol's clients expect; the kinds are
        // the platform's usual ones.
        let (kind, title) = match e.classify() {
            Category::Data => ("invalid-body", "The request body has the wrong shape"),
            Category::Syntax | Category::Eof | Category::Io => {
                ("malformed-json", "The request body is not valid JSON")
            }
        };
        problem(StatusCode::BAD_REQUEST, kind, title, e.to_string())
    })
}

fn err_response(p: Problem) -> Response {
    p.into_response()
}

/// The version that answers an unversioned metadata or info request: the
/// policy's default, else the highest loaded.
fn default_version(service: &Service, model: &Model) -> Option<Arc<LoadedVersion>> {
    let policy = service.policies.get(model.name.as_str());
    let version = policy.resolve_default(&model.version_numbers())?;
    model.versions.get(&Version::new(version).ok()?).cloned()
}

/// A version pinned in the path: 400 when not a number, 404 when not loaded.
fn version_of(service: &Service, model: &Model, raw: &str) -> Result<Arc<LoadedVersion>, Problem> {
    service.pick(model, Pin::Path(raw)).map_err(infer_problem)
}

/// A model name from the path, for operations that need not find it loaded.
fn model_name(raw: &str) -> Result<ModelName, Problem> {
    ModelName::parse(raw).map_err(|e| infer_problem(InferError::BadName(e.to_string())))
}

fn loaded(service: &Service, name: &str) -> Result<Arc<Model>, Problem> {
    service.model(name).map_err(infer_problem)
}

// ---- server ----

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "server",
    responses((status = 200, description = "Who serves, and the protocol extensions served.", body = ServerMetadata)))]
async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "reliable".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        extensions: vec!["model_repository".to_string()],
    })
}

/// The protocol's liveness probe.
#[utoipa::path(get, path = "/v2/health/live", tag = "server",
    responses((status = 200, description = "The server is live.")))]
async fn live() -> StatusCode {
    StatusCode::OK
}

/// The protocol's readiness probe: ready when every model loaded at start
/// is loaded (see also `/readyz`).
#[utoipa::path(get, path = "/v2/health/ready", tag = "server",
    responses(
        (status = 200, description = "Ready."),
        (status = 503, description = "Not ready: stopping, or a model loaded at start is not loaded. Problem types: `/problems/not-ready`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ready(State(service): State<Arc<Service>>) -> Result<StatusCode, Problem> {
    if service.ready() {
        Ok(StatusCode::OK)
    } else {
        let missing = service.missing_models();
        let detail = if missing.is_empty() {
            "the server is stopping".to_string()
        } else {
            format!("not loaded: {}", missing.join(", "))
        };
        Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            detail,
        ))
    }
}

// ---- model metadata and readiness ----

fn metadata(model: &Model, version: &LoadedVersion) -> ModelMetadata {
    let mut parameters = oip::Parameters::new();
    parameters.insert("sha256".into(), version.sha256.clone().into());
    parameters.insert("loaded_at".into(), version.loaded_at.to_rfc3339().into());
    parameters.insert("max_batch_size".into(), version.max_batch_size.into());
    if let Some(training) = &version.manifest.training {
        if let Ok(metrics) = serde_json::to_value(&training.metrics) {
            parameters.insert("training_metrics".into(), metrics);
        }
    }
    ModelMetadata {
        name: model.name.to_string(),
        versions: model.versions.keys().map(|v| v.to_string()).collect(),
        platform: "onnx".to_string(),
        inputs: version
            .runtime
            .inputs
            .iter()
            .map(TensorMetadata::from)
            .collect(),
        outputs: version
            .runtime
            .outputs
            .iter()
            .map(TensorMetadata::from)
            .collect(),
        parameters: Some(parameters),
    }
}

/// Model metadata (of the default version).
#[utoipa::path(get, path = "/v2/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "Platform, versions, inputs and outputs; `parameters` carries sha256, loaded_at and the training metrics.", body = ModelMetadata),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_metadata(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, Problem> {
    let model = loaded(&service, &name)?;
    let version = default_version(&service, &model)
        .ok_or_else(|| infer_problem(InferError::UnknownModel(name)))?;
    Ok(Json(metadata(&model, &version)))
}

/// Model metadata of one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits"), ("version" = String, Path, description = "Version number", example = "2")),
    responses(
        (status = 200, description = "Platform, versions, inputs and outputs.", body = ModelMetadata),
        (status = 400, description = "Invalid name or version. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`, `/problems/version-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn version_metadata(
    State(service): State<Arc<Service>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, Problem> {
    let model = loaded(&service, &name)?;
    let version = version_of(&service, &model, &version)?;
    Ok(Json(metadata(&model, &version)))
}

/// Whether the model is ready.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "Ready."),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_ready(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    loaded(&service, &name)?;
    Ok(StatusCode::OK)
}

/// Whether one version is ready.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits"), ("version" = String, Path, description = "Version number", example = "2")),
    responses(
        (status = 200, description = "Ready."),
        (status = 400, description = "Invalid name or version. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`, `/problems/version-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn version_ready(
    State(service): State<Arc<Service>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let model = loaded(&service, &name)?;
    version_of(&service, &model, &version)?;
    Ok(StatusCode::OK)
}

/// What the repository and the training run say about a version: the
/// "model info" that MLflow-backed platforms serve.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelInfo {
    name: String,
    version: String,
    platform: String,
    description: String,
    /// sha256 of `model.onnx`.
    sha256: String,
    loaded_at: chrono::DateTime<chrono::Utc>,
    max_batch_size: usize,
    max_batch_delay_ms: f64,
    labels: Vec<String>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// The MLflow run: params, metrics, dataset.
    training: Option<Training>,
    /// Whether a drift reference ships with this version.
    drift_reference: bool,
}

fn info(version: &LoadedVersion) -> ModelInfo {
    let Manifest {
        description,
        labels,
        training,
        ..
    } = version.manifest.clone();
    ModelInfo {
        name: version.name.to_string(),
        version: version.version_label.clone(),
        platform: "onnx".to_string(),
        description,
        sha256: version.sha256.clone(),
        loaded_at: version.loaded_at,
        max_batch_size: version.max_batch_size,
        max_batch_delay_ms: version.max_batch_delay.as_secs_f64() * 1000.0,
        labels,
        inputs: version.runtime.inputs.clone(),
        outputs: version.runtime.outputs.clone(),
        training,
        drift_reference: version.drift.is_some(),
    }
}

/// Model info (of the default version).
#[utoipa::path(get, path = "/v2/models/{name}/info", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "Description, file digest, load time, batching, labels, signature and training run.", body = ModelInfo),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_info(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<ModelInfo>, Problem> {
    let model = loaded(&service, &name)?;
    let version = default_version(&service, &model)
        .ok_or_else(|| infer_problem(InferError::UnknownModel(name)))?;
    Ok(Json(info(&version)))
}

/// Model info of one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/info", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "digits"), ("version" = String, Path, description = "Version number", example = "2")),
    responses(
        (status = 200, description = "Description, file digest, load time, batching, labels, signature and training run.", body = ModelInfo),
        (status = 400, description = "Invalid name or version. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`, `/problems/version-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn version_info(
    State(service): State<Arc<Service>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelInfo>, Problem> {
    let model = loaded(&service, &name)?;
    let version = version_of(&service, &model, &version)?;
    Ok(Json(info(&version)))
}

// ---- inference ----

fn answered(response: oip::InferResponse) -> Response {
    let version = HeaderValue::from_str(&response.model_version).ok();
    let mut http = Json(response).into_response();
    if let Some(version) = version {
        http.headers_mut()
            .insert(HeaderName::from_static(VERSION_HEADER), version);
    }
    http
}

async fn run_infer(
    service: Arc<Service>,
    route: Option<MatchedPath>,
    name: &str,
    path_version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let model = match loaded(&service, name) {
        Ok(model) => model,
        Err(p) => return err_response(p),
    };
    let request: InferRequest = match parse_body(headers, body) {
        Ok(request) => request,
        Err(p) => return err_response(p),
    };
    let policy = service.policies.get(model.name.as_str());
    let sticky = policy
        .sticky_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .map(|v| v.as_bytes());
    let header_pin = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let pin = match (path_version, header_pin) {
        (Some(v), _) => Pin::Path(v),
        (None, Some(v)) => Pin::Header(v),
        (None, None) => Pin::Policy { sticky },
    };
    let version = match service.pick(&model, pin) {
        Ok(version) => version,
        Err(e) => return err_response(infer_problem(e)),
    };
    // The request's own CPU (observe layer) and its batch's (pool thread)
    // go to the version that ran it.
    let tag = CostTag {
        model: version.cost_label.clone(),
    };
    let route = route.map(|r| Arc::<str>::from(r.as_str()));
    let mut response = match service.infer(&model, version, request, route).await {
        Ok(response) => answered(response),
        Err(e) => err_response(infer_problem(e)),
    };
    response.extensions_mut().insert(tag);
    response
}

const INFER_ERRORS: &str = "Problem types: `/problems/malformed-json` (not JSON), `/problems/invalid-body` (not a request), `/problems/invalid-input` (wrong datatype, shape, data length, unknown or missing input, batch over the limit), `/problems/invalid-name` (a version that is not a number).";

/// Run the model on the inputs.
///
/// The serving policy picks the version (default, canary split, sticky by
/// header) unless `X-Model-Version` pins it. The response's
/// `model_version` and `X-Model-Version` say which version answered; its
/// `id` (the request's, or a generated one) is the key for feedback.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "inference",
    params(
        ("name" = String, Path, description = "Model name", example = "digits"),
        ("x-model-version" = Option<String>, Header, description = "Pin a version (a number)"),
    ),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The outputs.", body = oip::InferResponse,
            headers(("x-model-version" = String, description = "The version that answered"))),
        (status = 400, description = INFER_ERRORS, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Model or pinned version not loaded. Problem types: `/problems/model-not-found`, `/problems/version-not-found`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The version's queue is full, or it was unloaded (retry). Problem types: `/problems/queue-full`, `/problems/model-not-ready`.", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds"))),
    ))]
async fn infer(
    State(service): State<Arc<Service>>,
    route: Option<MatchedPath>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_infer(service, route, &name, None, &headers, &body).await
}

/// Run one version of the model on the inputs.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "inference",
    params(("name" = String, Path, description = "Model name", example = "digits"), ("version" = String, Path, description = "Version number", example = "2")),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The outputs.", body = oip::InferResponse,
            headers(("x-model-version" = String, description = "The version that answered"))),
        (status = 400, description = INFER_ERRORS, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Model or version not loaded. Problem types: `/problems/model-not-found`, `/problems/version-not-found`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The version's queue is full, or it was unloaded (retry). Problem types: `/problems/queue-full`, `/problems/model-not-ready`.", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds"))),
    ))]
async fn infer_version(
    State(service): State<Arc<Service>>,
    route: Option<MatchedPath>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_infer(service, route, &name, Some(&version), &headers, &body).await
}

/// The true label of an earlier prediction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Feedback {
    /// The `id` the infer response returned.
    id: String,
    /// The true label (as the model's labels spell it; a number is read as
    /// its decimal form).
    #[schema(value_type = String)]
    label: serde_json::Value,
}

/// What the feedback was about.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeedbackResult {
    id: String,
    model_version: String,
    predicted: String,
    correct: bool,
}

/// Tell the server the true label of an earlier prediction (live accuracy).
///
/// Counts `inference_feedback_total{outcome}` per version, the live
/// accuracy SLI. Predictions are remembered for a bounded number of
/// requests (`inference.prediction_memory`).
#[utoipa::path(post, path = "/v2/models/{name}/feedback", tag = "inference",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    request_body(content = Feedback, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded.", body = FeedbackResult),
        (status = 400, description = "Not a feedback body. Problem types: `/problems/invalid-body`, `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No remembered prediction with this id for this model. Problem types: `/problems/prediction-not-found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Feedback was already given for this id. Problem types: `/problems/feedback-given`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn feedback(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<FeedbackResult>, Problem> {
    let name = model_name(&name)?;
    let feedback: Feedback = parse_body(&headers, &body)?;
    let label = match &feedback.label {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "The request body is not a valid request",
                "label must be a string, a number or a boolean",
            ))
        }
    };
    use crate::feedback::FeedbackError;
    match service.memory.feedback(name.as_str(), &feedback.id, &label) {
        Ok(evaluated) => Ok(Json(FeedbackResult {
            id: feedback.id,
            model_version: evaluated.version.to_string(),
            predicted: evaluated.predicted,
            correct: evaluated.correct,
        })),
        Err(FeedbackError::AlreadyEvaluated) => Err(problem(
            StatusCode::CONFLICT,
            "feedback-given",
            "Feedback already given",
            "feedback for this id was already recorded",
        )),
        Err(e) => Err(problem(
            StatusCode::NOT_FOUND,
            "prediction-not-found",
            "Prediction not found",
            format!("{e} (model {name})"),
        )),
    }
}

// ---- repository extension (admin) ----

/// List the repository: every version on disk with its state.
#[utoipa::path(post, path = "/v2/repository/index", tag = "repository",
    request_body(content = Option<RepositoryIndexRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Versions with state `READY`, `UNAVAILABLE` or `FAILED` (with the load error in `reason`).", body = Vec<RepositoryModel>),
        (status = 400, description = "Not a valid body. Problem types: `/problems/invalid-body`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn repository_index(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<RepositoryModel>>, Problem> {
    let request: RepositoryIndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RepositoryIndexRequest::default()
    } else {
        parse_body(&headers, &body)?
    };
    let mut index = service.models.index().await.map_err(|e| {
        tracing::error!(error = %e, "the model repository cannot be listed");
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the model repository cannot be listed",
        )
    })?;
    if request.ready == Some(true) {
        index.retain(|m| m.state == "READY");
    }
    Ok(Json(index))
}

/// The versions now loaded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Loaded {
    name: String,
    versions: Vec<String>,
}

/// Load (or reload) a model: every version in its directory.
///
/// Versions whose file did not change keep serving as they are; requests
/// in flight are never failed by a load.
#[utoipa::path(post, path = "/v2/repository/models/{name}/load", tag = "repository",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "Loaded; versions that failed are `FAILED` in the index.", body = Loaded),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the repository. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No version could be loaded (corrupt file, bad model.toml...). Problem types: `/problems/load-failed`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn load(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<Loaded>, Problem> {
    let name = model_name(&name)?;
    use crate::models::LoadError;
    use crate::store::RepositoryError;
    match service.models.load(&name, REPOSITORY_ACTOR).await {
        Ok(versions) => Ok(Json(Loaded {
            name: name.to_string(),
            versions: versions.iter().map(u64::to_string).collect(),
        })),
        Err(LoadError::Store(RepositoryError::NoSuchModel(_))) => Err(problem(
            StatusCode::NOT_FOUND,
            "model-not-found",
            "Model not found",
            format!("model {name} is not in the repository"),
        )),
        Err(e @ LoadError::Failed { .. }) => Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "load-failed",
            "The model could not be loaded",
            e.to_string(),
        )),
        Err(LoadError::Store(e)) => {
            tracing::error!(model = %name, error = %e, "the model repository cannot be read");
            Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the model repository cannot be read",
            ))
        }
    }
}

/// Who loads and unloads through the repository API, as the change
/// timeline names it (the key was checked by the gateway in front).
const REPOSITORY_ACTOR: &str = "api";

/// Stop serving a model; requests in flight finish.
#[utoipa::path(post, path = "/v2/repository/models/{name}/unload", tag = "repository",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "Unloaded."),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unload(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    let name = model_name(&name)?;
    service
        .models
        .unload(&name, REPOSITORY_ACTOR)
        .await
        .map_err(|e| {
            problem(
                StatusCode::NOT_FOUND,
                "model-not-found",
                "Model not found",
                e.to_string(),
            )
        })?;
    Ok(StatusCode::OK)
}

/// A model's serving policy.
#[utoipa::path(get, path = "/v2/repository/models/{name}/policy", tag = "repository",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    responses(
        (status = 200, description = "The policy (defaults when none was set).", body = ServingPolicy),
        (status = 400, description = "Invalid name. Problem types: `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_policy(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<ServingPolicy>, Problem> {
    let model = loaded(&service, &name)?;
    Ok(Json(ServingPolicy::clone(
        &service.policies.get(model.name.as_str()),
    )))
}

/// Change a model's serving policy: default version, canary split, sticky
/// header, shadow. Logged and counted (`inference_policy_changes_total`).
#[utoipa::path(put, path = "/v2/repository/models/{name}/policy", tag = "repository",
    params(("name" = String, Path, description = "Model name", example = "digits")),
    request_body(content = ServingPolicy, content_type = "application/json"),
    responses(
        (status = 200, description = "The policy now in force.", body = ServingPolicy),
        (status = 400, description = "Not a policy, or one that cannot work with the loaded versions. Problem types: `/problems/invalid-body`, `/problems/invalid-policy`, `/problems/invalid-name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not loaded. Problem types: `/problems/model-not-found`.", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_policy(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ServingPolicy>, Problem> {
    let model = loaded(&service, &name)?;
    let policy: ServingPolicy = parse_body(&headers, &body)?;
    service
        .policies
        .set(
            model.name.as_str(),
            policy.clone(),
            &model.version_numbers(),
        )
        .map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "invalid-policy",
                "The policy cannot work",
                e.to_string(),
            )
        })?;
    Ok(Json(policy))
}
