//! The pages, one module each, and their JSON twins under `/api/v1/`.
//!
//! Each page module loads one view (a serializable struct), which the API
//! handler returns as JSON and the page handler renders: the two cannot
//! drift apart.

mod alerts;
mod canaries;
mod changes;
mod cost;
mod models;
mod overview;
mod slos;

use crate::error::PageError;
use crate::{layout, App};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/api/v1/overview", get(overview::api))
        .route("/slos", get(slos::page_list))
        .route("/slos/{id}", get(slos::page_one))
        .route("/api/v1/slos", get(slos::api_list))
        .route("/api/v1/slos/{id}", get(slos::api_one))
        .route("/alerts", get(alerts::page))
        .route("/api/v1/alerts", get(alerts::api))
        .route("/changes", get(changes::page))
        .route("/api/v1/changes", get(changes::api))
        .route("/canaries", get(canaries::page))
        .route("/api/v1/canaries", get(canaries::api))
        .route("/models", get(models::page))
        .route("/api/v1/models", get(models::api))
        .route("/cost", get(cost::page))
        .route("/api/v1/cost", get(cost::api))
}

/// The console's JSON API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Reliable console",
        description = "The data behind every console page."
    ),
    paths(
        overview::api,
        slos::api_list,
        slos::api_one,
        alerts::api,
        changes::api,
        canaries::api,
        models::api,
        cost::api
    )
)]
pub struct ApiDoc;

/// Pages that take no parameter but `refresh`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshOnly {
    pub refresh: Option<String>,
}

/// Bad input or an unreadable source, as a page people read.
pub(crate) fn error_page(error: PageError) -> Response {
    let status = error.status();
    // Logs a source failure; the page shows only what the caller may see.
    let _ = error.problem();
    let title = match status.as_u16() {
        400 => "Bad request",
        404 => "Not found",
        _ => "Unavailable",
    };
    (status, layout::message_page(title, &error.to_string())).into_response()
}

/// The "module not running" page.
pub(crate) fn not_running(title: &str, active: &str, module: &str) -> maud::Markup {
    layout::page(
        title,
        active,
        None,
        maud::html! {
            h1 { (title) }
            div.notice { "The " (module) " module is not running in this process, so there is nothing to show here." }
        },
    )
}
