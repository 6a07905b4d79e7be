//! The scripted OpenAI-compatible backend does what its script says: the
//! LLM gateway's tests rely on every behaviour checked here.

use serde_json::{json, Value};
use std::time::Duration;
use testkit::openai::{prompt_tokens, token_text, Failure, Pacing, Script, ScriptedBackend};
use tokio::time::timeout;

/// Bounds every wait on the backend; never reached when things work.
const BOUND: Duration = Duration::from_secs(10);
/// Under a paused clock, "never happens": the clock only jumps this far
/// once nothing else can run.
const NEVER: Duration = Duration::from_secs(3600);

async fn start(script: Script) -> ScriptedBackend {
    ScriptedBackend::start(script)
        .await
        .expect("start the scripted backend")
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "scripted-model",
        "messages": [{"role": "user", "content": "hello there world"}],
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn post(backend: &ScriptedBackend, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", backend.base_url()))
        .json(body)
        .send()
        .await
        .expect("send the request")
}

/// Reads a server-sent event stream one event at a time.
struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event's data; `None` at a clean end of the body, an error
    /// when the body breaks.
    async fn next(&mut self) -> Result<Option<String>, reqwest::Error> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                return Ok(Some(data.join("\n")));
            }
            match self.response.chunk().await? {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// Every remaining event, expecting a clean end.
    async fn rest(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(data) = self.next().await.expect("a complete body") {
            events.push(data);
        }
        events
    }

    async fn next_json(&mut self) -> Value {
        let data = self
            .next()
            .await
            .expect("a readable body")
            .expect("one more event");
        serde_json::from_str(&data).expect("a JSON event")
    }
}

fn parse(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str(e).expect("a JSON event"))
        .collect()
}

#[tokio::test]
async fn streamed_chat_sends_every_token_then_usage_then_done() {
    let backend = start(Script {
        tokens: 3,
        ..Script::default()
    })
    .await;
    let request = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let response = post(&backend, "/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    let events = Events::new(response).rest().await;
    assert_eq!(events.len(), 5, "3 tokens, usage, [DONE]: {events:?}");
    assert_eq!(events[4], "[DONE]");
    let chunks = parse(&events[..4]);
    for (i, chunk) in chunks[..3].iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "scripted-model");
        let choice = &chunk["choices"][0];
        assert_eq!(choice["delta"]["content"], token_text(i as u32));
        let role = if i == 0 {
            json!("assistant")
        } else {
            Value::Null
        };
        assert_eq!(
            choice["delta"]["role"], role,
            "role only on the first chunk"
        );
        let finish = if i == 2 { json!("stop") } else { Value::Null };
        assert_eq!(choice["finish_reason"], finish);
    }
    assert_eq!(chunks[3]["choices"], json!([]));
    assert_eq!(
        chunks[3]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );
    assert_eq!(prompt_tokens(&request), 3);

    let stats = backend.stats();
    assert_eq!(
        (
            stats.requests,
            stats.active,
            stats.completed,
            stats.cancelled
        ),
        (1, 0, 1, 0)
    );
    assert_eq!(stats.prompt_tokens_served, 3);
    assert_eq!(stats.completion_tokens_served, 3);
}

#[tokio::test]
async fn usage_is_sent_only_when_asked_for_and_scripted() {
    let backend = start(Script {
        tokens: 2,
        ..Script::default()
    })
    .await;
    let not_asked = post(
        &backend,
        "/chat/completions",
        &chat(json!({"stream": true})),
    )
    .await;
    let events = Events::new(not_asked).rest().await;
    assert_eq!(events.len(), 3, "2 tokens and [DONE]: {events:?}");
    assert!(parse(&events[..2]).iter().all(|c| c.get("usage").is_none()));

    backend.set_script(Script {
        tokens: 2,
        usage: false,
        ..Script::default()
    });
    let asked = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let events = Events::new(post(&backend, "/chat/completions", &asked).await)
        .rest()
        .await;
    assert_eq!(events.len(), 3, "no usage chunk: {events:?}");
    assert_eq!(events[2], "[DONE]");
    let whole: Value = post(&backend, "/chat/completions", &chat(json!({})))
        .await
        .json()
        .await
        .expect("a JSON answer");
    assert!(whole.get("usage").is_none(), "{whole}");

    // What was generated is counted all the same.
    let stats = backend.stats();
    assert_eq!(stats.completion_tokens_served, 6);
    assert_eq!(stats.prompt_tokens_served, 9);
}

#[tokio::test]
async fn non_streamed_answers_and_legacy_completions_have_their_shapes() {
    let backend = start(Script {
        tokens: 3,
        ..Script::default()
    })
    .await;
    let answer: Value = post(&backend, "/chat/completions", &chat(json!({})))
        .await
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "tok0 tok1 tok2 "
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );

    let prompt = json!({"model": "m", "prompt": "one two three four"});
    let answer: Value = post(&backend, "/completions", &prompt)
        .await
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["model"], "m", "the request's model is echoed");
    assert_eq!(answer["choices"][0]["text"], "tok0 tok1 tok2 ");
    assert_eq!(answer["usage"]["prompt_tokens"], 4);

    let streamed = json!({"model": "m", "prompt": "one", "stream": true});
    let events = Events::new(post(&backend, "/completions", &streamed).await)
        .rest()
        .await;
    assert_eq!(events.len(), 4);
    let chunks = parse(&events[..3]);
    assert_eq!(chunks[0]["object"], "text_completion");
    assert_eq!(chunks[1]["choices"][0]["text"], "tok1 ");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn max_tokens_caps_the_answer() {
    let backend = start(Script {
        tokens: 10,
        ..Script::default()
    })
    .await;
    let capped = chat(json!({
        "stream": true, "max_tokens": 4, "stream_options": {"include_usage": true}
    }));
    let events = Events::new(post(&backend, "/chat/completions", &capped).await)
        .rest()
        .await;
    assert_eq!(events.len(), 6, "4 tokens, usage, [DONE]");
    let chunks = parse(&events[..5]);
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 4);

    let capped = chat(json!({"max_completion_tokens": 2, "max_tokens": 9}));
    let answer: Value = post(&backend, "/chat/completions", &capped)
        .await
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(answer["choices"][0]["message"]["content"], "tok0 tok1 ");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(backend.stats().completion_tokens_served, 6);
}

#[tokio::test(start_paused = true)]
async fn manual_pacing_holds_each_token_until_released() {
    let backend = start(Script {
        tokens: 3,
        pacing: Pacing::Manual,
        ..Script::default()
    })
    .await;
    let response = post(
        &backend,
        "/chat/completions",
        &chat(json!({"stream": true})),
    )
    .await;
    let mut events = Events::new(response);
    let first = events.next_json().await;
    assert_eq!(first["choices"][0]["delta"]["content"], "tok0 ");
    for k in 1..3 {
        // The clock only reaches NEVER once no task can make progress: the
        // next chunk does not exist until it is released.
        assert!(
            timeout(NEVER, events.next()).await.is_err(),
            "chunk {k} held"
        );
        assert_eq!(backend.stats().completion_tokens_served, u64::from(k));
        backend.release(1);
        let chunk = events.next_json().await;
        assert_eq!(chunk["choices"][0]["delta"]["content"], token_text(k));
    }
    assert_eq!(events.rest().await, vec!["[DONE]".to_string()]);
    assert_eq!(backend.stats().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn timed_pacing_delays_the_head_by_ttft_and_each_token_by_inter_token() {
    // On the paused clock: deterministic, and no real time passes.
    let backend = start(Script {
        tokens: 3,
        ttft: Duration::from_secs(30),
        inter_token: Duration::from_secs(10),
        ..Script::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let response = post(
        &backend,
        "/chat/completions",
        &chat(json!({"stream": true})),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "head after ttft"
    );
    let events = Events::new(response).rest().await;
    assert_eq!(events.len(), 4);
    assert!(started.elapsed() >= Duration::from_secs(50));
}

#[tokio::test]
async fn scripted_statuses_answer_an_openai_error_envelope() {
    let backend = start(Script::default()).await;
    for status in [429u16, 500, 503] {
        backend.set_script(Script {
            failure: Some(Failure::Status(status)),
            ..Script::default()
        });
        let response = post(
            &backend,
            "/chat/completions",
            &chat(json!({"stream": true})),
        )
        .await;
        assert_eq!(response.status().as_u16(), status);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(retry_after.as_deref(), (status == 429).then_some("1"));
        let body: Value = response.json().await.expect("a JSON error");
        let error = &body["error"];
        assert!(error["message"].is_string() && error["type"].is_string());
        assert!(error["code"].is_string(), "{body}");
    }
    let stats = backend.stats();
    assert_eq!((stats.requests, stats.completed, stats.active), (3, 3, 0));
    assert_eq!(
        stats.completion_tokens_served + stats.prompt_tokens_served,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_backend_never_answers_and_sees_the_client_leave() {
    let backend = start(Script {
        failure: Some(Failure::HangBeforeFirstByte),
        ..Script::default()
    })
    .await;
    let request = reqwest::Client::new()
        .post(format!("{}/chat/completions", backend.base_url()))
        .json(&chat(json!({"stream": true})))
        .send();
    // Dropping the request when the clock reaches NEVER disconnects.
    assert!(timeout(NEVER, request).await.is_err(), "no answer");
    let stats = timeout(
        NEVER,
        backend.wait_until(|s| s.cancelled == 1 && s.active == 0),
    )
    .await
    .expect("the backend sees the client leave");
    assert_eq!((stats.requests, stats.completed), (1, 0));
}

#[tokio::test]
async fn disconnect_after_cuts_the_connection_mid_stream() {
    let backend = start(Script {
        tokens: 5,
        failure: Some(Failure::DisconnectAfter(2)),
        ..Script::default()
    })
    .await;
    let request = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let mut events = Events::new(post(&backend, "/chat/completions", &request).await);
    for i in 0..2 {
        let chunk = events.next_json().await;
        assert_eq!(chunk["choices"][0]["delta"]["content"], token_text(i));
    }
    assert!(events.next().await.is_err(), "the body breaks: no [DONE]");
    let stats = backend.stats();
    assert_eq!((stats.aborted, stats.active, stats.completed), (1, 0, 0));
    assert_eq!(stats.completion_tokens_served, 2);

    // Not streamed: the connection goes after two tokens' time, unanswered.
    let unanswered = reqwest::Client::new()
        .post(format!("{}/chat/completions", backend.base_url()))
        .json(&chat(json!({})))
        .send()
        .await;
    assert!(unanswered.is_err(), "{unanswered:?}");
    assert_eq!(backend.stats().aborted, 2);
}

#[tokio::test]
async fn malformed_sse_is_a_successful_stream_of_garbage() {
    let backend = start(Script {
        failure: Some(Failure::MalformedSse),
        ..Script::default()
    })
    .await;
    let response = post(
        &backend,
        "/chat/completions",
        &chat(json!({"stream": true})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    let text = response.text().await.expect("a complete body");
    assert!(!text.contains("[DONE]"));
    assert!(text
        .lines()
        .any(|l| !l.is_empty() && !l.starts_with("data: ")));
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        assert!(serde_json::from_str::<Value>(data).is_err(), "{data}");
    }

    let response = post(&backend, "/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a complete body");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let stats = backend.stats();
    assert_eq!((stats.completed, stats.completion_tokens_served), (2, 0));
}

#[tokio::test]
async fn missing_done_ends_the_stream_cleanly_without_done() {
    let backend = start(Script {
        tokens: 2,
        failure: Some(Failure::MissingDone),
        ..Script::default()
    })
    .await;
    let events = Events::new(
        post(
            &backend,
            "/chat/completions",
            &chat(json!({"stream": true})),
        )
        .await,
    )
    .rest()
    .await;
    assert_eq!(events.len(), 2, "{events:?}");
    let last = &parse(&events)[1];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(backend.stats().completed, 1);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_is_counted_cancelled() {
    let backend = start(Script {
        tokens: 5,
        pacing: Pacing::Manual,
        ..Script::default()
    })
    .await;
    let mut events = Events::new(
        post(
            &backend,
            "/chat/completions",
            &chat(json!({"stream": true})),
        )
        .await,
    );
    events.next_json().await;
    assert_eq!(backend.stats().active, 1);
    drop(events);
    let stats = timeout(
        BOUND,
        backend.wait_until(|s| s.cancelled == 1 && s.active == 0),
    )
    .await
    .expect("the backend sees the client leave");
    assert_eq!((stats.completed, stats.completion_tokens_served), (0, 1));
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_the_same_port() {
    let backend = start(Script {
        pacing: Pacing::Manual,
        ..Script::default()
    })
    .await;
    let health = format!("http://{}/health", backend.addr());
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(&health).send().await.expect("health").status(),
        200
    );
    let mut in_flight = Events::new(
        post(
            &backend,
            "/chat/completions",
            &chat(json!({"stream": true})),
        )
        .await,
    );
    in_flight.next_json().await;

    backend.stop().await;
    assert!(!backend.is_running());
    let stats = backend.stats();
    assert_eq!((stats.cancelled, stats.active), (1, 0), "cut by the stop");
    assert!(in_flight.next().await.is_err());
    let refused = tokio::net::TcpStream::connect(backend.addr()).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let error = client.get(&health).send().await.expect_err("refused");
    assert!(error.is_connect(), "{error:?}");

    backend.restart().await.expect("listen on the same port");
    assert_eq!(
        client.get(&health).send().await.expect("health").status(),
        200
    );
    assert_eq!(backend.stats().health_checks, 2);
}

#[tokio::test]
async fn embeddings_and_models_answer() {
    let backend = start(Script {
        models: vec!["alpha".into(), "beta".into()],
        ..Script::default()
    })
    .await;
    let models: Value = reqwest::get(format!("{}/models", backend.base_url()))
        .await
        .expect("list models")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["alpha", "beta"]);

    let request = json!({"model": "alpha", "input": ["a b", "c d e"]});
    let answer: Value = post(&backend, "/embeddings", &request)
        .await
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"][0]["embedding"], json!([1.0, 0.0, 2.0, 0.5]));
    assert_eq!(answer["data"][1]["embedding"], json!([1.0, 1.0, 3.0, 0.5]));
    assert_eq!(answer["usage"]["prompt_tokens"], 5);
    let stats = backend.stats();
    assert_eq!((stats.prompt_tokens_served, stats.model_lists), (5, 1));
    assert_eq!((stats.requests, stats.completed), (1, 1));
}

#[tokio::test]
async fn requests_are_recorded_with_their_headers() {
    let backend = start(Script::default()).await;
    let body = chat(json!({"stream": true, "vendor_extension": {"keep": true}}));
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", backend.base_url()))
        .header("authorization", "Bearer sk-backend")
        .header("x-request-id", "r-1")
        .json(&body)
        .send()
        .await
        .expect("send");
    Events::new(response).rest().await;
    assert_eq!(backend.requests(), vec![body]);
    let recorded = &backend.recorded()[0];
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(recorded.header("authorization"), Some("Bearer sk-backend"));
    assert_eq!(recorded.header("x-request-id"), Some("r-1"));

    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", backend.base_url()))
        .body("not json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    assert_eq!(backend.requests()[1], json!("not json"));
}
