//! The event path through the binary: `reliable up` sends order events to
//! the configured webhook; bad webhook configuration stops the start.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{kill, order_body, reliable, run_to_end, start, terminate, SECRET};
use testkit::webhook::Receiver;

#[tokio::test]
async fn up_sends_every_order_event_to_the_signed_webhook() {
    let receiver = Receiver::start(SECRET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", dir.path())
        .env("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url())
        .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
        .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true");
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "up-1")
        .json(&order_body("c1"))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let order: Value = created.json().await.expect("json");
    let id = order["id"].as_str().expect("id");
    let confirm = http
        .post(format!("{base}/api/v1/orders/{id}/confirm"))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirm.status(), 200);
    receiver
        .wait_until(Duration::from_secs(30), "2 events", |r| {
            r.accepted().len() == 2
        })
        .await;
    // Deliveries run concurrently (notifier.concurrency): one order's
    // events leave the outbox in order but may arrive in either order.
    let mut types: Vec<String> = receiver
        .deliveries()
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    types.sort();
    assert_eq!(types, ["orders.confirmed", "orders.created"]);
    assert_eq!(receiver.bad_signatures(), 0);
    for delivery in receiver.deliveries() {
        let body: Value = serde_json::from_slice(&delivery.body).expect("json");
        assert_eq!(body["order"]["id"], id);
    }

    // The receiver sees a delivery before the notifier records it as done,
    // so wait (bounded) for the counters to catch up.
    let needles = [
        r#"http_server_request_duration_seconds_count{service="orders",http_route="/api/v1/orders""#,
        "orders_outbox_published_total",
        r#"notifier_delivery_attempts_total{channel="webhook",outcome="success"} 2"#,
        "notifier_end_to_end_duration_seconds_bucket",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = support::get_text(&http, &format!("{base}/metrics")).await;
        let missing: Vec<_> = needles.iter().filter(|n| !metrics.contains(**n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing after 30 s: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminate(app).await.success());
}

/// The in-process bus keeps nothing across a crash: `up` re-publishes what
/// was published but never acked, from the outbox.
#[tokio::test]
async fn up_redelivers_after_sigkill_what_the_worker_had_not_acked() {
    let receiver = Receiver::start(SECRET).await;
    receiver.fail_next(503, usize::MAX);
    let dir = tempfile::tempdir().expect("dir");
    let command = || {
        let mut cmd = reliable();
        cmd.arg("up")
            .env("RELIABLE_LISTEN", "127.0.0.1:0")
            .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
            .env("RELIABLE_DATA_DIR", dir.path())
            .env("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url())
            .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
            .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true")
            .env("RELIABLE_NOTIFIER_BACKOFF_BASE", "10s");
        cmd
    };
    let mut app = start(command());
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = http
            .post(format!("http://{}/api/v1/orders", app.addr))
            .header("idempotency-key", format!("crash-{i}"))
            .json(&order_body("c1"))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201);
        let order: Value = created.json().await.expect("json");
        ids.push(order["id"].as_str().expect("id").to_string());
    }
    // Every event reached the worker (and failed) before the kill.
    receiver
        .wait_until(Duration::from_secs(30), "5 attempts", |r| r.requests() >= 5)
        .await;
    kill(&mut app);
    receiver.fail_next(503, 0);
    let app = start(command());
    receiver
        .wait_until(Duration::from_secs(30), "5 deliveries", |r| {
            r.accepted().len() >= 5
        })
        .await;
    let delivered: Vec<String> = receiver
        .deliveries()
        .iter()
        .filter_map(|d| serde_json::from_slice::<Value>(&d.body).ok())
        .filter_map(|b| b["order"]["id"].as_str().map(str::to_string))
        .collect();
    for id in &ids {
        assert!(delivered.contains(id), "{id} was lost in the crash");
    }
    assert!(terminate(app).await.success());
}

#[test]
fn private_and_metadata_webhook_targets_are_refused_at_start() {
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/",
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let mut cmd = reliable();
        cmd.arg("up")
            .env("RELIABLE_LISTEN", "127.0.0.1:0")
            .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
            .env("RELIABLE_DATA_DIR", dir.path())
            .env("RELIABLE_NOTIFIER_WEBHOOK_URL", url)
            .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET);
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains("notifier.webhook_url"), "{stderr}");
        assert!(!stderr.contains(SECRET), "the secret leaked: {stderr}");
    }
}

#[test]
fn a_webhook_without_a_secret_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_DATA_DIR", dir.path())
        .env("RELIABLE_NOTIFIER_WEBHOOK_URL", "https://example.com/hook")
        .env_remove("RELIABLE_NOTIFIER_WEBHOOK_SECRET");
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("notifier.webhook_secret"), "{stderr}");
}

#[test]
fn serving_orders_without_nats_names_the_missing_setting() {
    let database_url = testkit::postgres().create_database();
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "orders,notifier"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", &database_url)
        .env_remove("RELIABLE_NATS_URL");
    let (code, stderr) = run_to_end(cmd);
    assert_ne!(code, 0);
    assert!(stderr.contains("RELIABLE_NATS_URL"), "{stderr}");
    assert!(!stderr.contains(&database_url), "the database URL leaked");
}
