//! The floor under the gateway's proxy cost: a bare hyper reverse proxy.
//!
//! It does nothing the gateway does (no routing, limits, keys, breakers,
//! retries, metrics, logs or header rewriting): hyper's HTTP/1.1 server
//! hands each request, body streaming, to hyper-util's pooled client and
//! the answer straight back. `scripts/bench-gateway` measures it beside
//! nginx and the gateway, so the gateway's cost is split into what the
//! HTTP stack costs and what the gateway adds.
//!
//! ```text
//! cargo run --release -p reliable-floors --example reference_proxy -- 127.0.0.1:8081 127.0.0.1:8080
//! ```
//! (listen address, upstream address.)
//!
//! `FLOOR_CONNECTION_THREADS=N` (default 0) runs it the way the gateway's
//! `http.connection_threads` does: N threads, each with a single-threaded
//! runtime, its own listener on the port (`SO_REUSEPORT`) and its own
//! upstream connections. 0 is one multi-threaded runtime, hyper's usual
//! shape.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Incoming>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: reference_proxy LISTEN_ADDR UPSTREAM_HOST:PORT".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let threads: usize = match std::env::var("FLOOR_CONNECTION_THREADS") {
        Ok(n) => n.parse()?,
        Err(_) => 0,
    };
    eprintln!("reference_proxy: {listen} -> {upstream}, connection threads: {threads}");
    if threads == 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                serve(listener, upstream).await
            })
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let mut running = Vec::with_capacity(threads);
    for _ in 0..threads {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.bind(listen)?;
        let upstream = upstream.clone();
        running.push(std::thread::spawn(move || {
            runtime.block_on(async move { serve(socket.listen(1024)?, upstream).await })
        }));
    }
    for thread in running {
        thread
            .join()
            .map_err(|_| "a connection thread panicked")?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Accepts and proxies for ever, with upstream connections of this
/// runtime's own.
async fn serve(
    listener: tokio::net::TcpListener,
    upstream: String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = client();
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let client = client.clone();
                let uri = format!("http://{upstream}{target}").parse::<Uri>();
                async move {
                    *request.uri_mut() = uri.map_err(|e| std::io::Error::other(e.to_string()))?;
                    client
                        .request(request)
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
