//! The real LLM backend (llama.cpp serving SmolLM2-135M, installed by
//! scripts/llm-backend) answers in the shapes the `llm` gateway relies on.
//! Structure only, never the text: the model's words may change with a
//! version, the OpenAI shapes may not.

use serde_json::{json, Value};
use std::time::Duration;
use testkit::llamacpp::{LlamaError, LlamaOptions, LlamaServer};

const MAX_TOKENS: u64 = 8;

async fn server() -> LlamaServer {
    LlamaServer::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the LLM backend: {e}"))
}

/// A bound on one request on a busy machine, not a timing assertion.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("a reqwest client")
}

fn chat(model: &str, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": MAX_TOKENS,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn assert_usage(usage: &Value) {
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    assert!(
        (1..=MAX_TOKENS).contains(&completion),
        "completion_tokens {completion} not in 1..={MAX_TOKENS}"
    );
    assert!(prompt >= 1, "prompt_tokens {prompt}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let server = server().await;
    let body: Value = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .expect("GET /v1/models")
        .json()
        .await
        .expect("a JSON body");
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().expect("data is a list");
    assert_eq!(data.len(), 1, "{body}");
    assert_eq!(data[0]["id"], server.model_id());
    assert!(!server.model_id().is_empty());
}

#[tokio::test]
async fn a_chat_completion_has_a_message_and_usage_within_max_tokens() {
    let server = server().await;
    let response = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat(server.model_id(), false))
        .send()
        .await
        .expect("POST /v1/chat/completions");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].is_string(), "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string(), "{body}");
    assert!(choice["finish_reason"].is_string(), "{body}");
    assert_usage(&body["usage"]);
}

#[tokio::test]
async fn a_streamed_chat_sends_chunks_a_usage_chunk_and_done() {
    let server = server().await;
    let mut response = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat(server.model_id(), true))
        .send()
        .await
        .expect("POST /v1/chat/completions");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut text = String::new();
    while let Some(bytes) = response.chunk().await.expect("the stream's next bytes") {
        text.push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
    }

    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| event.strip_prefix("data: ").expect("every event is data"))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).expect("a JSON chunk"))
        .collect();
    // At least the role chunk, the finish chunk and the usage chunk.
    assert!(chunks.len() >= 3, "{text}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|c| &c["id"] == id), "one id per stream");

    // The usage chunk comes last, with no choices; no other carries usage.
    let (usage_chunk, choice_chunks) = chunks.split_last().expect("chunks");
    assert_eq!(usage_chunk["choices"], json!([]), "{usage_chunk}");
    assert_usage(&usage_chunk["usage"]);
    assert!(choice_chunks.iter().all(|c| c.get("usage").is_none()));
    // The role comes in the first chunk, when it comes at all: llama.cpp
    // leaves it out when the first tokens are an incomplete UTF-8
    // character (an emoji), sent as one delta once complete.
    let role = &choice_chunks[0]["choices"][0]["delta"]["role"];
    assert!(role.is_null() || role == "assistant", "{role}");
    assert!(choice_chunks[1..]
        .iter()
        .all(|c| c["choices"][0]["delta"].get("role").is_none()));
    let finish = &choice_chunks[choice_chunks.len() - 1]["choices"][0];
    assert!(finish["finish_reason"].is_string(), "{finish}");
    assert!(choice_chunks[..choice_chunks.len() - 1]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn stop_closes_stdin_and_the_server_exits_and_comes_back() {
    let mut server = server().await;
    let health = format!("http://127.0.0.1:{}/health", server.port());
    let status = server
        .stop()
        .await
        .expect("the launcher exits on stdin close");
    assert!(status.success(), "{status}");
    assert!(
        client().get(&health).send().await.is_err(),
        "nothing listens after stop"
    );

    server
        .start_again()
        .await
        .expect("starts again on the same port");
    let response = client().get(&health).send().await.expect("GET /health");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_missing_install_names_the_command_that_installs_it() {
    let options = LlamaOptions {
        venv: Some("target/no-such-llm-venv".into()),
        ..LlamaOptions::default()
    };
    let error = match LlamaServer::start_with(options).await {
        Ok(_) => panic!("started without a venv"),
        Err(error) => error,
    };
    assert!(matches!(error, LlamaError::NotInstalled { .. }), "{error}");
    assert!(error.to_string().contains("scripts/llm-backend"), "{error}");
}
