use chrono::{DateTime, Utc};
use kit::health::Readiness;
use kit::server::HttpServer;
use kit::{CancellationToken, ManualClock};
use reqwest::{Client, Response};
use serde_json::Value;
use shortener::storage::{LinkStore, SqliteStore};
use shortener::{Shortener, ShortenerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub clock: ManualClock,
    pub store: Arc<dyn LinkStore>,
    pub db_url: String,
    pub readiness: Readiness,
    shutdown: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    module: Option<Shortener>,
    _dir: tempfile::TempDir,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ShortenerConfig::default()).await
}

pub async fn spawn_app_with(config: ShortenerConfig) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("shortener.db").display());
    let store: Arc<dyn LinkStore> = Arc::new(
        SqliteStore::connect(&db_url, &Default::default())
            .await
            .expect("sqlite"),
    );
    spawn_app_on(config, store, db_url, dir).await
}

/// A replica on a shared PostgreSQL database.
pub async fn spawn_postgres_replica(db_url: &str) -> TestApp {
    spawn_postgres_replica_with(db_url, ShortenerConfig::default()).await
}

pub async fn spawn_postgres_replica_with(db_url: &str, config: ShortenerConfig) -> TestApp {
    let store: Arc<dyn LinkStore> = Arc::new(
        shortener::storage::PostgresStore::connect(db_url, &Default::default())
            .await
            .expect("postgres"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_on(config, store, db_url.to_string(), dir).await
}

/// The shortener on a PostgreSQL primary with its redirect look-ups on the
/// read replica at `read_url` (`config`'s replica bound); also returns the
/// replica, to watch its measured lag.
pub async fn spawn_with_read_replica(
    db_url: &str,
    read_url: &str,
    config: ShortenerConfig,
) -> (TestApp, kit::storage::ReadReplica) {
    let primary: Arc<dyn LinkStore> = Arc::new(
        shortener::storage::PostgresStore::connect(db_url, &config.database)
            .await
            .expect("postgres"),
    );
    let replica = kit::storage::ReadReplica::open(
        read_url,
        &config.database,
        shortener::SERVICE,
        config.replica_settings(),
    )
    .expect("read replica");
    let store: Arc<dyn LinkStore> =
        Arc::new(shortener::storage::ReplicaRouted::new(primary, replica.clone()).expect("routed"));
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_on(config, store, db_url.to_string(), dir).await;
    (app, replica)
}

async fn spawn_app_on(
    config: ShortenerConfig,
    store: Arc<dyn LinkStore>,
    db_url: String,
    dir: tempfile::TempDir,
) -> TestApp {
    let clock = ManualClock::new(start_time());
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let module = Shortener::build(
        config,
        store.clone(),
        Arc::new(clock.clone()),
        &format!("http://{addr}"),
        kit::tasks::Supervisor::new().for_module(shortener::SERVICE),
    )
    .await
    .expect("shortener starts");
    let readiness = Readiness::new();
    readiness.add_check(module.readiness_check());
    // Served as the platform serves it: the redirect is the stack's
    // catch-all, not a route.
    let router = module
        .api_router()
        .merge(readiness.routes())
        .merge(kit::metrics::routes());
    let router = kit::http::stack_with_catch_all(
        router,
        shortener::SERVICE,
        &kit::http::HttpConfig::default(),
        Some(module.redirect_catch_all()),
    );
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(server.serve(router, shutdown.clone()));
    TestApp {
        addr,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        clock,
        store,
        db_url,
        readiness,
        shutdown,
        server: Some(handle),
        module: Some(module),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create(&self, body: Value) -> Value {
        let response = self.post_json("/api/v1/links", &body).await;
        assert_eq!(response.status(), 201, "create {body}");
        response.json().await.expect("json")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Sends `n` GETs of `path` at once; returns their status codes.
    pub async fn concurrent_gets(&self, path: &str, n: usize) -> Vec<u16> {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                let request = self.client.get(self.url(path));
                tokio::spawn(
                    async move { request.send().await.expect("request").status().as_u16() },
                )
            })
            .collect();
        let mut statuses = Vec::with_capacity(n);
        for request in requests {
            statuses.push(request.await.expect("join"));
        }
        statuses
    }

    pub async fn link_count(&self) -> usize {
        let page: Value = self
            .get("/api/v1/links?limit=1000")
            .await
            .json()
            .await
            .expect("json");
        page["items"].as_array().map(Vec::len).unwrap_or(0)
    }

    /// Stops like the binary does: stop accepting, drain, flush visits.
    pub async fn stop(&mut self) {
        self.readiness.start_draining();
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
        if let Some(module) = self.module.take() {
            module.shutdown().await;
        }
    }
}

/// Asserts a problem+json response and returns its body.
pub async fn assert_problem(response: Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["type"], format!("/problems/{kind}"), "{body}");
    assert_eq!(body["status"], status);
    body
}

impl TestApp {
    pub async fn flush_visits(&self) {
        if let Some(module) = &self.module {
            module.flush_visits().await;
        }
    }
}
