//! Keys: allowed models, requests and tokens per minute, daily and monthly
//! budgets, reservations settled to what the backend reported.

use crate::helpers::{backends, chat, config_for, spawn_app, KEY};
use llm::config::KeyPolicy;
use serde_json::Value;
use testkit::openai::Script;

#[tokio::test]
async fn a_key_may_call_only_its_models() {
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    config.keys.insert(
        KEY.into(),
        KeyPolicy {
            models: vec!["other".into()],
            ..KeyPolicy::default()
        },
    );
    let app = spawn_app(backends.clone(), config).await;
    let response = app.chat(&chat("chat", false)).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(backends[0].stats().requests, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_daily_budget_refuses_mid_day_until_midnight_and_says_which_limit() {
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    // Each request reserves its prompt estimate plus max_tokens 50, and
    // is charged what the backend reports (a few prompt tokens + 4).
    config.default_key = KeyPolicy {
        tokens_per_day: Some(200),
        ..KeyPolicy::default()
    };
    let app = spawn_app(backends.clone(), config).await;
    let mut body = chat("chat", false);
    body["max_tokens"] = 50.into();
    let mut served = 0;
    let refused = loop {
        let response = app.chat(&body).await;
        if response.status() != 200 {
            break response;
        }
        served += 1;
        assert!(served < 100, "the budget never ran out");
    };
    // Settled to real usage (about 9 tokens each), not to the 60-odd
    // reserved: far more than 200 / 60 requests fit.
    assert!(served > 4, "served {served}");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // The manual clock is at 12:00 UTC: the budget resets at midnight.
    assert_eq!(retry_after, 12 * 3600);
    let error: Value = refused.json().await.expect("json");
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert!(error["error"]["message"]
        .as_str()
        .expect("message")
        .contains("tokens_per_day"));
    let before = backends[0].stats().requests;
    assert_eq!(app.chat(&body).await.status(), 429);
    assert_eq!(
        backends[0].stats().requests,
        before,
        "refused without a backend call"
    );

    app.clock.advance(chrono::Duration::hours(12));
    assert_eq!(app.chat(&body).await.status(), 200, "a new day");
    app.stop().await;
}

#[tokio::test]
async fn tokens_per_minute_refuse_then_refill_on_the_clock() {
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    config.default_key = KeyPolicy {
        tokens_per_minute: Some(1000),
        requests_per_minute: Some(1000),
        ..KeyPolicy::default()
    };
    let app = spawn_app(backends.clone(), config).await;
    let mut body = chat("chat", true);
    body["max_tokens"] = 200.into();
    let mut served = 0;
    loop {
        let response = app.chat(&body).await;
        if response.status() == 429 {
            let error: Value = response.json().await.expect("json");
            assert_eq!(error["error"]["type"], "tokens");
            break;
        }
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.expect("stream");
        served += 1;
        assert!(served < 1000, "never limited");
    }
    app.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(app.chat(&body).await.status(), 200);
    // A request that could never fit is refused as too big, not told to
    // wait.
    body["max_tokens"] = 256.into();
    body["n"] = 8.into();
    let response = app.chat(&body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], "request_over_limit");
    app.stop().await;
}
