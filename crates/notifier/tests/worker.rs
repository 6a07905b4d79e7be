//! The notifier end to end on the in-process bus and SQLite: events in,
//! signed webhook POSTs out (to a receiver on loopback, allowed
//! explicitly), retries, dead letters and their replay over HTTP.

use bus::{Event, InProcessBus, Publisher};
use chrono::Utc;
use kit::server::HttpServer;
use kit::{CancellationToken, SystemClock};
use notifier::storage::NotificationStore;
use notifier::{Notifier, NotifierConfig, Secret, WebhookConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use testkit::webhook::Receiver;

const SECRET: &str = "test-secret";
const WAIT: Duration = Duration::from_secs(20);

struct App {
    bus: InProcessBus,
    store: Arc<dyn NotificationStore>,
    receiver: Receiver,
    base: String,
    notifier: Option<Notifier>,
    shutdown: CancellationToken,
    _dir: Arc<tempfile::TempDir>,
}

fn fast_retries() -> NotifierConfig {
    NotifierConfig {
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..Default::default()
    }
}

async fn spawn(config: NotifierConfig) -> App {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let url = format!("sqlite://{}", dir.path().join("n.db").display());
    let store = notifier::storage::connect(&url, &Default::default())
        .await
        .expect("store");
    let receiver = Receiver::start(SECRET).await;
    spawn_on(config, store, receiver, InProcessBus::new(), dir).await
}

async fn spawn_on(
    config: NotifierConfig,
    store: Arc<dyn NotificationStore>,
    receiver: Receiver,
    bus: InProcessBus,
    dir: Arc<tempfile::TempDir>,
) -> App {
    let webhook =
        WebhookConfig::from_settings(Some(receiver.url()), Some(&Secret::new(SECRET)), true)
            .expect("webhook config");
    let notifier = Notifier::build(
        config,
        webhook,
        store.clone(),
        Arc::new(bus.clone()),
        Arc::new(SystemClock),
        kit::tasks::Supervisor::new().for_module(notifier::SERVICE),
    )
    .expect("notifier");
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let router = kit::http::stack(notifier.router(), notifier::SERVICE, &Default::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(router, shutdown.clone()));
    App {
        bus,
        store,
        receiver,
        base,
        notifier: Some(notifier),
        shutdown,
        _dir: dir,
    }
}

impl App {
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(n) = self.notifier.take() {
            n.shutdown().await;
        }
    }

    async fn dead(&self) -> Vec<Value> {
        let body: Value = reqwest::get(format!("{}/api/v1/notifications/dead", self.base))
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }
}

fn event(id: &str) -> Event {
    Event {
        id: id.to_string(),
        subject: "orders.created".into(),
        key: "ord_1".into(),
        payload: format!("{{\"event_id\":\"{id}\"}}").into(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        occurred_at: Utc::now(),
    }
}

#[tokio::test]
async fn each_event_reaches_the_webhook_signed_and_redeliveries_are_no_ops() {
    let mut app = spawn(NotifierConfig::default()).await;
    app.bus
        .publish(&[event("e1"), event("e2")])
        .await
        .expect("publish");
    app.receiver
        .wait_until(WAIT, "2 events", |r| r.accepted().len() == 2)
        .await;
    assert_eq!(app.receiver.bad_signatures(), 0);
    assert!(app.store.is_processed("e1").await.expect("lookup"));
    app.stop().await;

    // A new process (fresh in-process bus) receives e1 again: the
    // processed-events table makes it a no-op.
    let (store, receiver, dir) = (app.store.clone(), app.receiver.clone(), app._dir.clone());
    let mut again = spawn_on(
        NotifierConfig::default(),
        store,
        receiver,
        InProcessBus::new(),
        dir,
    )
    .await;
    again
        .bus
        .publish(&[event("e1"), event("e3")])
        .await
        .expect("publish");
    again
        .receiver
        .wait_until(WAIT, "e3", |r| r.accepted().contains(&"e3".to_string()))
        .await;
    assert_eq!(again.receiver.counts()["e1"], 1);
    again.stop().await;
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_delivered() {
    let mut app = spawn(fast_retries()).await;
    app.receiver.fail_next(503, 2);
    app.bus.publish(&[event("retry")]).await.expect("publish");
    app.receiver
        .wait_until(WAIT, "delivery", |r| r.accepted().len() == 1)
        .await;
    assert_eq!(app.receiver.requests(), 3);
    assert!(app.dead().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn exhausted_events_are_dead_lettered_and_can_be_replayed() {
    let mut app = spawn(fast_retries()).await;
    app.receiver.fail_next(500, 1000);
    app.bus.publish(&[event("doomed")]).await.expect("publish");
    let dead = testkit::eventually("the dead letter", WAIT, async || {
        Some(app.dead().await).filter(|dead| !dead.is_empty())
    })
    .await;
    assert_eq!(dead[0]["event_id"], "doomed");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["last_error"], "webhook answered 500");
    assert_eq!(dead[0]["payload"]["event_id"], "doomed");
    assert_eq!(app.receiver.requests(), 3);

    let client = reqwest::Client::new();
    let replay_url = format!(
        "{}/api/v1/notifications/dead/{}/replay",
        app.base, dead[0]["id"]
    );
    let failed = client.post(&replay_url).send().await.expect("replay");
    assert_eq!(failed.status(), 502);
    assert_eq!(app.dead().await[0]["attempts"], 4);

    app.receiver.fail_next(500, 0);
    let replayed = client.post(&replay_url).send().await.expect("replay");
    assert_eq!(replayed.status(), 200);
    assert_eq!(app.receiver.accepted(), ["doomed"]);
    assert!(app.dead().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_rejection_is_dead_lettered_at_once() {
    let mut app = spawn(fast_retries()).await;
    app.receiver.fail_next(400, 1);
    app.bus
        .publish(&[event("rejected")])
        .await
        .expect("publish");
    testkit::eventually("the dead letter", WAIT, async || {
        (!app.dead().await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(app.dead().await[0]["attempts"], 1);
    assert_eq!(app.receiver.requests(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_dead_letter_api_answers_bad_input_with_problems() {
    let mut app = spawn(NotifierConfig::default()).await;
    let client = reqwest::Client::new();
    for (method, path, status) in [
        ("POST", "/api/v1/notifications/dead/999/replay", 404),
        ("POST", "/api/v1/notifications/dead/abc/replay", 404),
        ("GET", "/api/v1/notifications/dead?limit=0", 400),
        ("GET", "/api/v1/notifications/dead?limit=x", 400),
        ("GET", "/api/v1/notifications/dead?bogus=1", 400),
    ] {
        let url = format!("{}{path}", app.base);
        let response = match method {
            "POST" => client.post(&url).send().await,
            _ => client.get(&url).send().await,
        }
        .expect("request");
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    app.stop().await;
}

/// The receiver runs `notifier::channel::verify`, what a real receiver
/// would: a forged or tampered POST is refused with 401 and counted, the
/// sender's own signature is accepted.
#[tokio::test]
async fn the_receiver_refuses_forged_signatures() {
    let receiver = Receiver::start(SECRET).await;
    let client = reqwest::Client::new();
    let body = r#"{"id":"evt-1"}"#;
    let post = |signature: String, body: &'static str| {
        client
            .post(receiver.url())
            .header("reliable-event-id", "evt-1")
            .header(notifier::channel::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
    };
    let genuine = notifier::channel::signature(&Secret::new(SECRET), body.as_bytes());
    let forged = notifier::channel::signature(&Secret::new("guess"), body.as_bytes());
    for (signature, sent) in [
        (forged, body),
        (genuine.clone(), r#"{"id":"evt-2"}"#),
        (genuine.replace("sha256=", "sha1="), body),
        (String::new(), body),
    ] {
        let status = post(signature, sent).await.expect("post").status();
        assert_eq!(status, 401);
    }
    assert_eq!(receiver.bad_signatures(), 4);
    assert!(receiver.accepted().is_empty());
    let status = post(genuine, body).await.expect("post").status();
    assert_eq!(status, 204);
    assert_eq!(receiver.accepted(), ["evt-1"]);
}
