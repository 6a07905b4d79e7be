//! Tokens per API key and model (`llm_key_tokens_total`), the series that
//! `reliable cost --aggregate key` and the budget alerts price: what each
//! caller used, by type, equal to what the usage ledger recorded.

use crate::helpers::{backends, chat, config_for, spawn_app};
use serde_json::Value;
use std::time::Duration;
use testkit::openai::Script;

/// A model name no other test of this binary uses: the recorder is global.
const MODEL: &str = "metered";

/// The counter's value for `key` and `kind` on [`MODEL`], if exported.
fn key_tokens(text: &str, key: &str, kind: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("llm_key_tokens_total{")?;
        let (labels, value) = rest.split_once("} ")?;
        let mut wanted = [
            format!("key=\"{key}\""),
            format!("gen_ai_request_model=\"{MODEL}\""),
            format!("gen_ai_token_type=\"{kind}\""),
        ]
        .into_iter();
        let all = wanted.all(|label| labels.split(',').any(|l| l == label));
        (all && labels.split(',').count() == 3)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The ledger's prompt and completion tokens of `key`.
fn ledger_tokens(report: &Value, key: &str) -> (u64, u64) {
    report["data"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| row["key"] == key && row["model"] == MODEL)
        .fold((0, 0), |(p, c), row| {
            (
                p + row["prompt_tokens"].as_u64().expect("prompt"),
                c + row["completion_tokens"].as_u64().expect("completion"),
            )
        })
}

#[tokio::test]
async fn tokens_are_counted_per_key_model_and_type_as_the_ledger_has_them() {
    kit::metrics::install();
    let backends = backends(vec![Script::default()]).await;
    let mut config = config_for(&backends);
    let mut metered = config.models["chat"].clone();
    metered.aliases.clear();
    config.models.insert(MODEL.into(), metered);
    config.allow_anonymous = true;
    let app = spawn_app(backends.clone(), config).await;

    for (key, stream) in [
        (Some("cost-a"), false),
        (Some("cost-a"), true),
        (Some("cost-b"), false),
        (None, false),
    ] {
        let mut request = app
            .http
            .post(format!("{}/v1/chat/completions", app.url))
            .json(&chat(MODEL, stream));
        if let Some(key) = key {
            request = request.header("x-api-key-name", key);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.expect("body");
    }
    let report = app.usage_requests(4).await;

    for key in ["cost-a", "cost-b", "anonymous"] {
        let (prompt, completion) = ledger_tokens(&report, key);
        assert!(prompt > 0 && completion > 0, "{key}: {report}");
        let (input, output) = testkit::eventually(
            &format!("{key}'s tokens in /metrics"),
            Duration::from_secs(10),
            async || {
                let text = kit::metrics::render();
                Some((
                    key_tokens(&text, key, "input")?,
                    key_tokens(&text, key, "output")?,
                ))
            },
        )
        .await;
        assert_eq!((input, output), (prompt, completion), "{key}");
    }
    // Two requests' worth for cost-a: the stream was counted too.
    let text = kit::metrics::render();
    let a = key_tokens(&text, "cost-a", "output").expect("cost-a");
    let b = key_tokens(&text, "cost-b", "output").expect("cost-b");
    assert!(a > b, "cost-a {a}, cost-b {b}");
    app.stop().await;
}
