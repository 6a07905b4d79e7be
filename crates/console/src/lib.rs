//! The operator console: the picture a newcomer gets in the first minute
//! of `reliable up`, served on its own listener (`console_listen`).
//!
//! Server-rendered HTML (maud) that works without JavaScript, with the
//! same data as JSON under `/api/v1/...` so scripts see what people see.
//!
//! - [`sources`]: what the console shows and the traits the binary
//!   implements over the running platform (tests use fakes).
//! - [`config`]: the `[console]` section.
//! - `access`: who may read it (nobody is asked on loopback; a key with
//!   `console:read` otherwise) and the login sessions.
//! - `pages`: one module per page, each with its JSON twin (overview,
//!   SLOs, alerts, changes, canaries, models, cost).
//! - `layout`, `format`, `svg`: the page shell and CSS, numbers for
//!   people, and the charts and service graph drawn server-side.
#![forbid(unsafe_code)]

mod access;
pub mod config;
mod error;
mod format;
mod layout;
mod pages;
mod query;
pub mod sources;
mod svg;

pub use access::Access;
pub use config::ConsoleConfig;

use access::Sessions;
use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use sources::Sources;
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

/// What every handler reads.
pub(crate) struct App {
    pub sources: Sources,
    pub access: Access,
    /// The default auto-refresh period of the pages that refresh.
    pub refresh: Duration,
    pub sessions: Sessions,
}

impl App {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.sources.clock.now()
    }
}

/// The console with the default `[console]` settings; the binary uses
/// [`router_with_config`] so `console.refresh` applies.
pub fn router(sources: Sources, access: Access) -> Router {
    router_with_config(sources, access, &ConsoleConfig::default())
}

/// The console's pages, JSON API, login and `/healthz`, with its security
/// headers on every response (outermost, so a 401 from the access check
/// carries them too).
pub fn router_with_config(sources: Sources, access: Access, config: &ConsoleConfig) -> Router {
    let app = Arc::new(App {
        sources,
        access,
        refresh: config.refresh,
        sessions: Sessions::default(),
    });
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/style.css", get(layout::stylesheet))
        .route("/login", get(access::login_form).post(access::login))
        .route("/api/v1/openapi.json", get(openapi_json))
        .merge(pages::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::guard,
        ))
        .with_state(app);
    security_headers(routes)
}

/// The console's own headers, set over anything an outer stack would add:
/// its CSS comes from itself (`style-src 'self'`), its charts are inline
/// SVG, and nothing may frame it or cache it.
fn security_headers(router: Router) -> Router {
    let set = |name, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::CACHE_CONTROL, "no-store"))
}

/// Unknown paths: a problem for the API, a page for people, both with the
/// console's headers (an outer stack's fallback would not carry them).
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        kit::problem::Problem::not_found("no resource at this path").into_response()
    } else {
        (
            axum::http::StatusCode::NOT_FOUND,
            layout::message_page("Not found", "There is no console page at this address."),
        )
            .into_response()
    }
}

/// The OpenAPI document of the console's JSON API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    pages::ApiDoc::openapi()
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(openapi())
}
