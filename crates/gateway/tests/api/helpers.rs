//! Test harness: upstreams and gateways on port 0, real sockets.
//!
//! An [`Upstream`] answers every path with a JSON echo of what it
//! received (path, query, headers, body size, peer address), or fails as
//! told (500s, hangs), counts its hits, and can be stopped and started
//! again on the same port. [`echo_router`] is the same upstream as a
//! router, for in-process pools. [`spawn_gateway`] builds a gateway from a config and serves
//! it through kit's stack like the binary does.

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{TimeZone, Utc};
use gateway::keys::KeyStore;
use gateway::splits::SplitStore;
use gateway::{Gateway, GatewayConfig, PoolConfig, RouteConfig};
use http::StatusCode;
use kit::server::HttpServer;
use kit::{CancellationToken, ManualClock};
use ratelimit::RateLimiter;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OK: u8 = 0;
pub const FAIL_500: u8 = 1;
pub const HANG: u8 = 2;
pub const FAIL_503: u8 = 3;

pub struct UpstreamState {
    pub mode: AtomicU8,
    pub hits: AtomicU64,
    pub ready: std::sync::atomic::AtomicBool,
    pub name: String,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    shutdown: Mutex<
        Option<(
            CancellationToken,
            tokio::task::JoinHandle<std::io::Result<()>>,
        )>,
    >,
}

impl UpstreamState {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(UpstreamState {
            mode: AtomicU8::new(OK),
            hits: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(true),
            name: name.to_string(),
        })
    }
}

/// The echo upstream as a router (served over TCP by [`Upstream`], or
/// called in-process by the gateway).
pub fn echo_router(state: Arc<UpstreamState>) -> Router {
    Router::new().fallback(move |request: Request| answer(state.clone(), request))
}

async fn answer(state: Arc<UpstreamState>, request: Request) -> Response {
    if request.uri().path() == "/readyz" {
        return if state.ready.load(Ordering::Acquire) {
            StatusCode::OK.into_response()
        } else {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        };
    }
    state.hits.fetch_add(1, Ordering::AcqRel);
    match state.mode.load(Ordering::Acquire) {
        FAIL_500 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        FAIL_503 => return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        HANG => std::future::pending::<()>().await,
        _ => {}
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // `X-Echo-Csp: <policy>` asks for an answer with a policy of its own.
    let csp = parts.headers.get("x-echo-csp").cloned();
    let mut response = axum::Json(json!({
        "upstream": state.name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_len": body.len(),
        "peer": peer,
    }))
    .into_response();
    if let Some(csp) = csp {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        let state = UpstreamState::new(name);
        let upstream = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            state,
            shutdown: Mutex::new(None),
        };
        let addr = upstream.addr;
        upstream.serve_on(addr).await
    }

    async fn serve_on(mut self, addr: SocketAddr) -> Self {
        let server = HttpServer::bind(addr).await.expect("bind upstream");
        self.addr = server.local_addr();
        self.spawn(server);
        self
    }

    fn spawn(&self, server: HttpServer) {
        let router = echo_router(self.state.clone());
        let token = CancellationToken::new();
        let task = tokio::spawn(server.serve(router, token.clone()));
        *self.shutdown.lock().expect("lock") = Some((token, task));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: u8) {
        self.state.mode.store(mode, Ordering::Release);
    }

    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::Acquire)
    }

    /// Graceful stop, as a pod on SIGTERM: in-flight requests finish.
    pub async fn stop(&self) {
        let stopping = self.shutdown.lock().expect("lock").take();
        if let Some((token, task)) = stopping {
            token.cancel();
            let _ = task.await;
        }
    }

    /// Serves again on the same port.
    pub async fn start_again(&self) {
        let server = HttpServer::bind(self.addr).await.expect("rebind upstream");
        self.spawn(server);
    }
}

pub fn pool(endpoints: &[&Upstream]) -> PoolConfig {
    PoolConfig {
        endpoints: endpoints.iter().map(|u| u.url()).collect(),
        ca_file: None,
    }
}

/// A config with one pool per `(name, upstreams)` and the given routes;
/// active health checks off (tests that want them turn them on).
/// Trusted proxies from CIDR strings (the platform parses
/// `http.trusted_proxies` the same way).
pub fn trusted(cidrs: &[&str]) -> kit::forwarded::TrustedProxies {
    let cidrs: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
    kit::forwarded::TrustedProxies::parse(&cidrs).expect("valid CIDRs")
}

pub fn config(pools: &[(&str, &[&Upstream])], routes: Vec<RouteConfig>) -> GatewayConfig {
    let mut config = GatewayConfig {
        routes,
        ..GatewayConfig::default()
    };
    config.health.interval = Duration::ZERO;
    for (name, upstreams) in pools {
        config.pools.insert(name.to_string(), pool(upstreams));
    }
    config
}

pub fn clock() -> ManualClock {
    ManualClock::new(
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
    )
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    pub clock: ManualClock,
    shutdown: CancellationToken,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The Prometheus text of `/metrics` (process-wide in a test binary).
    pub async fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Deps {
    /// In-process pools by name.
    pub in_process: BTreeMap<String, Router>,
    pub keys: Option<Arc<dyn KeyStore>>,
    /// Where runtime canary splits are kept; none keeps them in memory.
    pub splits: Option<Arc<dyn SplitStore>>,
    pub limiter: Option<Arc<dyn RateLimiter>>,
    pub clock: ManualClock,
    /// The stack's `[http]` settings (`request_timeout`, the time the
    /// gateway's catch-all is handed).
    pub http: kit::http::HttpConfig,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            in_process: BTreeMap::new(),
            keys: None,
            splits: None,
            limiter: None,
            clock: clock(),
            http: kit::http::HttpConfig::default(),
        }
    }
}

pub async fn spawn_gateway(config: GatewayConfig) -> TestGateway {
    spawn_gateway_with(config, Deps::default()).await
}

pub async fn spawn_gateway_with(config: GatewayConfig, deps: Deps) -> TestGateway {
    kit::metrics::install();
    let clock = deps.clock;
    let limiter = match deps.limiter {
        Some(l) => l,
        None => gateway::limiter(
            None,
            gateway::RateLimitWhenDown::Open,
            Arc::new(clock.clone()),
        )
        .await
        .expect("limiter"),
    };
    let gateway = Gateway::build(
        config,
        deps.in_process,
        deps.keys,
        deps.splits,
        limiter,
        Arc::new(clock.clone()),
    )
    .expect("build");
    // As the module does before serving: stored splits in force.
    gateway.refresh_splits().await.expect("stored splits");
    // As the platform stacks it: the proxy is the catch-all, called
    // around axum for every path none of the routes match.
    let routes = gateway.routes().merge(kit::metrics::routes());
    let router = kit::http::front(
        routes,
        gateway::SERVICE,
        &deps.http,
        Some(gateway.catch_all()),
    );
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind gateway");
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(router, shutdown.clone()));
    let checks = gateway.clone();
    let token = shutdown.clone();
    tokio::spawn(async move { checks.health_checks(token).await });
    TestGateway {
        addr,
        gateway,
        clock,
        shutdown,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

/// The echo of a GET of `/` sent with `X-Forwarded-For: chain`.
pub async fn echo_forwarded_for(gw: &TestGateway, chain: &str) -> Value {
    let response = client()
        .get(gw.url("/"))
        .header("x-forwarded-for", chain)
        .send()
        .await
        .expect("request");
    json(response).await
}

/// Sends raw bytes (for requests reqwest would refuse or normalise) and
/// returns the status code and the whole response text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Waits (bounded, 10 s) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    testkit::eventually(what, Duration::from_secs(10), async || {
        condition().then_some(())
    })
    .await;
}
