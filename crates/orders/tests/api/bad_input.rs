//! Every bad input gets a clear problem+json answer and stores nothing.

use crate::helpers::{assert_problem, order_body, spawn_app};
use serde_json::{json, Value};

#[tokio::test]
async fn bad_idempotency_keys_are_400() {
    let mut app = spawn_app().await;
    assert_problem(
        app.post_order(None, &order_body("c")).await,
        400,
        "idempotency-key-missing",
    )
    .await;
    let long = "k".repeat(256);
    assert_problem(
        app.post_order(Some(&long), &order_body("c")).await,
        400,
        "idempotency-key-invalid",
    )
    .await;
    assert_problem(
        app.post_order(Some("has space"), &order_body("c")).await,
        400,
        "idempotency-key-invalid",
    )
    .await;
    assert_eq!(app.order_count("c").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_422_and_name_the_field() {
    let mut app = spawn_app().await;
    let item = |q: Value, p: Value| json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "s", "quantity": q, "unit_price_minor": p}]});
    let cases: Vec<(Value, &str)> = vec![
        (item(json!(0), json!(1)), "items[0].quantity"),
        (item(json!(-1), json!(1)), "items[0].quantity"),
        (item(json!(2), json!(i64::MAX)), "items[0]"),
        (item(json!(1), json!(-5)), "items[0]"),
        (
            json!({"customer_id": "c", "currency": "EUR", "items": []}),
            "items",
        ),
        (
            json!({"customer_id": "c", "currency": "XYZ", "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 1}]}),
            "currency",
        ),
        (
            json!({"customer_id": "c", "currency": "eur", "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 1}]}),
            "currency",
        ),
        (
            json!({"customer_id": "", "currency": "EUR", "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 1}]}),
            "customer_id",
        ),
        (
            json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "a b", "quantity": 1, "unit_price_minor": 1}]}),
            "items[0].sku",
        ),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let response = app.post_order(Some(&format!("k{i}")), &body).await;
        let problem = assert_problem(response, 422, "invalid-field").await;
        assert_eq!(problem["invalid_params"][0]["name"], field, "{body}");
    }
    // Two lines that each fit but whose sum overflows.
    let big = json!({"sku": "s", "quantity": 1, "unit_price_minor": i64::MAX});
    let sum = json!({"customer_id": "c", "currency": "EUR", "items": [big, big]});
    assert_problem(
        app.post_order(Some("sum"), &sum).await,
        422,
        "invalid-field",
    )
    .await;
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"sku": "s", "quantity": 1, "unit_price_minor": 1}))
        .collect();
    let body = json!({"customer_id": "c", "currency": "EUR", "items": many});
    assert_problem(
        app.post_order(Some("many"), &body).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(app.order_count("c").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn malformed_oversized_and_unknown_shapes_are_refused() {
    let mut app = spawn_app().await;
    // 10,000 items is over the 64 KiB body limit.
    let items: Vec<Value> = (0..10_000)
        .map(|_| json!({"sku": "s", "quantity": 1, "unit_price_minor": 1}))
        .collect();
    let huge = json!({"customer_id": "c", "currency": "EUR", "items": items});
    assert_problem(
        app.post_order(Some("huge"), &huge).await,
        413,
        "body-too-large",
    )
    .await;
    let mut unknown = order_body("c");
    unknown["discount"] = json!(10);
    assert_problem(
        app.post_order(Some("unknown"), &unknown).await,
        422,
        "invalid-body",
    )
    .await;
    let overflowing = json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 1e30}]});
    assert_problem(
        app.post_order(Some("float"), &overflowing).await,
        422,
        "invalid-body",
    )
    .await;
    let malformed = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("idempotency-key", "m")
        .header("content-type", "application/json")
        .body("{\"customer_id\": ")
        .send()
        .await
        .expect("request");
    assert_problem(malformed, 400, "malformed-json").await;
    assert_eq!(app.order_count("c").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn unknown_orders_and_bad_queries_are_problems() {
    let mut app = spawn_app().await;
    assert_problem(
        app.get("/api/v1/orders/ord_00000000000000000000000000000000")
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.get("/api/v1/orders/nonsense").await, 404, "not-found").await;
    assert_problem(
        app.post("/api/v1/orders/nonsense/cancel").await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.get("/api/v1/orders").await, 400, "invalid-query").await;
    assert_problem(
        app.get("/api/v1/orders?customer_id=c&cursor=zzz").await,
        400,
        "invalid-query",
    )
    .await;
    assert_problem(
        app.get("/api/v1/orders?customer_id=c&limit=0").await,
        400,
        "invalid-query",
    )
    .await;
    app.stop().await;
}
