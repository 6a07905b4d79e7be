//! toxiproxy's HTTP API over [`Proxies`], and [`ProxyServer`], which
//! serves it (the `reliable chaos proxy` command, or in-process in tests).
//!
//! Routes, bodies, status codes and the error envelope are toxiproxy
//! 2.x's, so its clients work unchanged. Bodies are read as bytes and
//! parsed here, so a body that is not JSON gets toxiproxy's envelope too.

use super::error::ApiError;
use super::proxies::Proxies;
use super::spec::{ProxySpec, ProxyUpdate};
use super::toxic::ToxicSpec;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest request body: proxy and toxic bodies are a few hundred bytes;
/// a populate list of a thousand proxies fits.
const BODY_LIMIT: usize = 1 << 20;

/// The version `/version` reports: ours, with the API it speaks.
pub const VERSION: &str = concat!(
    "reliable-chaos ",
    env!("CARGO_PKG_VERSION"),
    " (toxiproxy 2.x API)"
);

/// The API's routes over `proxies`, for embedding in another server.
pub fn router(proxies: Proxies) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(proxies)
}

async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        format!("{{\"version\": \"{VERSION}\"}}\n"),
    )
        .into_response()
}

async fn list(State(p): State<Proxies>) -> Json<Value> {
    let map: Map<String, Value> = p
        .list()
        .await
        .into_iter()
        .map(|info| (info.name.clone(), info.to_json()))
        .collect();
    Json(Value::Object(map))
}

async fn create(State(p): State<Proxies>, body: Bytes) -> Result<Response, ApiError> {
    let spec = ProxySpec::from_json(&body)?;
    let info = p.create(spec).await?;
    Ok((StatusCode::CREATED, Json(info.to_json())).into_response())
}

async fn populate(State(p): State<Proxies>, body: Bytes) -> Result<Response, ApiError> {
    let specs = ProxySpec::list_from_json(&body)?;
    let (done, error) = p.populate(specs).await;
    let proxies: Vec<Value> = done.iter().map(|i| i.to_json()).collect();
    Ok(match error {
        None => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "proxies": proxies })),
        )
            .into_response(),
        Some(e) => {
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body =
                serde_json::json!({ "error": e.message, "status": e.status, "proxies": proxies });
            (status, Json(body)).into_response()
        }
    })
}

async fn show(State(p): State<Proxies>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(p.get(&name).await?.to_json()))
}

async fn update(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // An unknown proxy is 404 whatever the body says.
    p.get(&name).await?;
    let update = ProxyUpdate::from_json(&body)?;
    Ok(Json(p.update(&name, update).await?.to_json()))
}

async fn delete(
    State(p): State<Proxies>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(p): State<Proxies>) -> Result<StatusCode, ApiError> {
    p.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(
    State(p): State<Proxies>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = p.get(&name).await?;
    Ok(Json(Value::Array(
        info.toxics.iter().map(ToxicSpec::to_json).collect(),
    )))
}

async fn add_toxic(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.get(&name).await?;
    let toxic = ToxicSpec::from_json(&body)?;
    // toxiproxy answers 200 (not 201) to a new toxic.
    Ok(Json(p.add_toxic(&name, toxic).await?.to_json()))
}

async fn show_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(p.toxic(&name, &toxic).await?.to_json()))
}

async fn update_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let updated = p
        .update_toxic(&name, &toxic, |current| current.updated(&body))
        .await?;
    Ok(Json(updated.to_json()))
}

async fn remove_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    p.remove_toxic(&name, &toxic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prometheus text: connections, bytes per direction and toxics per proxy.
async fn metrics(State(p): State<Proxies>) -> Response {
    let counters = p.counters().await;
    let mut out = String::new();
    out.push_str("# HELP chaos_proxy_connections_total Connections accepted by the proxy.\n");
    out.push_str("# TYPE chaos_proxy_connections_total counter\n");
    for c in &counters {
        let _ = writeln!(
            out,
            "chaos_proxy_connections_total{{proxy=\"{}\"}} {}",
            escape(&c.name),
            c.connections
        );
    }
    out.push_str("# HELP chaos_proxy_bytes_total Bytes forwarded, by direction (upstream: client to upstream).\n");
    out.push_str("# TYPE chaos_proxy_bytes_total counter\n");
    for c in &counters {
        let name = escape(&c.name);
        let _ = writeln!(
            out,
            "chaos_proxy_bytes_total{{proxy=\"{name}\",direction=\"upstream\"}} {}",
            c.bytes_upstream
        );
        let _ = writeln!(
            out,
            "chaos_proxy_bytes_total{{proxy=\"{name}\",direction=\"downstream\"}} {}",
            c.bytes_downstream
        );
    }
    out.push_str("# HELP chaos_proxy_toxics_active Toxics set on the proxy.\n");
    out.push_str("# TYPE chaos_proxy_toxics_active gauge\n");
    for c in &counters {
        let _ = writeln!(
            out,
            "chaos_proxy_toxics_active{{proxy=\"{}\"}} {}",
            escape(&c.name),
            c.toxics
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The fault proxy's API server, running.
pub struct ProxyServer {
    addr: SocketAddr,
    proxies: Proxies,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl ProxyServer {
    /// Serves the API on `listen` (port 0 picks one: see [`Self::addr`])
    /// over a fresh set of proxies.
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(listen, Proxies::new()).await
    }

    /// Serves the API over `proxies`.
    pub async fn start_with(listen: SocketAddr, proxies: Proxies) -> std::io::Result<Self> {
        let server = kit::server::HttpServer::bind(listen).await?;
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let app = router(proxies.clone());
        let token = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = server.serve(app, token).await {
                tracing::error!(error = %e, "chaos proxy API stopped");
            }
        });
        tracker.close();
        Ok(Self {
            addr,
            proxies,
            shutdown,
            tracker,
        })
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxies, to drive without HTTP.
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// Stops the API and every proxy.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.wait().await;
        self.proxies.shutdown().await;
    }
}

impl Drop for ProxyServer {
    /// A server dropped without [`Self::shutdown`] (a test that panicked)
    /// still stops serving and closes its proxies.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.proxies.stop_all();
    }
}
