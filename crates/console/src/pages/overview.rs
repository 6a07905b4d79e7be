//! `/`: every module's readiness and traffic, the dependencies, and the
//! service graph.

use super::{error_page, RefreshOnly};
use crate::sources::{DependencyState, DependencyStatus, ModuleStatus, ServiceGraph};
use crate::{format, layout, query, svg, App};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kit::problem::Problem;
use maud::{html, Markup};
use serde::Serialize;
use std::sync::Arc;

/// The overview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Overview {
    pub modules: Vec<ModuleStatus>,
    pub dependencies: Vec<DependencyStatus>,
    pub graph: ServiceGraph,
}

async fn load(app: &App) -> Overview {
    let platform = &app.sources.platform;
    Overview {
        modules: platform.modules().await,
        dependencies: platform.dependencies().await,
        graph: platform.graph(),
    }
}

/// Every module with readiness, request rate, error ratio and p99 over
/// the last 5 minutes; the dependencies; the service graph.
#[utoipa::path(get, path = "/api/v1/overview", tag = "console",
    responses(
        (status = 200, description = "Modules, dependencies and the service graph.", body = Overview),
        (status = 400, description = "An unknown or bad query parameter (`/problems/invalid-query`).", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn api(State(app): State<Arc<App>>, uri: Uri) -> Result<Json<Overview>, Problem> {
    let params = query::parse::<RefreshOnly>(&uri).map_err(|e| e.problem())?;
    query::refresh(params.refresh.as_deref(), app.refresh).map_err(|e| e.problem())?;
    Ok(Json(load(&app).await))
}

pub(crate) async fn page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let refresh = query::parse::<RefreshOnly>(&uri)
        .and_then(|q| query::refresh(q.refresh.as_deref(), app.refresh));
    match refresh {
        Ok(refresh) => {
            layout::page("Overview", "/", refresh, render(&load(&app).await)).into_response()
        }
        Err(e) => error_page(e),
    }
}

fn state_badge(state: DependencyState) -> Markup {
    match state {
        DependencyState::Up => html! { span.badge.ok { "up" } },
        DependencyState::Down => html! { span.badge.bad { "down" } },
        DependencyState::Unknown => html! { span.badge.muted { "unknown" } },
    }
}

fn render(view: &Overview) -> Markup {
    let dependency = |name: &str| view.dependencies.iter().find(|d| d.name == name);
    html! {
        h1 { "Overview" }
        div.card {
            h2 { "Modules" }
            @if view.modules.is_empty() {
                p.muted { "No module is running." }
            } @else {
                table {
                    thead { tr { th { "module" } th { "ready" } th { "requests" } th { "errors" } th { "p99" } th { "depends on" } } }
                    tbody {
                        @for m in &view.modules {
                            tr {
                                td { (m.name) }
                                td {
                                    @if m.ready { span.badge.ok { "ready" } }
                                    @else {
                                        span.badge.bad { "not ready" }
                                        @for reason in &m.not_ready_reasons { br; span.muted { (reason) } }
                                    }
                                }
                                td { (format::rate(m.request_rate)) }
                                td { (format::percent(m.error_ratio)) }
                                td { (format::latency(m.p99_seconds)) }
                                td {
                                    @for name in &m.depends_on {
                                        (name) " "
                                        @match dependency(name) {
                                            Some(d) => (state_badge(d.state)),
                                            None => span.badge.muted { "unknown" },
                                        }
                                        " "
                                    }
                                }
                            }
                        }
                    }
                }
                p.muted { "Rates, errors and p99 over the last 5 minutes." }
            }
        }
        div.card {
            h2 { "Dependencies" }
            @if view.dependencies.is_empty() {
                p.muted { "No dependency is in use." }
            } @else {
                table {
                    thead { tr { th { "dependency" } th { "adapter" } th { "state" } th { "detail" } } }
                    tbody {
                        @for d in &view.dependencies {
                            tr {
                                td { (d.name) }
                                td { (d.adapter) }
                                td { (state_badge(d.state)) }
                                td.muted { (d.detail.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Service graph" }
            (svg::service_graph(&view.graph))
            p.muted { "Edges carry calls (or events, dashed) per second over the last 5 minutes; red edges fail more than 1%." }
        }
    }
}
