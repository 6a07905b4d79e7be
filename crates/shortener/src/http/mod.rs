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

/// Maps a storage failure to a response, logging the cause (which never
/// reaches the client).
pub(crate) fn store_failure(error: crate::storage::StoreError) -> Problem {
    use crate::storage::StoreError;
    match &error {
        StoreError::SlugTaken(slug) => Problem::new(
            axum::http::StatusCode::CONFLICT,
            "slug-taken",
            "The slug is already taken",
        )
        .with_detail(format!("a link with slug `{slug}` exists")),
        StoreError::Database(
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_),
        ) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "database unavailable"
            );
            Problem::unavailable("the link database is unavailable").with_retry_after(1)
        }
        _ => {
            tracing::error!(error = &error as &dyn std::error::Error, "storage failed");
            Problem::internal()
        }
    }
}
