//! Secrets never leak: a whole platform (`serve --target all` on
//! PostgreSQL and NATS, logging at debug, exporting traces) is given
//! secrets (a database password, the webhook's HMAC key, an API key a
//! client sends) and driven through every module; then every log line,
//! stderr, `/metrics`, `/openapi.json`, `/readyz`, every exported span,
//! every response body and `reliable config check`'s output are searched
//! for them. Zero hits.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::{order_body, reliable, start_with_stderr, stop};
use testkit::otlp::Collector;
use testkit::webhook::Receiver;
use testkit::NatsServer;

const DB_PASSWORD: &str = "db-pw-5e1f0c9a";
const WEBHOOK_SECRET: &str = "whsec-91c2b7d4";
/// Well formed, unknown to the gateway: refused, and never written down.
const API_KEY: &str = "rlk_3f1e9a7c5b2d4e6f8a0b1c3d5e7f9a2b4c6d8e0f1a3b5c7d9e2f4a6b8c0d1e3f";

fn secrets() -> [&'static str; 3] {
    [DB_PASSWORD, WEBHOOK_SECRET, API_KEY]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_metric_a_document_or_a_span() {
    let collector = Collector::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let nats = NatsServer::start();
    let mut database_url =
        url::Url::parse(&testkit::postgres().create_database()).expect("database URL");
    // The test server trusts local connections, so any password works.
    database_url
        .set_password(Some(DB_PASSWORD))
        .expect("password");
    let dir = tempfile::tempdir().expect("dir");
    let stderr_path = dir.path().join("stderr.log");
    let env = [
        ("RELIABLE_DATABASE_URL", database_url.to_string()),
        ("RELIABLE_NATS_URL", nats.url().to_string()),
        ("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url().to_string()),
        (
            "RELIABLE_NOTIFIER_WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_string(),
        ),
        ("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true".to_string()),
        ("RELIABLE_DATA_DIR", dir.path().display().to_string()),
    ];

    let mut check = Command::new(env!("CARGO_BIN_EXE_reliable"));
    check.args(["config", "check"]).envs(env.iter().cloned());
    let out = check.output().expect("config check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean("config check stdout", &String::from_utf8_lossy(&out.stdout));
    assert_clean("config check stderr", &String::from_utf8_lossy(&out.stderr));

    let mut cmd = reliable();
    cmd.args(["serve", "--target", "all"])
        .envs(env.iter().cloned())
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_LOG", "debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let app = start_with_stderr(cmd, Stdio::from(stderr));
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let mut bodies = Vec::new();
    let link = http
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": "secret-test"}))
        .send()
        .await
        .expect("create link");
    assert_eq!(link.status(), 201);
    bodies.push(link.text().await.expect("body"));
    let redirect = http
        .get(format!("{base}/secret-test"))
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    let order = http
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "secret-1")
        .json(&order_body("c1"))
        .send()
        .await
        .expect("create order");
    assert_eq!(order.status(), 201);
    bodies.push(order.text().await.expect("body"));
    // A key the gateway does not know, in both places a client may send it.
    for (name, value) in [
        ("authorization", format!("Bearer {API_KEY}")),
        ("x-api-key", API_KEY.to_string()),
    ] {
        let refused = http
            .get(format!("{base}/api/v1/links"))
            .header(name, value)
            .send()
            .await
            .expect("keyed request");
        assert_eq!(refused.status(), 401, "{name}");
        bodies.push(refused.text().await.expect("body"));
    }
    receiver
        .wait_until(Duration::from_secs(30), "the order's event", |r| {
            r.accepted().len() == 1
        })
        .await;
    for path in ["/metrics", "/openapi.json", "/readyz", "/api/v1/slo/status"] {
        let text = support::get_text(&http, &format!("{base}{path}")).await;
        assert_clean(path, &text);
    }
    for body in &bodies {
        assert_clean("a response body", body);
    }
    testkit::eventually("spans exported", Duration::from_secs(30), async || {
        (collector.spans().len() >= 4).then_some(())
    })
    .await;

    let lines = stop(app).await;
    assert!(
        lines.len() > 10,
        "too few log lines to mean anything: {lines:?}"
    );
    for line in &lines {
        assert_clean("a log line", line);
    }
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    assert_clean("stderr", &stderr);
    for span in collector.spans() {
        assert_clean("a span", &format!("{span:?}"));
    }
}
