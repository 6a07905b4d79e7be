//! The status page's routes on the public listener:
//!
//! | route | what |
//! |---|---|
//! | `GET /status` | the HTML page |
//! | `GET /api/v1/status` | the same report as JSON |
//! | `POST /api/v1/status/incidents` | a new incident note (`status:write`) |
//! | `PATCH /api/v1/status/incidents/{id}` | change a note (`status:write`) |
//!
//! Static-friendly: the report is rendered at most once per
//! `status.render_every` (requests in between share it), answered with an
//! `ETag` (304 on a matching `If-None-Match`) and `Cache-Control: public,
//! max-age=30`, and carries no cookie or per-user content, so a CDN or
//! reverse proxy can serve it. A write renders the next request afresh.
//!
//! Who may write is not this crate's business: the binary passes a
//! [`WriteAuthorizer`] (built on the gateway's key store), which answers
//! with the caller's name (the change event's actor).

use crate::config::StatusConfig;
use crate::incident::{IncidentError, IncidentUpdate, NewIncident};
use crate::runner::Results;
use crate::store::{day_of, ProbeStore, RETENTION_DAYS};
use crate::{page, report};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use kit::changes::ChangeRecorder;
use kit::http::ApiJson;
use kit::{Clock, Problem};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The scope a key needs to write incident notes.
pub const WRITE_SCOPE: &str = "status:write";
/// `Cache-Control` of the page and its JSON.
pub const CACHE_CONTROL: &str = "public, max-age=30";
/// Incidents shown (newest first).
pub const MAX_INCIDENTS_SHOWN: u32 = 50;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no API key presented")]
    Missing,
    #[error("the API key is malformed, unknown or revoked")]
    Rejected,
    #[error("the API key lacks the `{0}` scope")]
    Forbidden(String),
    #[error("the key store is unavailable")]
    Unavailable,
}

/// Decides whether a request may write incident notes.
#[async_trait]
pub trait WriteAuthorizer: Send + Sync + 'static {
    /// The caller's name if `headers` carry a key with `scope`.
    async fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<String, AuthFailure>;
}

/// The page's state: its inputs and the cached rendering.
#[derive(Clone)]
pub struct StatusPage {
    inner: Arc<Inner>,
}

struct Inner {
    config: StatusConfig,
    store: ProbeStore,
    results: Results,
    clock: Arc<dyn Clock>,
    authorizer: Arc<dyn WriteAuthorizer>,
    changes: ChangeRecorder,
    cache: tokio::sync::Mutex<Option<Arc<Rendered>>>,
}

/// One rendering of the report, both ways.
struct Rendered {
    at: DateTime<Utc>,
    html: Bytes,
    html_etag: String,
    json: Bytes,
    json_etag: String,
}

impl StatusPage {
    pub fn new(
        config: StatusConfig,
        store: ProbeStore,
        results: Results,
        clock: Arc<dyn Clock>,
        authorizer: Arc<dyn WriteAuthorizer>,
        changes: ChangeRecorder,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                results,
                clock,
                authorizer,
                changes,
                cache: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn routes(&self) -> kit::http::Routes {
        kit::http::Routes::new()
            .route("/status", get(html_page))
            .route("/api/v1/status", get(json_report))
            .route("/api/v1/status/incidents", post(create_incident))
            .route("/api/v1/status/incidents/{id}", patch(update_incident))
            .with_state(self.clone())
    }

    /// The current rendering: the cached one while younger than
    /// `render_every`, else a new one (a stale one if the store fails).
    async fn rendered(&self) -> Result<Arc<Rendered>, Problem> {
        let mut cache = self.inner.cache.lock().await;
        let now = self.inner.clock.now();
        let max_age = chrono::Duration::from_std(self.inner.config.render_every)
            .unwrap_or(chrono::Duration::zero());
        if let Some(cached) = cache.as_ref() {
            if now.signed_duration_since(cached.at) < max_age && now >= cached.at {
                return Ok(cached.clone());
            }
        }
        match self.render(now).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *cache = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => {
                tracing::warn!(error = %e, "status report not rendered");
                cache.clone().ok_or_else(|| e.to_problem("probes"))
            }
        }
    }

    async fn render(&self, now: DateTime<Utc>) -> Result<Rendered, kit::storage::StoreError> {
        let since = day_of(now) - (RETENTION_DAYS - 1);
        let totals = self.inner.store.days_since(since).await?;
        let incidents = self.inner.store.incidents(MAX_INCIDENTS_SHOWN).await?;
        let report = report::build(
            &self.inner.config.title,
            now,
            self.inner.results.probes(),
            &self.inner.results.latest(),
            &totals,
            incidents,
        );
        let html = Bytes::from(page::render(&report));
        let json = Bytes::from(serde_json::to_vec(&report).unwrap_or_default());
        Ok(Rendered {
            at: now,
            html_etag: etag(&html),
            html,
            json_etag: etag(&json),
            json,
        })
    }

    async fn invalidate(&self) {
        *self.inner.cache.lock().await = None;
    }
}

fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// 304 when `If-None-Match` names `tag` (or `*`), else the body.
fn cached_response(headers: &HeaderMap, tag: &str, content_type: &str, body: Bytes) -> Response {
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*");
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// The public status page (HTML).
#[utoipa::path(get, path = "/status", tag = "status",
    responses(
        (status = 200, description = "The page: every component's state, 90 days of uptime, incident notes.", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    ))]
async fn html_page(State(page): State<StatusPage>, headers: HeaderMap) -> Response {
    match page.rendered().await {
        Ok(r) => {
            let mut response = cached_response(
                &headers,
                &r.html_etag,
                "text/html; charset=utf-8",
                r.html.clone(),
            );
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(crate::page::content_security_policy()),
            );
            response
                .headers_mut()
                .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        }
        Err(problem) => problem.into_response(),
    }
}

/// The status page's data: components, 90 days of uptime, incidents.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses(
        (status = 200, description = "The report the page renders.", body = crate::report::Report),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    ))]
async fn json_report(State(page): State<StatusPage>, headers: HeaderMap) -> Response {
    match page.rendered().await {
        Ok(r) => cached_response(&headers, &r.json_etag, "application/json", r.json.clone()),
        Err(problem) => problem.into_response(),
    }
}

/// A new incident note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// A component of the status page.
    component: String,
    /// At most 200 characters.
    title: String,
    /// At most 5,000 characters; shown as text.
    body: Option<String>,
    /// `investigating` (default), `identified`, `monitoring` or `resolved`.
    status: Option<String>,
}

/// What changes in a note; absent fields stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    title: Option<String>,
    body: Option<String>,
    status: Option<String>,
}

/// The OpenAPI document of the status page and its incident API.
#[derive(utoipa::OpenApi)]
#[openapi(paths(html_page, json_report, create_incident, update_incident))]
pub struct StatusApi;

async fn authorize(page: &StatusPage, headers: &HeaderMap) -> Result<String, Problem> {
    page.inner
        .authorizer
        .authorize(headers, WRITE_SCOPE)
        .await
        .map_err(|failure| match failure {
            AuthFailure::Missing => Problem::new(
                StatusCode::UNAUTHORIZED,
                "api-key-missing",
                "API key required",
            )
            .with_detail("send a key as `Authorization: Bearer rlk_...` or `X-Api-Key`"),
            AuthFailure::Rejected => Problem::new(
                StatusCode::UNAUTHORIZED,
                "api-key-rejected",
                "Invalid API key",
            ),
            AuthFailure::Forbidden(scope) => {
                Problem::new(StatusCode::FORBIDDEN, "api-key-scope", "Insufficient scope")
                    .with_detail(format!("this needs a key with the `{scope}` scope"))
            }
            AuthFailure::Unavailable => Problem::unavailable("the key store is unavailable"),
        })
}

fn invalid(e: IncidentError) -> Problem {
    Problem::invalid_field(e.field, e.reason)
}

fn record(page: &StatusPage, actor: &str, incident: &crate::incident::Incident, verb: &str) {
    page.inner
        .changes
        .record(incident.change_event(actor, verb));
}

/// Opens an incident note (a key with the `status:write` scope).
#[utoipa::path(post, path = "/api/v1/status/incidents", tag = "status",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = crate::incident::Incident),
        (status = 422, description = "A field is invalid. Problem types: `/problems/invalid-field`.",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_incident(
    State(page): State<StatusPage>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, Problem> {
    let actor = authorize(&page, &headers).await?;
    let ApiJson(body) = ApiJson::<CreateBody>::from_request(request, &()).await?;
    let new = NewIncident::parse(
        &body.component,
        &body.title,
        body.body.as_deref(),
        body.status.as_deref(),
    )
    .map_err(invalid)?;
    let now = page.inner.clock.now();
    let incident = page
        .inner
        .store
        .create_incident(&new, &actor, now)
        .await
        .map_err(|e| e.to_problem("probes"))?;
    record(&page, &actor, &incident, "opened");
    page.invalidate().await;
    let location = format!("/api/v1/status/incidents/{}", incident.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(incident),
    )
        .into_response())
}

/// Changes an incident note's status, title or body (a key with the
/// `status:write` scope).
#[utoipa::path(patch, path = "/api/v1/status/incidents/{id}", tag = "status",
    params(("id" = i64, Path, description = "The note's id")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "The note as changed.", body = crate::incident::Incident),
        (status = 404, description = "No such note. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid. Problem types: `/problems/invalid-field`.",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_incident(
    State(page): State<StatusPage>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, Problem> {
    let actor = authorize(&page, &headers).await?;
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::not_found("incident"))?;
    let ApiJson(body) = ApiJson::<UpdateBody>::from_request(request, &()).await?;
    let update = IncidentUpdate::parse(
        body.title.as_deref(),
        body.body.as_deref(),
        body.status.as_deref(),
    )
    .map_err(invalid)?;
    let now = page.inner.clock.now();
    let incident = page
        .inner
        .store
        .update_incident(id, &update, now)
        .await
        .map_err(|e| e.to_problem("probes"))?
        .ok_or_else(|| Problem::not_found("incident"))?;
    record(&page, &actor, &incident, "updated");
    page.invalidate().await;
    Ok(axum::Json(incident).into_response())
}
