//! The gateway's admin API: the canary split of each route, read and
//! changed at runtime.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin/v1/routes` | the routes with a canary pool and their splits |
//! | `GET /admin/v1/routes/{name}/split` | one route's split |
//! | `PUT /admin/v1/routes/{name}/split` | set the canary's share: `{"percent": 30}` |
//!
//! Every call needs an API key with the `admin` scope (401 without a
//! valid key, 403 without the scope): the same keys, store and cache as
//! the routes' admission. A route's name may hold `/` (a route's default
//! name is its prefix): send it percent-encoded (`%2Fapi%2Flinks`).
//!
//! Where it is served: on `gateway.admin_listen` (a listener of its own,
//! none by default) and, only with `gateway.admin_on_public`, on the
//! public listener. Otherwise the public listener answers `/admin/v1/...`
//! itself with 403 `admin-not-public` (see [`crate::proxy`]): such a path
//! never reaches an upstream.

use crate::error::GatewayError;
use crate::keys::{Scope, StoredKey};
use crate::{admission, Shared};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::routing::get;
use axum::Json;
use http::{HeaderMap, StatusCode};
use kit::http::ApiJson;
use kit::traffic::{SplitError, SplitState};
use kit::Problem;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

/// Where the admin API's paths begin.
pub const PREFIX: &str = "/admin/v1";

/// The scope an API key needs to call the admin API.
pub const SCOPE: &str = "admin";

static ADMIN: LazyLock<Scope> =
    LazyLock::new(|| Scope::parse(SCOPE).expect("`admin` is a well-formed scope"));

/// Longest `reason` kept with a change.
const MAX_REASON_CHARS: usize = 200;

/// The admin routes (without the platform's middleware).
pub(crate) fn router(shared: Arc<Shared>) -> kit::http::Routes {
    kit::http::Routes::new()
        .route("/admin/v1/routes", get(list_routes))
        .route(
            "/admin/v1/routes/{name}/split",
            get(get_split).put(put_split),
        )
        .with_state(shared)
}

/// `PUT .../split`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitRequest {
    /// The canary's share, 0 to 100 (two decimals kept).
    percent: f64,
    /// Why, kept and logged with the key's name.
    #[serde(default)]
    reason: Option<String>,
}

/// `GET /admin/v1/routes`' answer.
#[derive(Debug, Serialize)]
struct RouteSplits {
    routes: Vec<SplitState>,
}

/// The caller's key, if it may use the admin API.
async fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<StoredKey, Problem> {
    let key = admission::authenticate(shared, headers)
        .await
        .map_err(|e| e.problem())?
        .ok_or_else(|| GatewayError::KeyMissing.problem())?;
    if !key.scopes.contains(&ADMIN) {
        return Err(GatewayError::WrongScope(SCOPE.to_string()).problem());
    }
    Ok(key)
}

/// The route name from the path, percent-decoded.
fn route_name(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(name)| name).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            "Invalid route name",
        )
        .with_detail(e.body_text())
    })
}

fn split_problem(error: SplitError) -> Problem {
    let detail = error.to_string();
    match error {
        SplitError::UnknownName(_) => {
            Problem::new(StatusCode::NOT_FOUND, "route-not-found", "Route not found")
                .with_detail(detail)
        }
        SplitError::NoCanary(_) => Problem::new(
            StatusCode::CONFLICT,
            "route-without-canary",
            "The route has no canary pool",
        )
        .with_detail(format!(
            "{detail}: give the route a `canary_pool` in the gateway's config"
        )),
        SplitError::OutOfRange(_) => Problem::invalid_field("percent", detail),
        SplitError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "split-store-unavailable",
            "Service unavailable",
        )
        .with_detail("the gateway's database is unavailable; the split was not changed")
        .with_retry_after(1),
    }
}

/// Who made a change, as logged and stored: the key's name and the reason.
fn changed_by(key: &StoredKey, reason: Option<&str>) -> Result<String, Problem> {
    let name = key.name.as_str();
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(format!("key {name}"));
    };
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(Problem::invalid_field(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters, without control characters"),
        ));
    }
    Ok(format!("key {name}: {reason}"))
}

async fn list_routes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<RouteSplits>, Problem> {
    authorize(&shared, &headers).await?;
    Ok(Json(RouteSplits {
        routes: shared.splits.list(),
    }))
}

async fn get_split(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SplitState>, Problem> {
    authorize(&shared, &headers).await?;
    let name = route_name(path)?;
    shared.splits.get(&name).map(Json).map_err(split_problem)
}

async fn put_split(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Json<SplitState>, Problem> {
    // Who first: a stranger learns nothing about routes or bodies.
    let key = authorize(&shared, request.headers()).await?;
    let name = route_name(path)?;
    shared.splits.get(&name).map_err(split_problem)?;
    let ApiJson(body) = ApiJson::<SplitRequest>::from_request(request, &()).await?;
    let by = changed_by(&key, body.reason.as_deref())?;
    shared
        .splits
        .set(
            &name,
            body.percent,
            &format!("key:{}", key.name.as_str()),
            &by,
        )
        .await
        .map(Json)
        .map_err(split_problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_scope_is_a_valid_scope() {
        assert_eq!(Scope::parse("admin").expect("valid").as_str(), SCOPE);
        assert_eq!(ADMIN.as_str(), "admin");
    }

    #[test]
    fn split_errors_become_their_statuses() {
        let cases = [
            (SplitError::UnknownName("x".into()), 404),
            (SplitError::NoCanary("x".into()), 409),
            (SplitError::OutOfRange(101.0), 422),
            (SplitError::Unavailable("down".into()), 503),
        ];
        for (error, status) in cases {
            assert_eq!(split_problem(error).status().as_u16(), status);
        }
    }
}
