use crate::helpers::{assert_problem, order_body, spawn_app, start_time};
use serde_json::Value;

#[tokio::test]
async fn create_computes_the_total_and_publishes_order_created() {
    let mut app = spawn_app().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("idempotency-key", "k-1")
        .header("traceparent", traceparent)
        .json(&order_body("cust-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let order: Value = response.json().await.expect("json");
    assert_eq!(order["total_minor"], 2599);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["items"][0]["line_total_minor"], 2500);
    assert_eq!(
        location,
        format!("/api/v1/orders/{}", order["id"].as_str().expect("id"))
    );
    let fetched: Value = app.get(&location).await.json().await.expect("json");
    assert_eq!(fetched, order);

    let event = app.next_event().await;
    assert_eq!(event.subject, "orders.created");
    assert_eq!(event.key, order["id"].as_str().expect("id"));
    assert_eq!(event.occurred_at, start_time());
    let payload: Value = serde_json::from_slice(&event.payload).expect("json");
    assert_eq!(payload["type"], "order.created");
    assert_eq!(payload["event_id"], event.id.as_str());
    assert_eq!(payload["order"], order);
    // One trace from the HTTP request to the event.
    let tp = event.traceparent.expect("traceparent");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert_ne!(tp, traceparent, "the event gets its own span id");
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_key_returns_the_original_response_and_a_changed_body_is_422() {
    let mut app = spawn_app().await;
    let first = app.post_order(Some("same"), &order_body("c")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    // Even after the order changed, the replay is the original response.
    let id = first["id"].as_str().expect("id").to_string();
    assert_eq!(
        app.post(&format!("/api/v1/orders/{id}/cancel"))
            .await
            .status(),
        200
    );
    let replay = app.post_order(Some("same"), &order_body("c")).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay, first);

    let mut changed = order_body("c");
    changed["items"][0]["quantity"] = 3.into();
    assert_problem(
        app.post_order(Some("same"), &changed).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.order_count("c").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn keys_expire_after_the_configured_time() {
    let mut app = spawn_app().await;
    app.create("k", "c").await;
    app.clock.advance(chrono::Duration::hours(25));
    let again = app.post_order(Some("k"), &order_body("c")).await;
    assert_eq!(again.status(), 201);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.order_count("c").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_state_machine_is_enforced_and_every_change_is_an_event() {
    let mut app = spawn_app().await;
    let order = app.create("k", "c").await;
    let id = order["id"].as_str().expect("id");
    let confirmed: Value = app
        .post(&format!("/api/v1/orders/{id}/confirm"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (confirmed["status"].as_str(), confirmed["version"].as_i64()),
        (Some("confirmed"), Some(2))
    );
    let shipped = app.post(&format!("/api/v1/orders/{id}/ship")).await;
    assert_eq!(shipped.status(), 200);
    let body = assert_problem(
        app.post(&format!("/api/v1/orders/{id}/cancel")).await,
        409,
        "illegal-transition",
    )
    .await;
    assert_eq!(body["detail"], "cannot cancel an order that is shipped");
    assert_problem(
        app.post(&format!("/api/v1/orders/{id}/confirm")).await,
        409,
        "illegal-transition",
    )
    .await;

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(app.next_event().await.subject);
    }
    assert_eq!(
        got,
        ["orders.created", "orders.confirmed", "orders.shipped"]
    );
    app.stop().await;
}

#[tokio::test]
async fn lists_page_through_a_customers_orders() {
    let mut app = spawn_app().await;
    for i in 0..5 {
        app.create(&format!("k{i}"), "pager").await;
    }
    app.create("other", "someone-else").await;
    let first: Value = app
        .get("/api/v1/orders?customer_id=pager&limit=3")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let second: Value = app
        .get(&format!(
            "/api/v1/orders?customer_id=pager&limit=3&cursor={cursor}"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(second["items"].as_array().map(Vec::len), Some(2));
    assert!(second["next_cursor"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn metrics_and_readiness_are_served() {
    let mut app = spawn_app().await;
    app.create("k", "c").await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("orders_created_total"), "{metrics}");
    assert!(metrics.contains("http_server_request_duration_seconds_count{service=\"orders\""));
    app.stop().await;
}
