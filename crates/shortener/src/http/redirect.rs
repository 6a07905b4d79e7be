//! `/{slug}`: the hot path. A cache hit costs one map lookup, one clock
//! read and a push onto the visit buffer; links with `max_visits` add one
//! conditional `UPDATE` so the limit holds exactly across concurrent
//! requests.
//!
//! The visitor's address is the peer's (behind an in-process gateway, the
//! client the gateway resolved), or the `X-Forwarded-For` client when the
//! peer is one of `http.trusted_proxies` (a gateway in other pods).

use super::store_failure;
use crate::cache::CachedLink;
use crate::domain::{Availability, Link, Slug};
use crate::state::AppState;
use crate::storage::Claim;
use crate::visits::PendingVisit;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kit::Problem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

fn gone(slug: &Slug, why: Availability) -> Response {
    Problem::new(
        StatusCode::GONE,
        "link-gone",
        "The link is no longer available",
    )
    .with_detail(format!("link `{slug}` is {}", why.as_str()))
    .into_response()
}

/// Browsers may cache a redirect only when nothing about it can change
/// within the cached time: never for visit-limited links, never past expiry,
/// and not at all unless the operator opted in with `redirect_max_age`.
fn cache_control(link: &Link, now: DateTime<Utc>, max_age: Duration) -> HeaderValue {
    if link.max_visits.is_some() || max_age.is_zero() {
        return NO_STORE;
    }
    let mut secs = max_age.as_secs();
    if let Some(expires_at) = link.expires_at {
        secs = secs.min(u64::try_from((expires_at - now).num_seconds()).unwrap_or(0));
    }
    if secs == 0 {
        return NO_STORE;
    }
    HeaderValue::from_str(&format!("private, max-age={secs}")).unwrap_or(NO_STORE)
}

/// The link at `slug`, a text [`Slug::check`] accepted, at `now`.
async fn load(
    state: &AppState,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<Option<Arc<CachedLink>>, Problem> {
    if let Some(link) = state.cache.get(slug, now) {
        state.metrics.cache_hits.increment(1);
        return Ok(Some(link));
    }
    state.metrics.cache_misses.increment(1);
    let Ok(slug) = Slug::parse(slug) else {
        return Ok(None);
    };
    let ticket = state.cache.ticket();
    let link = state.store.lookup(&slug).await.map_err(store_failure)?;
    let Some(link) = link else {
        return Ok(None);
    };
    let Some(cached) = CachedLink::new(link) else {
        tracing::error!(slug = %slug, "stored URL is not a valid header value");
        return Err(Problem::internal());
    };
    let cached = Arc::new(cached);
    state.cache.insert(ticket, cached.clone(), now);
    Ok(Some(cached))
}

/// At most the first 1,024 characters of a header: `to_str` only accepts
/// visible ASCII, so characters are bytes and a slice copies them at once
/// (collecting `chars()` pushed them one by one).
fn header_string(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    Some(value[..value.len().min(1024)].to_owned())
}

/// [`redirect`] as the module's catch-all (`super::redirect_catch_all`),
/// which is given the peer's address, with its security headers
/// (`http.security_headers`), which kit leaves to it: a redirect has no
/// body for `X-Content-Type-Options` or a `Content-Security-Policy` to
/// act on, but the browser follows it under its `Referrer-Policy`
/// (`no-referrer`: the page that linked the short URL stays hidden from
/// the target); every other answer (a problem) gets the whole set. Two
/// header inserts fewer a redirect: about 800 instructions, 4% (issue
/// 18).
pub(crate) async fn serve(
    state: Arc<AppState>,
    request: Request,
    peer: Option<SocketAddr>,
) -> Response {
    let mut response = match peer {
        Some(peer) => redirect(State(state.clone()), ConnectInfo(peer), request).await,
        None => {
            // As the extractor: a server that records no peer is a bug.
            tracing::error!("the request carries no peer address");
            Problem::internal().into_response()
        }
    };
    if state.config.security_headers {
        if response.status().is_redirection() {
            response
                .headers_mut()
                .insert(header::REFERRER_POLICY, NO_REFERRER);
        } else {
            kit::http::add_security_headers(response.headers_mut());
        }
    }
    response
}

/// Follow a short link.
///
/// GET and HEAD redirect (HEAD neither counts nor uses up a visit). A link
/// whose status is 307 or 308 also redirects other methods, keeping them.
#[utoipa::path(
    get,
    path = "/{slug}",
    tag = "redirect",
    params(("slug" = String, Path, description = "The link's slug", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 301, description = "Moved permanently (the link's `redirect_status`).",
            headers(("location" = String))),
        (status = 302, description = "Found (the default).", headers(("location" = String))),
        (status = 307, description = "Temporary redirect.", headers(("location" = String))),
        (status = 308, description = "Permanent redirect.", headers(("location" = String))),
        (status = 404, description = "No link at this path. Problem types: `/problems/not-found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The link expired or ran out of visits. Problem types: `/problems/link-gone`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn redirect(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let not_found = || Problem::not_found("no link at this path").into_response();
    // The route is `/{slug}` and slugs need no percent-decoding: anything
    // that is not a valid slug as it stands is simply not a link.
    let raw = request.uri().path().strip_prefix('/').unwrap_or_default();
    // Checked, not parsed: a cached link needs no slug of its own.
    let Ok(slug) = Slug::check(raw) else {
        return not_found();
    };
    let method = request.method();
    let headers = request.headers();
    // Read once: for the cache's TTL, the link's expiry and the visit.
    let now = state.clock.now();
    let cached = match load(&state, slug, now).await {
        Ok(Some(cached)) => cached,
        Ok(None) => return not_found(),
        Err(problem) => return problem.into_response(),
    };
    let link = &cached.link;
    let is_head = method == Method::HEAD;
    if !link.redirect_status.preserves_method() && method != Method::GET && !is_head {
        let mut response = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .with_detail(format!(
            "a {} link answers GET and HEAD only",
            link.redirect_status.code()
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match link.availability(now) {
        Availability::Active => {}
        other => return gone(&link.slug, other),
    }
    // HEAD (link checkers, unfurlers) neither counts nor consumes a visit.
    let counted = if link.max_visits.is_some() && !is_head {
        match state.store.claim_visit(link.id).await {
            Ok(Claim::Granted) => true,
            Ok(Claim::Exhausted) => return gone(&link.slug, Availability::Exhausted),
            Ok(Claim::Gone) => {
                state.cache.invalidate(&link.slug);
                return not_found();
            }
            Err(e) => return store_failure(e).into_response(),
        }
    } else {
        false
    };
    if !is_head {
        let [user_agent, referer] =
            kit::http::find_headers(headers, [&header::USER_AGENT, &header::REFERER]);
        state
            .recorder
            .record(PendingVisit {
                link_id: link.id,
                at: now,
                client_ip: Some(state.trusted.client_ip(peer.ip(), headers)),
                user_agent: header_string(user_agent),
                referer: header_string(referer),
                counted,
            })
            .await;
    }
    let status = StatusCode::from_u16(link.redirect_status.code()).unwrap_or(StatusCode::FOUND);
    // Room for what is added after the handler (`Referrer-Policy`, the
    // request id; under `reliable up` the gateway's headers too): a map
    // made for the two headers here grew on every redirect through the
    // gateway (about 720 instructions, issue 18), and so did one of six
    // usable slots (`with_capacity(6)`: +1,200 on `up`, measured).
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::LOCATION, cached.location.clone());
    headers.insert(
        header::CACHE_CONTROL,
        cache_control(link, now, state.config.redirect_max_age),
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
