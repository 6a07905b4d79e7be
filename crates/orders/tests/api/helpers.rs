use bus::{InProcessBus, Subscriber, Subscription};
use chrono::{DateTime, Utc};
use kit::health::Readiness;
use kit::server::HttpServer;
use kit::{CancellationToken, ManualClock};
use orders::storage::{OrderStore, SqliteStore};
use orders::{Orders, OrdersConfig, RelayTarget};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub clock: ManualClock,
    pub events: Box<dyn Subscription>,
    shutdown: CancellationToken,
    module: Option<Orders>,
    _dir: tempfile::TempDir,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("orders.db").display());
    let store: Arc<dyn OrderStore> = Arc::new(
        SqliteStore::connect(&url, &Default::default())
            .await
            .expect("sqlite"),
    );
    let clock = ManualClock::new(start_time());
    let (bus, acked) = InProcessBus::with_ack_feed();
    let events = bus.subscribe("test").await.expect("subscribe");
    let module = Orders::build(
        OrdersConfig::default(),
        store.clone(),
        RelayTarget {
            publisher: Arc::new(bus),
            acked: Some(acked),
        },
        Arc::new(clock.clone()),
        kit::tasks::Supervisor::new().for_module(orders::SERVICE),
    )
    .await
    .expect("orders");
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let readiness = Readiness::new();
    readiness.add_check(module.readiness_check());
    let router = module
        .router()
        .merge(readiness.routes())
        .merge(kit::metrics::routes());
    let router = kit::http::stack(router, orders::SERVICE, &kit::http::HttpConfig::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(router, shutdown.clone()));
    TestApp {
        base,
        client: Client::new(),
        clock,
        events,
        shutdown,
        module: Some(module),
        _dir: dir,
    }
}

pub fn order_body(customer: &str) -> Value {
    json!({
        "customer_id": customer,
        "currency": "EUR",
        "items": [
            {"sku": "book-1", "quantity": 2, "unit_price_minor": 1250},
            {"sku": "pen-9", "quantity": 1, "unit_price_minor": 99}
        ]
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_order(&self, key: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url("/api/v1/orders")).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.expect("request")
    }

    pub async fn create(&self, key: &str, customer: &str) -> Value {
        let response = self.post_order(Some(key), &order_body(customer)).await;
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    }

    pub async fn post(&self, path: &str) -> Response {
        self.client
            .post(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// The next event the relay published, acked.
    pub async fn next_event(&mut self) -> bus::Event {
        let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), self.events.next())
            .await
            .expect("an event within 10 s")
            .expect("delivery");
        let event = delivery.event.clone();
        delivery.ack().await.expect("ack");
        event
    }

    pub async fn order_count(&self, customer: &str) -> usize {
        let page: Value = self
            .get(&format!("/api/v1/orders?customer_id={customer}&limit=500"))
            .await
            .json()
            .await
            .expect("json");
        page["items"].as_array().map(Vec::len).unwrap_or(0)
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
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
    body
}
