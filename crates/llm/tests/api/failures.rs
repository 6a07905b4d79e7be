//! Backends failing: before the first token the next one serves; after
//! it, the stream ends with an error event; a client leaving stops the
//! backend.

use crate::helpers::{backends, chat, config_for, spawn_app, TestApp};
use serde_json::Value;
use std::time::Duration;
use testkit::openai::{Failure, Pacing, Script};

fn failing(failure: Failure) -> Script {
    Script {
        failure: Some(failure),
        ..Script::default()
    }
}

/// The stream's events, and whether the last one is an error event.
fn ends_with_error(events: &[String]) -> bool {
    events
        .last()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
        .is_some_and(|e| e["error"]["message"].is_string())
}

#[tokio::test]
async fn failures_before_the_first_token_fall_back_and_none_reach_the_client() {
    for failure in [
        Failure::Status(500),
        Failure::Status(503),
        Failure::Status(429),
        Failure::MalformedSse,
    ] {
        let backends = backends(vec![failing(failure), Script::default()]).await;
        let app = spawn_app(backends.clone(), config_for(&backends)).await;
        for stream in [false, true] {
            for _ in 0..4 {
                let response = app.chat(&chat("chat", stream)).await;
                assert_eq!(response.status(), 200, "{failure:?} stream={stream}");
                if stream {
                    let events = TestApp::events(response).await;
                    assert_eq!(
                        events.last().map(String::as_str),
                        Some("[DONE]"),
                        "{failure:?}"
                    );
                }
            }
        }
        assert_eq!(backends[1].stats().completed, 8, "{failure:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_killed_backend_costs_no_request() {
    let backends = backends(vec![Script::default(), Script::default()]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    for _ in 0..4 {
        assert_eq!(app.chat(&chat("chat", true)).await.status(), 200);
    }
    backends[0].stop().await;
    for i in 0..20 {
        let response = app.chat(&chat("chat", i % 2 == 0)).await;
        assert_eq!(response.status(), 200, "request {i}");
        let _ = response.bytes().await.expect("body");
    }
    assert!(backends[1].stats().completed >= 20);
    app.stop().await;
}

#[tokio::test]
async fn a_backend_silent_past_the_first_token_timeout_is_abandoned_for_the_next() {
    let backends = backends(vec![
        failing(Failure::HangBeforeFirstByte),
        Script::default(),
    ])
    .await;
    let mut config = config_for(&backends);
    config.timeouts.first_token = Duration::from_millis(200);
    let app = spawn_app(backends.clone(), config).await;
    for _ in 0..3 {
        let events = TestApp::events(app.chat(&chat("chat", true)).await).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    // The abandoned calls were cancelled on the hanging backend.
    let hung = backends[0].wait_until(|s| s.active == 0).await;
    assert_eq!(hung.completed, 0);
    app.stop().await;
}

#[tokio::test]
async fn every_backend_failing_is_a_502_in_the_openai_envelope() {
    let backends = backends(vec![failing(Failure::Status(500))]).await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let response = app.chat(&chat("chat", true)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], "backend_error");
    app.stop().await;
}

#[tokio::test]
async fn failures_after_the_first_token_end_the_stream_with_an_error_event() {
    for failure in [Failure::DisconnectAfter(2), Failure::MissingDone] {
        let backends = backends(vec![failing(failure), Script::default()]).await;
        let mut config = config_for(&backends);
        // Only the failing backend serves: nothing may be retried anyway.
        config
            .models
            .get_mut("chat")
            .expect("chat")
            .deployments
            .truncate(1);
        let app = spawn_app(backends.clone(), config).await;
        let events = TestApp::events(app.chat(&chat("chat", true)).await).await;
        assert!(
            events.iter().any(|e| e.contains("tok0")),
            "{failure:?}: {events:?}"
        );
        assert!(ends_with_error(&events), "{failure:?}: {events:?}");
        assert!(!events.iter().any(|e| e == "[DONE]"), "{failure:?}");
        assert_eq!(
            backends[1].stats().requests,
            0,
            "never retried after a token"
        );
        let report = app.usage_requests(1).await;
        assert!(report["data"][0]["requests"].as_u64() == Some(1));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_stops_the_backend() {
    let backends = backends(vec![Script {
        tokens: 1000,
        pacing: Pacing::Manual,
        ..Script::default()
    }])
    .await;
    let app = spawn_app(backends.clone(), config_for(&backends)).await;
    let mut response = app.chat(&chat("chat", true)).await;
    let first = response.chunk().await.expect("read").expect("a chunk");
    assert!(!first.is_empty());
    backends[0].release(1);
    let left = std::time::Instant::now();
    drop(response);
    let stats = tokio::time::timeout(
        Duration::from_secs(5),
        backends[0].wait_until(|s| s.active == 0),
    )
    .await
    .expect("the backend call is cancelled");
    // Reported, not asserted (timings are the benchmarks'): the issue asks
    // for under 100 ms, docs/modules/llm.md quotes what this prints.
    eprintln!(
        "backend call cancelled {:?} after the client left",
        left.elapsed()
    );
    assert_eq!(stats.cancelled, 1);
    assert!(stats.completion_tokens_served < 1000);
    let report = app.usage_requests(1).await;
    assert_eq!(report["data"][0]["requests"], 1);
    app.stop().await;
}
