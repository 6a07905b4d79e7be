//! `/changes`: what changed, newest first, with who and when: "what
//! changed 6 hours ago?" next to the SLO charts. Paged by keyset (`before`
//! the last id shown), so a page never shifts while events arrive.

use super::error_page;
use crate::error::PageError;
use crate::{format, layout, query, App};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::changes::{ChangeKind, ChangeQuery, StoredChange, MAX_PAGE};
use kit::problem::Problem;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The furthest back `since` reaches.
const MAX_SINCE: Duration = Duration::from_secs(90 * 86_400);
const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeParams {
    since: Option<String>,
    kind: Option<String>,
    service: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// The timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChangesView {
    /// Whether a change store is wired; without one nothing is recorded.
    pub recording: bool,
    /// Newest first.
    pub changes: Vec<StoredChange>,
    /// The query string of the next (older) page, when there may be one.
    pub older: Option<String>,
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A parameter with a value (an empty form field counts as absent).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The filters given, as `(name, value)`, for the next page's link.
type Kept = Vec<(&'static str, String)>;

fn parse(app: &App, params: &ChangeParams) -> Result<(ChangeQuery, Kept), PageError> {
    let mut kept = Vec::new();
    let since = match given(&params.since) {
        None => None,
        Some(text) => {
            let span = query::since("since", Some(text), MAX_SINCE, MAX_SINCE)?;
            kept.push(("since", text.to_string()));
            Some(app.now() - span)
        }
    };
    let mut kinds = Vec::new();
    if let Some(text) = given(&params.kind) {
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = ChangeKind::parse(name).ok_or_else(|| {
                let all: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                PageError::bad_query("kind", format!("one or more of {}", all.join(", ")))
            })?;
            kinds.push(kind);
        }
        kept.push(("kind", text.to_string()));
    }
    if let Some(service) = given(&params.service) {
        if !query::is_name(service) {
            return Err(PageError::bad_query(
                "service",
                "a module name such as gateway",
            ));
        }
        kept.push(("service", service.to_string()));
    }
    let before_id = match given(&params.before) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| PageError::bad_query("before", "a change id above 0"))?,
        ),
    };
    let limit = match given(&params.limit) {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                PageError::bad_query("limit", format!("a number from 1 to {MAX_PAGE}"))
            })?,
    };
    if given(&params.limit).is_some() {
        kept.push(("limit", limit.to_string()));
    }
    let query = ChangeQuery {
        since,
        until: None,
        kinds,
        service: given(&params.service).map(str::to_string),
        before_id,
        limit,
    };
    Ok((query, kept))
}

async fn load(app: &App, params: &ChangeParams) -> Result<ChangesView, PageError> {
    let (query, kept) = parse(app, params)?;
    let Some(feed) = &app.sources.changes else {
        return Ok(ChangesView {
            recording: false,
            changes: Vec::new(),
            older: None,
        });
    };
    let changes = feed
        .list(&query)
        .await
        .map_err(|e| PageError::Unavailable {
            what: "the change store",
            source: Box::new(e),
        })?;
    let older = match changes.last() {
        Some(last) if changes.len() >= query.limit => {
            let mut pairs: Vec<String> = kept
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            pairs.push(format!("before={}", last.id));
            Some(pairs.join("&"))
        }
        _ => None,
    };
    Ok(ChangesView {
        recording: true,
        changes,
        older,
    })
}

/// The change timeline, newest first.
#[utoipa::path(get, path = "/api/v1/changes", tag = "console",
    params(
        ("since" = Option<String>, Query, description = "Only changes in this span, such as 6h (at most 90d)"),
        ("kind" = Option<String>, Query, description = "Only these kinds, comma-separated (canary_step, key_created, ...)"),
        ("service" = Option<String>, Query, description = "Only this module's changes"),
        ("before" = Option<i64>, Query, description = "Only changes with an id below this (the next page)"),
        ("limit" = Option<u32>, Query, description = "At most this many, 1 to 500 (default 50)"),
    ),
    responses(
        (status = 200, description = "The changes; `older` is the next page's query.", body = ChangesView),
        (status = 400, description = "An unknown kind, a bad or out-of-range parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The change store cannot be read (`/problems/unavailable`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Result<Json<ChangesView>, Problem> {
    let params = query::parse::<ChangeParams>(&uri).map_err(|e| e.problem())?;
    load(&app, &params).await.map(Json).map_err(|e| e.problem())
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let params = match query::parse::<ChangeParams>(&uri) {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    match load(&app, &params).await {
        Ok(view) => layout::page(
            "Changes",
            "/changes",
            None,
            render(&view, &params, app.now().timestamp_millis()),
        )
        .into_response(),
        Err(e) => error_page(e),
    }
}

fn render(view: &ChangesView, params: &ChangeParams, now_ms: i64) -> Markup {
    html! {
        h1 { "Changes" }
        @if !view.recording {
            div.notice { "No change store is wired in this process, so changes are not recorded." }
        }
        form.inline method="get" action="/changes" {
            label { "since " input name="since" size="5" placeholder="6h" value=(given(&params.since).unwrap_or("")); }
            label { "kind "
                select name="kind" {
                    option value="" { "any" }
                    @for k in ChangeKind::ALL {
                        option value=(k.as_str()) selected[given(&params.kind) == Some(k.as_str())] { (k.as_str()) }
                    }
                }
            }
            label { "service " input name="service" size="10" value=(given(&params.service).unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        div.card {
            @if view.changes.is_empty() {
                p.muted { "No change matches." }
            } @else {
                table {
                    thead { tr { th { "when" } th { "kind" } th { "service" } th { "who" } th { "what" } } }
                    tbody {
                        @for c in &view.changes {
                            @let e = &c.event;
                            tr {
                                td { (format::time(e.at)) br; span.muted { (format::ago(now_ms, e.at.timestamp_millis())) } }
                                td { span.badge { (e.kind.as_str()) } }
                                td { (e.service) }
                                td { (e.actor) }
                                td { strong { (e.subject) } br; (e.summary) }
                            }
                        }
                    }
                }
            }
            @if let Some(older) = &view.older {
                p { a href=(format!("/changes?{older}")) { "Older changes →" } }
            }
        }
    }
}
