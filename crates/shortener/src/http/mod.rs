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

/// The links API and the OpenAPI document of every route, the
/// redirect's included, built together so they cannot drift.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(RedirectDoc::openapi())
        .routes(routes!(api::list_links, api::create_link))
        .routes(routes!(api::get_link, api::patch_link, api::delete_link))
        .routes(routes!(api::visit_summary))
}

/// The redirect's route template, and its label in metrics and traces.
pub(crate) const REDIRECT_ROUTE: &str = "/{slug}";

/// Every route, the redirect at `/{slug}` included.
pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::from(api_routes(state.clone()))
        .route(REDIRECT_ROUTE, any(redirect::redirect).with_state(state))
}

/// The links API alone: the redirect is then [`redirect_catch_all`].
pub(crate) fn api_routes(state: Arc<AppState>) -> kit::http::Routes {
    api_parts().with_state(state)
}

/// The links API's router and its routes' templates, from the document
/// built with it. The redirect is documented there but is no route of
/// this router: left in, its `/{slug}` would match every one-segment
/// path, and none would go straight to the catch-all.
fn api_parts() -> kit::http::Routes<Arc<AppState>> {
    let (router, mut document) = api().split_for_parts();
    document.paths.paths.shift_remove(REDIRECT_ROUTE);
    kit::http::Routes::documented(router, &document)
}

/// The redirect as the catch-all of the module's stack
/// (`kit::http::stack_with_catch_all`): it answers every one-segment path
/// no route matches, observed under `/{slug}` as the route was, and skips
/// what an axum route costs each request (the path parameters, the
/// matched path, the method router and the extractors: about 3,500
/// instructions of the redirect's 38,000; docs/performance.md). Other
/// paths stay the 404 problem, observed as unmatched. It sets its
/// answers' security headers itself ([`redirect::serve`]), and forwards
/// no request headers, so kit writes no generated request id into them.
pub(crate) fn redirect_catch_all(state: Arc<AppState>) -> kit::http::CatchAll {
    kit::http::CatchAll::new(REDIRECT_ROUTE, move |request, peer| {
        redirect::serve(state.clone(), request, peer)
    })
    .claiming(kit::http::one_segment)
    .with_own_security_headers()
    .keeping_request_headers()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_templates_leave_the_one_segment_paths_to_the_redirect() {
        let routes = api_parts();
        let templates = routes.templates().expect("every template known");
        for expected in ["/api/v1/links", "/api/v1/links/{slug}"] {
            assert!(templates.iter().any(|t| t == expected), "{templates:?}");
        }
        assert!(
            templates.iter().all(|t| !kit::http::one_segment(t)),
            "{templates:?}"
        );
    }
}
