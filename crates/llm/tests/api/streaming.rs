//! Forwarding: bodies as the backend needs them, streams event by event,
//! usage asked for and stripped, the usage ledger.

use crate::helpers::{backends, chat, config_for, spawn_app, TestApp, KEY};
use serde_json::Value;
use std::time::Duration;
use testkit::openai::{Pacing, Script};

#[tokio::test]
async fn a_completion_reaches_the_backend_as_it_needs_it_and_is_accounted() {
    let backends = backends(vec![Script::default()]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let response = app.chat(&chat("chat-alias", false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    let usage = body["usage"].clone();

    let sent = backends[0].requests();
    assert_eq!(sent.len(), 1);
    // The backend's own model name; unknown fields untouched; the cap.
    assert_eq!(sent[0]["model"], "m-b0");
    assert_eq!(sent[0]["x_vendor_option"]["keep"], true);
    assert_eq!(sent[0]["temperature"], 0.5);
    assert_eq!(sent[0]["max_tokens"], 256);

    let report = app.usage_requests(1).await;
    let row = &report["data"][0];
    assert_eq!(row["key"], KEY);
    assert_eq!(row["model"], "chat");
    assert_eq!(row["backend"], "b0");
    assert_eq!(row["prompt_tokens"], usage["prompt_tokens"]);
    assert_eq!(row["completion_tokens"], usage["completion_tokens"]);
    let stats = backends[0].stats();
    assert_eq!(
        row["prompt_tokens"].as_u64(),
        Some(stats.prompt_tokens_served)
    );
    assert_eq!(
        row["completion_tokens"].as_u64(),
        Some(stats.completion_tokens_served)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stream_is_relayed_chunk_by_chunk_without_waiting_for_the_next() {
    let backends = backends(vec![Script {
        tokens: 5,
        pacing: Pacing::Manual,
        ..Script::default()
    }])
    .await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let mut response = app.chat(&chat("chat", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // Chunk k arrives while chunk k+1 does not exist yet: nothing is held
    // back or re-chunked on the way.
    let mut contents = Vec::new();
    for k in 0..5 {
        let mut buffer = String::new();
        while !buffer.contains("tok") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .expect("chunk k arrives before k+1 is released")
                .expect("read")
                .expect("not the end");
            buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
        assert!(buffer.contains(&format!("tok{k} ")), "{buffer}");
        contents.push(buffer);
        backends[0].release(1);
    }
    let rest = TestApp::events(response).await;
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
    // The client asked for no usage: the chunk the gateway asked for is
    // not relayed, but the backend was asked for it.
    assert!(rest.iter().all(|e| !e.contains("\"usage\"")), "{rest:?}");
    assert_eq!(
        backends[0].requests()[0]["stream_options"]["include_usage"],
        true
    );
    let report = app.usage_requests(1).await;
    assert_eq!(report["data"][0]["completion_tokens"], 5);
    assert_eq!(report["data"][0]["estimated_requests"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_asks_for_usage_gets_it_last_before_done() {
    let backends = backends(vec![Script::default()]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let mut body = chat("chat", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let events = TestApp::events(app.chat(&body).await).await;
    let n = events.len();
    assert_eq!(events[n - 1], "[DONE]");
    let usage: Value = serde_json::from_str(&events[n - 2]).expect("usage chunk");
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    app.stop().await;
}

#[tokio::test]
async fn a_backend_without_usage_is_accounted_by_estimate() {
    let backends = backends(vec![Script {
        usage: false,
        tokens: 3,
        ..Script::default()
    }])
    .await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let events = TestApp::events(app.chat(&chat("chat", true)).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let report = app.usage_requests(1).await;
    let row = &report["data"][0];
    assert_eq!(row["estimated_requests"], 1);
    assert_eq!(row["completion_tokens"], 3, "one token per content chunk");
    assert!(row["prompt_tokens"].as_u64().expect("prompt") >= 1);
    app.stop().await;
}

#[tokio::test]
async fn models_lists_public_names_and_aliases_only() {
    let backends = backends(vec![Script::default()]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let list: Value = app
        .http
        .get(format!("{}/v1/models", app.url))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["chat", "chat-alias"]);
    app.stop().await;
}

#[tokio::test]
async fn one_backend_url_serves_the_models_it_lists() {
    let backends = backends(vec![Script {
        models: vec!["smol".into(), "other".into()],
        ..Script::default()
    }])
    .await;
    let mut config = llm::LlmConfig {
        backend_url: Some(backends[0].base_url()),
        ..llm::LlmConfig::default()
    };
    config.health.interval = Duration::ZERO;
    let app = spawn_app(backends.clone(), config).await;
    let response = app.chat(&chat("smol", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(backends[0].requests()[0]["model"], "smol");
    let response = app.chat(&chat("not-listed", false)).await;
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_backend_gets_its_key_its_headers_and_the_trace_but_not_the_caller() {
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "sk-backend-secret\n").expect("key file");
    let backend = config.backends.get_mut("b0").expect("b0");
    backend.api_key_file = Some(key_file);
    backend
        .headers
        .insert("OpenAI-Organization".into(), "org-7".into());
    let app = spawn_app(backends.clone(), config).await;
    let response = app
        .post("/v1/chat/completions")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&chat("chat", true))
        .send()
        .await
        .expect("chat");
    let _ = TestApp::events(response).await;
    let recorded = &backends[0].recorded()[0];
    assert_eq!(
        recorded.header("authorization"),
        Some("Bearer sk-backend-secret")
    );
    assert_eq!(recorded.header("openai-organization"), Some("org-7"));
    let traceparent = recorded.header("traceparent").expect("trace context");
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the backend call continues the caller's trace: {traceparent}"
    );
    assert!(recorded.header("x-api-key-name").is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_slow_reader_holds_the_backend_back_instead_of_filling_memory() {
    let backends = backends(vec![Script {
        tokens: 1_000_000,
        ..Script::default()
    }])
    .await;
    let mut config = config_for(&backends);
    config.models.get_mut("chat").expect("chat").max_tokens = Some(1_000_000);
    let app = spawn_app(backends.clone(), config).await;
    let mut body = chat("chat", true);
    body["max_tokens"] = 1_000_000.into();
    let mut response = app.chat(&body).await;
    let _ = response
        .chunk()
        .await
        .expect("read")
        .expect("a first chunk");
    // The client reads nothing more. The backend can only run ahead by
    // what the relay's four events and the kernel's socket buffers hold
    // (loopback buffers grow to a few MB each: about 55,000 events here),
    // so it stalls long before its 1,000,000 tokens (150 MB of events).
    let (mut previous, mut unchanged) = (0, 0);
    let last = testkit::eventually(
        "the backend to stall",
        Duration::from_secs(10),
        async || {
            let served = backends[0].stats().completion_tokens_served;
            unchanged = if served == previous { unchanged + 1 } else { 0 };
            previous = served;
            (unchanged >= 8).then_some(served)
        },
    )
    .await;
    assert!(
        last < 250_000,
        "{last} tokens generated for a reader that stopped"
    );
    drop(response);
    app.stop().await;
}
