//! The shortener's HTTP surface: the links API under `/api/v1/links` and
//! the redirect at `/{slug}`.

mod api;
mod redirect;

use crate::state::AppState;
use axum::routing::any;
use axum::Router;
use kit::Problem;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The redirect answers every method (307/308 links keep it), so its
/// route is `any`; its document comes from its handler's annotation.
#[derive(OpenApi)]
#[openapi(paths(redirect::redirect))]
struct RedirectDoc;

/// The routes and their OpenAPI document, built together so they cannot
/// drift.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(RedirectDoc::openapi())
        .routes(routes!(api::list_links, api::create_link))
        .routes(routes!(api::get_link, api::patch_link, api::delete_link))
        .routes(routes!(api::visit_summary))
        .route("/{slug}", any(redirect::redirect))
}

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(state)
}

/// The shortener's OpenAPI document, with the links a client (or a
/// stateful API tester) follows from a created link.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    for to in [
        "get_link",
        "patch_link",
        "delete_link",
        "visit_summary",
        "redirect",
    ] {
        kit::openapi::add_link(
            &mut doc,
            "create_link",
            "201",
            to,
            &[("slug", "$response.body#/slug")],
        );
    }
    doc
}

/// Maps a storage failure to a response: a taken slug is the client's
/// conflict; the rest is `kit::storage`'s one mapping (503 when the
/// database is unavailable, 500 otherwise, cause logged).
pub(crate) fn store_failure(error: crate::storage::StoreError) -> Problem {
    use crate::storage::StoreError;
    match &error {
        StoreError::Conflict(what) => Problem::new(
            axum::http::StatusCode::CONFLICT,
            "slug-taken",
            "The slug is already taken",
        )
        .with_detail(format!("a link with {what} exists")),
        _ => error.to_problem("the link database"),
    }
}
