//! Bad input: every refusal is the OpenAI envelope with the right status,
//! none is a 500, and none reaches a backend.

use crate::helpers::{backends, config_for, spawn_app};
use serde_json::{json, Value};
use testkit::openai::Script;

#[tokio::test]
async fn bad_requests_are_refused_before_any_backend() {
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    config.max_request_body_bytes = 64 * 1024;
    let app = spawn_app(backends.clone(), config).await;
    let message = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("no model", json!({"messages": message}).to_string().into(), 400, ""),
        ("unknown model", json!({"model": "nope", "messages": message}).to_string().into(), 404, "model_not_found"),
        ("messages not a list", json!({"model": "chat", "messages": "hi"}).to_string().into(), 400, ""),
        ("role not a string", json!({"model": "chat", "messages": [{"role": 7, "content": "x"}]}).to_string().into(), 400, ""),
        ("max_tokens negative", json!({"model": "chat", "messages": message, "max_tokens": -1}).to_string().into(), 400, ""),
        ("max_tokens above the cap", json!({"model": "chat", "messages": message, "max_tokens": 100000}).to_string().into(), 400, "invalid_value"),
        ("stream as a string", json!({"model": "chat", "messages": message, "stream": "true"}).to_string().into(), 400, ""),
        ("invalid JSON", b"{\"model\": \"chat\", ".to_vec(), 400, ""),
        ("an array body", b"[1, 2]".to_vec(), 400, ""),
        ("over the size limit", json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(70 * 1024)}]}).to_string().into(), 413, "request_too_large"),
    ];
    for (what, body, status, code) in cases {
        let response = app
            .post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let error: Value = response.json().await.expect(what);
        assert!(error["error"]["message"].is_string(), "{what}: {error}");
        assert!(error["error"]["type"].is_string(), "{what}: {error}");
        if !code.is_empty() {
            assert_eq!(error["error"]["code"], code, "{what}");
        }
    }
    // No key named by the gateway.
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.url))
        .json(&json!({"model": "chat", "messages": message}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(
        backends[0].stats().requests,
        0,
        "nothing reached the backend"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_usage_query_with_bad_times_is_a_400() {
    let backends = backends(vec![Script::default()]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    for query in [
        "from=yesterday",
        "from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
    ] {
        let response = app
            .http
            .get(format!("{}/v1/usage?{query}", app.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
    }
    app.stop().await;
}
