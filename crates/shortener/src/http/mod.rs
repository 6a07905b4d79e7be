//! The shortener's HTTP surface: the links API under `/api/v1/links` and
//! the redirect at `/{slug}`.

mod api;
mod redirect;

use crate::state::AppState;
use axum::routing::{any, get};
use axum::Router;
use kit::Problem;
use std::sync::Arc;

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/links", get(api::list_links).post(api::create_link))
        .route(
            "/api/v1/links/{slug}",
            get(api::get_link)
                .patch(api::patch_link)
                .delete(api::delete_link),
        )
        .route("/api/v1/links/{slug}/visits", get(api::visit_summary))
        .route("/{slug}", any(redirect::redirect))
        .with_state(state)
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
