//! The floor under the shortener's redirect: the same HTTP stack with none
//! of the platform's work.
//!
//! kit's server (hyper's HTTP/1.1 builder, header read timeout, graceful
//! shutdown) and an axum router shaped like the shortener's (`/{slug}`
//! beside two fixed routes), whose handler answers every slug with a 302
//! to a fixed URL: no cache, no visit, no metrics, no request id, no trace
//! context. `scripts/bench-redirect` measures it beside nginx and
//! `reliable`, which splits the gap to nginx into what the stack costs and
//! what the platform adds.
//!
//! ```text
//! cargo run --release -p reliable-floors --example reference_redirect -- 127.0.0.1:8090
//! ```
//!
//! `FLOOR_CONNECTION_THREADS=N` (default 0) serves it on kit's connection
//! threads, as `http.connection_threads` does for the platform.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LOCATION: HeaderValue = HeaderValue::from_static("https://example.com/landing");

async fn redirect() -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, LOCATION)])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(listen) = std::env::args().nth(1) else {
        return Err("usage: reference_redirect LISTEN_ADDR".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/links", get(|| async { "[]" }))
        .route("/{slug}", get(redirect));
    // `FLOOR_CONNECTION_THREADS=N`: kit's `http.connection_threads`
    // (default 0, the shared runtime).
    let threads: usize = match std::env::var("FLOOR_CONNECTION_THREADS") {
        Ok(n) => n.parse()?,
        Err(_) => 0,
    };
    let mut server = kit::server::HttpServer::bind(listen).await?;
    // Kept until the server has stopped.
    let connection_threads = match threads {
        0 => None,
        n => Some(kit::server::ConnectionThreads::start(n)?),
    };
    if let Some(threads) = &connection_threads {
        server = server.with_connection_threads(threads.clone());
    }
    eprintln!("reference_redirect on http://{}", server.local_addr());
    let shutdown = kit::CancellationToken::new();
    let signal = kit::shutdown::signal();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        signal.await;
        stop.cancel();
    });
    server.serve(router, shutdown).await?;
    Ok(())
}
