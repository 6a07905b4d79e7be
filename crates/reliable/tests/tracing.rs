//! One trace across the event path, over OTLP: `reliable serve --target
//! orders,notifier` on PostgreSQL and NATS JetStream exports to a private
//! OTLP/HTTP receiver, an order is created with a `traceparent`, and the
//! trace must run HTTP request (SERVER, orders) -> outbox publish
//! (PRODUCER, orders) -> notifier delivery (CONSUMER, notifier) -> webhook
//! call (CLIENT, notifier), each span the parent of the next, with the
//! webhook request carrying the CLIENT span's `traceparent`.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{order_body, reliable, start, terminate, SECRET};
use testkit::otlp::{Collector, ReceivedSpan, SpanKind};
use testkit::webhook::Receiver;
use testkit::NatsServer;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(60);

/// The one span of `kind` in `spans`, if exactly one.
fn only(spans: &[ReceivedSpan], kind: SpanKind) -> Option<ReceivedSpan> {
    let mut of_kind = spans.iter().filter(|s| s.kind == kind);
    let span = of_kind.next()?;
    of_kind.next().is_none().then(|| span.clone())
}

#[tokio::test]
async fn an_order_is_one_trace_from_request_to_webhook_call() {
    let collector = Collector::start().await;
    let receiver = Receiver::start(SECRET).await;
    let nats = NatsServer::start();
    let database_url = testkit::postgres().create_database();
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "orders,notifier"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", &database_url)
        .env("RELIABLE_NATS_URL", nats.url())
        .env("RELIABLE_NOTIFY_WEBHOOK_URL", receiver.url())
        .env("RELIABLE_NOTIFY_WEBHOOK_SECRET", SECRET)
        .env("RELIABLE_NOTIFY_ALLOW_PRIVATE", "true")
        .env("RELIABLE_NOTIFIER__LOG_CHANNEL", "false")
        .env("RELIABLE_ORDERS__RELAY_POLL_INTERVAL", "50ms")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        // Export every 100 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let app = start(cmd);

    let created = reqwest::Client::new()
        .post(format!("http://{}/api/v1/orders", app.addr))
        .header("idempotency-key", "traced-1")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&order_body("c1"))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let order: Value = created.json().await.expect("json");
    let order_id = order["id"].as_str().expect("id").to_string();

    receiver
        .wait_until(WAIT, "the orders.created delivery", |r| {
            r.accepted().len() == 1
        })
        .await;
    let delivery = receiver.deliveries().remove(0);
    let (request, publish, process, call) =
        testkit::eventually("the four spans of the trace", WAIT, async || {
            let spans = collector.trace(TRACE_ID);
            Some((
                only(&spans, SpanKind::Server)?,
                only(&spans, SpanKind::Producer)?,
                only(&spans, SpanKind::Consumer)?,
                only(&spans, SpanKind::Client)?,
            ))
        })
        .await;
    assert_eq!(collector.undecodable(), 0);

    // HTTP request: SERVER, orders, child of the caller.
    assert_eq!(request.service, "orders");
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.name, "POST /api/v1/orders");
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.route"), Some("/api/v1/orders"));
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));

    // Outbox publish: PRODUCER, orders, child of the request.
    assert_eq!(publish.service, "orders");
    assert_eq!(publish.parent_span_id, request.span_id);
    assert_eq!(publish.name, "publish orders.created");
    assert_eq!(publish.attribute("messaging.system"), Some("nats"));
    assert_eq!(
        publish.attribute("messaging.destination.name"),
        Some("orders.created")
    );
    assert_eq!(
        publish.attribute("messaging.operation.type"),
        Some("publish")
    );
    assert_eq!(
        publish.attribute("messaging.message.id"),
        Some(delivery.event_id.as_str())
    );

    // Delivery: CONSUMER, notifier, child of the publish.
    assert_eq!(process.service, "notifier");
    assert_eq!(process.parent_span_id, publish.span_id);
    assert_eq!(process.name, "process orders.created");
    assert_eq!(process.attribute("messaging.system"), Some("nats"));
    assert_eq!(
        process.attribute("messaging.operation.type"),
        Some("process")
    );
    assert_eq!(
        process.attribute("messaging.message.id"),
        Some(delivery.event_id.as_str())
    );

    // Webhook call: CLIENT, notifier, child of the delivery; the receiver
    // got its context.
    assert_eq!(call.service, "notifier");
    assert_eq!(call.parent_span_id, process.span_id);
    assert_eq!(call.attribute("http.request.method"), Some("POST"));
    assert_eq!(call.attribute("server.address"), Some("127.0.0.1"));
    // The path may be the webhook's credential: never in a span.
    let origin = receiver.url().split("/hook").next().unwrap_or_default();
    assert_eq!(
        call.attribute("url.full"),
        Some(format!("{origin}/REDACTED").as_str())
    );
    assert_eq!(call.attribute("http.response.status_code"), Some("204"));
    assert_eq!(
        delivery.traceparent.as_deref(),
        Some(format!("00-{TRACE_ID}-{}-01", call.span_id).as_str())
    );
    let body: Value = serde_json::from_slice(&delivery.body).expect("json");
    assert_eq!(body["order"]["id"], order_id.as_str());

    // The routing tag is the Resource's business, not an attribute.
    for span in [&request, &publish, &process, &call] {
        assert_eq!(span.attribute("reliable.module"), None, "{span:?}");
    }
    assert!(terminate(app).await.success());
}

/// Through the gateway: `reliable up` (the gateway in front of in-process
/// modules) exports the gateway's SERVER span, a CLIENT span for the
/// upstream attempt, and the shortener's SERVER span, each the parent of
/// the next, the CLIENT span showing the endpoint and route prefix but
/// never the client's path or query.
#[tokio::test]
async fn a_request_through_the_gateway_has_a_client_span_per_upstream_call() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = reliable();
    cmd.arg("up")
        .arg("--data-dir")
        .arg(dir.path())
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let app = start(cmd);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let created = http
        .post(format!("http://{}/api/v1/links", app.addr))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": "traced"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let redirect = http
        .get(format!("http://{}/traced?token=s3cret", app.addr))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);

    let (front, call, module) =
        testkit::eventually("the gateway's three spans", WAIT, async || {
            let spans = collector.trace(TRACE_ID);
            let servers: Vec<&ReceivedSpan> = spans
                .iter()
                .filter(|s| s.kind == SpanKind::Server)
                .collect();
            let front = servers.iter().find(|s| s.service == "gateway")?;
            let module = servers.iter().find(|s| s.service == "shortener")?;
            Some((
                (*front).clone(),
                only(&spans, SpanKind::Client)?,
                (*module).clone(),
            ))
        })
        .await;
    assert_eq!(front.parent_span_id, CALLER_SPAN);
    assert_eq!(call.service, "gateway");
    assert_eq!(call.parent_span_id, front.span_id);
    assert_eq!(call.name, "GET");
    assert_eq!(call.attribute("http.request.method"), Some("GET"));
    assert_eq!(call.attribute("gateway.pool"), Some("shortener"));
    assert_eq!(call.attribute("http.response.status_code"), Some("302"));
    assert_eq!(module.parent_span_id, call.span_id);
    assert_eq!(module.attribute("http.route"), Some("/{slug}"));
    for span in collector.trace(TRACE_ID) {
        assert!(
            !format!("{span:?}").contains("s3cret"),
            "the client's query reached a span: {span:?}"
        );
    }
    assert!(terminate(app).await.success());
}
