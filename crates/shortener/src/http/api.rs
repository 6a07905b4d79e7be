//! `/api/v1/links`: create, read, list, update, delete, visit summary.

use super::store_failure;
use crate::domain::{
    Link, LinkPatch, NewLink, RedirectStatus, Slug, Tags, TargetRefusal, TargetUrl,
};
use crate::state::AppState;
use crate::storage::{ListQuery, StoreError};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use kit::http::{ApiJson, ApiQuery};
use kit::Problem;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Attempts at a free generated slug before giving up (each longer than the last).
const GENERATE_ATTEMPTS: usize = 5;
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;

/// A link to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateLink {
    /// Where the link goes: an absolute `http` or `https` URL.
    #[schema(
        example = "https://example.com/a/long/path",
        format = "uri",
        min_length = 1,
        max_length = 2048
    )]
    url: String,
    /// The short path; generated when absent (letters, digits, `-`, `_`;
    /// a few names the platform uses, such as `api` or `healthz`, are
    /// reserved).
    #[schema(example = "launch", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    slug: Option<String>,
    /// When the link stops redirecting (RFC 3339, in the future).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Visits after which the link stops redirecting (at least 1).
    #[schema(minimum = 1)]
    max_visits: Option<i64>,
    /// Labels to filter links by.
    tags: Option<Vec<String>>,
    /// 301, 302 (default), 307 or 308.
    #[schema(example = 302)]
    redirect_status: Option<u16>,
}

/// Absent: leave as is; `null`: clear; a value: set.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a link: an absent field is left as is; `null` clears
/// `expires_at` and `max_visits`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchLink {
    #[schema(format = "uri", min_length = 1, max_length = 2048)]
    url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    max_visits: Option<Option<i64>>,
    tags: Option<Vec<String>>,
    redirect_status: Option<u16>,
}

/// A link as stored, with its short URL and whether it redirects now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LinkBody {
    slug: String,
    short_url: String,
    url: String,
    redirect_status: u16,
    /// `active`, `expired` or `exhausted` (out of visits).
    #[schema(value_type = LinkStatus)]
    status: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    max_visits: Option<i64>,
    visit_count: i64,
    tags: Vec<String>,
}

impl LinkBody {
    fn new(link: &Link, state: &AppState) -> Self {
        Self {
            slug: link.slug.to_string(),
            short_url: format!("{}/{}", state.base_url, link.slug),
            url: link.url.to_string(),
            redirect_status: link.redirect_status.code(),
            status: link.availability(state.clock.now()).as_str(),
            created_at: link.created_at,
            updated_at: link.updated_at,
            expires_at: link.expires_at,
            max_visits: link.max_visits,
            visit_count: link.visit_count,
            tags: link.tags.iter().map(|t| t.as_str().to_string()).collect(),
        }
    }
}

fn parse_url(value: &str) -> Result<TargetUrl, Problem> {
    TargetUrl::parse(value).map_err(|e| Problem::invalid_field("url", e.to_string()))
}

/// 422 for a valid URL this shortener will not redirect to; the `type`
/// tells a loop from a private target.
fn refused_target(refusal: TargetRefusal) -> Problem {
    let (kind, title) = match refusal {
        TargetRefusal::RedirectLoop(_) => {
            ("redirect-loop", "The target points back at this shortener")
        }
        TargetRefusal::PrivateAddress(_) => {
            ("private-target", "The target is a non-public address")
        }
    };
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title)
        .with_detail(format!("url {refusal}"))
        .with_invalid_param("url", refusal.to_string())
}

fn parse_expiry(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Problem> {
    let at = DateTime::parse_from_rfc3339(value)
        .map_err(|_| {
            Problem::invalid_field(
                "expires_at",
                "must be an RFC 3339 timestamp, e.g. 2030-01-01T00:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    if at <= now {
        return Err(Problem::invalid_field(
            "expires_at",
            "must be in the future",
        ));
    }
    Ok(at)
}

fn parse_max_visits(value: i64) -> Result<i64, Problem> {
    if value < 1 {
        return Err(Problem::invalid_field("max_visits", "must be at least 1"));
    }
    Ok(value)
}

fn parse_tags(values: &[String]) -> Result<Tags, Problem> {
    Tags::parse(values).map_err(|e| Problem::invalid_field("tags", e.to_string()))
}

fn parse_status(code: u16) -> Result<RedirectStatus, Problem> {
    RedirectStatus::from_code(code).ok_or_else(|| {
        Problem::invalid_field("redirect_status", "must be one of 301, 302, 307, 308")
    })
}

fn parse_slug_param(value: &str) -> Result<Slug, Problem> {
    Slug::parse(value).map_err(|_| {
        Problem::not_found(format!(
            "no link `{}`",
            value.chars().take(64).collect::<String>()
        ))
    })
}

impl CreateLink {
    fn into_new_link(self, now: DateTime<Utc>) -> Result<NewLink, Problem> {
        Ok(NewLink {
            url: parse_url(&self.url)?,
            slug: self
                .slug
                .map(|s| Slug::parse(&s).map_err(|e| Problem::invalid_field("slug", e.to_string())))
                .transpose()?,
            expires_at: self.expires_at.map(|v| parse_expiry(&v, now)).transpose()?,
            max_visits: self.max_visits.map(parse_max_visits).transpose()?,
            tags: self
                .tags
                .as_deref()
                .map(parse_tags)
                .transpose()?
                .unwrap_or_default(),
            redirect_status: self
                .redirect_status
                .map(parse_status)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

impl PatchLink {
    fn into_patch(self, now: DateTime<Utc>) -> Result<LinkPatch, Problem> {
        Ok(LinkPatch {
            url: self.url.as_deref().map(parse_url).transpose()?,
            expires_at: self
                .expires_at
                .map(|v| v.map(|s| parse_expiry(&s, now)).transpose())
                .transpose()?,
            max_visits: self
                .max_visits
                .map(|v| v.map(parse_max_visits).transpose())
                .transpose()?,
            tags: self.tags.as_deref().map(parse_tags).transpose()?,
            redirect_status: self.redirect_status.map(parse_status).transpose()?,
        })
    }
}

fn created(link: &Link, state: &AppState) -> Response {
    let location = format!("/api/v1/links/{}", link.slug);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(LinkBody::new(link, state)),
    )
        .into_response()
}

/// Create a link.
#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLink,
    responses(
        (status = 201, description = "Created.", body = LinkBody,
            headers(("location" = String, description = "The link's API URL"))),
        (status = 409, description = "The slug is taken. Problem types: `/problems/slug-taken`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The target points back at this shortener, or is a private address while `shortener.allow_private_targets` is off. Problem types: `/problems/redirect-loop`, `/problems/private-target`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_link(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<CreateLink>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let new_link = body.into_new_link(now)?;
    state.targets.check(&new_link.url).map_err(refused_target)?;
    if let Some(slug) = &new_link.slug {
        let link = state
            .store
            .create(slug, &new_link, now)
            .await
            .map_err(store_failure)?;
        return Ok(created(&link, &state));
    }
    for attempt in 0..GENERATE_ATTEMPTS {
        let slug = Slug::generate(state.config.slug_length + attempt);
        match state.store.create(&slug, &new_link, now).await {
            Ok(link) => return Ok(created(&link, &state)),
            Err(StoreError::Conflict(_)) => {
                metrics::counter!("shortener_slug_collisions_total").increment(1);
                continue;
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
    tracing::error!("no free generated slug after {GENERATE_ATTEMPTS} attempts");
    Err(Problem::internal())
}

/// Get a link.
#[utoipa::path(
    get,
    path = "/api/v1/links/{slug}",
    tag = "links",
    params(("slug" = String, Path, description = "The link's slug", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The link.", body = LinkBody),
        (status = 404, description = "No such link. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_link(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<Json<LinkBody>, Problem> {
    let slug = parse_slug_param(&slug)?;
    match state.store.find(&slug).await.map_err(store_failure)? {
        Some(link) => Ok(Json(LinkBody::new(&link, &state))),
        None => Err(Problem::not_found(format!("no link `{slug}`"))),
    }
}

/// Whether a link redirects now.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the schema of `LinkBody::status`, written as a string
pub(crate) enum LinkStatus {
    Active,
    Expired,
    Exhausted,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only links with this tag.
    tag: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of links, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LinkPage {
    items: Vec<LinkBody>,
    next_cursor: Option<String>,
}

fn encode_cursor(last_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{last_id}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let id: i64 = text.strip_prefix("id:")?.parse().ok()?;
    (id >= 0).then_some(id)
}

/// List links, oldest first, by pages.
#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(ListParams),
    responses((status = 200, description = "A page of links.", body = LinkPage))
)]
pub(crate) async fn list_links(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<LinkPage>, Problem> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_query(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after_id = match params.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Problem::invalid_query("cursor", "is not a cursor this API issued"))?,
    };
    let tag = params
        .tag
        .as_deref()
        .map(crate::domain::Tag::parse)
        .transpose()
        .map_err(|e| Problem::invalid_query("tag", e.to_string()))?;
    // One extra row tells whether another page exists.
    let mut links = state
        .store
        .list(&ListQuery {
            tag,
            after_id,
            limit: limit + 1,
        })
        .await
        .map_err(store_failure)?;
    let more = links.len() > limit as usize;
    links.truncate(limit as usize);
    let next_cursor = if more {
        links.last().map(|l| encode_cursor(l.id))
    } else {
        None
    };
    Ok(Json(LinkPage {
        items: links.iter().map(|l| LinkBody::new(l, &state)).collect(),
        next_cursor,
    }))
}

/// Change a link.
#[utoipa::path(
    patch,
    path = "/api/v1/links/{slug}",
    tag = "links",
    params(("slug" = String, Path, description = "The link's slug", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = PatchLink,
    responses(
        (status = 200, description = "The changed link.", body = LinkBody),
        (status = 404, description = "No such link. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new target points back at this shortener, or is a private address while `shortener.allow_private_targets` is off. Problem types: `/problems/redirect-loop`, `/problems/private-target`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn patch_link(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<PatchLink>,
) -> Result<Json<LinkBody>, Problem> {
    let slug = parse_slug_param(&slug)?;
    let now = state.clock.now();
    let patch = body.into_patch(now)?;
    if let Some(url) = &patch.url {
        state.targets.check(url).map_err(refused_target)?;
    }
    let updated = state.store.update(&slug, &patch, now).await;
    // Invalidate even on error: the write may have committed.
    state.cache.invalidate(&slug);
    match updated.map_err(store_failure)? {
        Some(link) => Ok(Json(LinkBody::new(&link, &state))),
        None => Err(Problem::not_found(format!("no link `{slug}`"))),
    }
}

/// Delete a link and its visits.
#[utoipa::path(
    delete,
    path = "/api/v1/links/{slug}",
    tag = "links",
    params(("slug" = String, Path, description = "The link's slug", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such link. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_link(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<StatusCode, Problem> {
    let slug = parse_slug_param(&slug)?;
    let deleted = state.store.delete(&slug).await;
    state.cache.invalidate(&slug);
    if deleted.map_err(store_failure)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no link `{slug}`")))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SummaryParams {
    /// Days back from now, 1 to 366 (default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

/// Visits to a link: all-time count, and a summary since `since`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SummaryBody {
    slug: String,
    /// All-time visit count of the link.
    visit_count: i64,
    since: DateTime<Utc>,
    #[serde(flatten)]
    summary: crate::domain::VisitSummary,
}

/// Visits to a link: per day, bots and humans, top referrers.
#[utoipa::path(
    get,
    path = "/api/v1/links/{slug}/visits",
    tag = "links",
    params(("slug" = String, Path, description = "The link's slug", pattern = "^[A-Za-z0-9_-]{1,64}$"), SummaryParams),
    responses(
        (status = 200, description = "The summary.", body = SummaryBody),
        (status = 404, description = "No such link. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn visit_summary(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    ApiQuery(params): ApiQuery<SummaryParams>,
) -> Result<Json<SummaryBody>, Problem> {
    let slug = parse_slug_param(&slug)?;
    let days = params.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(Problem::invalid_query("days", "must be between 1 and 366"));
    }
    let link = state
        .store
        .find(&slug)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| Problem::not_found(format!("no link `{slug}`")))?;
    let since = state.clock.now() - chrono::Duration::days(i64::from(days));
    let summary = state
        .store
        .visit_summary(link.id, since, 10)
        .await
        .map_err(store_failure)?;
    Ok(Json(SummaryBody {
        slug: slug.to_string(),
        visit_count: link.visit_count,
        since,
        summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("not-base64!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("id:-5")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("42")), None);
    }
}
