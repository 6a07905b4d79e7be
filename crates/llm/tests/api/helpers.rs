//! `spawn_app`: the llm module started on port 0 in this process, in front
//! of scripted backends, on a SQLite file in a temporary directory and the
//! in-process limiter on a manual clock. Requests name their caller with
//! `X-Api-Key-Name`, as the gateway in front does.

use chrono::{TimeZone, Utc};
use kit::module::{Context, Module, Ports};
use kit::ManualClock;
use llm::config::{BackendConfig, DeploymentConfig, LlmConfig, ModelConfig};
use llm::Llm;
use ratelimit::{LocalLimiter, RateLimiter};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::openai::{Script, ScriptedBackend};
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "team-a";

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    module: Option<Llm>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Backends named `b0`, `b1`, ... each with its script; one model `chat`
/// served by all of them at priority 0 (as backend model `m-bN`).
pub fn config_for(backends: &[Arc<ScriptedBackend>]) -> LlmConfig {
    let mut config = LlmConfig::default();
    let mut deployments = Vec::new();
    for (i, backend) in backends.iter().enumerate() {
        let name = format!("b{i}");
        config.backends.insert(
            name.clone(),
            BackendConfig {
                url: backend.base_url(),
                api_key_env: None,
                api_key_file: None,
                headers: BTreeMap::new(),
                ca_file: None,
                discover: false,
            },
        );
        deployments.push(DeploymentConfig {
            backend: name.clone(),
            model: Some(format!("m-{name}")),
            weight: 1,
            priority: 0,
        });
    }
    config.models.insert(
        "chat".into(),
        ModelConfig {
            deployments,
            aliases: vec!["chat-alias".into()],
            max_tokens: Some(256),
            ..ModelConfig::default()
        },
    );
    config.health.interval = Duration::ZERO;
    config
}

pub async fn backends(scripts: Vec<Script>) -> Vec<Arc<ScriptedBackend>> {
    let mut out = Vec::new();
    for script in scripts {
        out.push(Arc::new(
            ScriptedBackend::start(script).await.expect("backend"),
        ));
    }
    out
}

pub async fn spawn_app(_backends: Vec<Arc<ScriptedBackend>>, config: LlmConfig) -> TestApp {
    config.validate().expect("valid config");
    let dir = tempfile::tempdir().expect("dir");
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("time"),
    );
    let ports = Ports::new();
    let limiter: Arc<dyn RateLimiter> = Arc::new(LocalLimiter::new(Arc::new(clock.clone())));
    ports.insert(limiter);
    let supervisor = kit::tasks::Supervisor::new();
    let context = Context {
        tasks: supervisor.for_module("llm"),
        clock: Arc::new(clock.clone()),
        database_url: Some(format!("sqlite:{}", dir.path().join("llm.db").display())),
        data_dir: dir.path().to_path_buf(),
        public_url: "http://127.0.0.1".into(),
        http: kit::http::HttpConfig::default(),
        ports,
    };
    let module = Llm::start(config, context).await.expect("start");
    let router = kit::http::stack(module.router(), "llm", &kit::http::HttpConfig::default());
    let server = kit::server::HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let url = server.url();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(server.serve(router, stop.clone()));
    TestApp {
        url,
        http: reqwest::Client::new(),
        clock,
        module: Some(module),
        stop,
        server: Some(serving),
        _dir: dir,
    }
}

/// A test that panics still stops its server.
impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "say four words please"}],
        "stream": stream,
        "temperature": 0.5,
        "x_vendor_option": {"keep": true},
    })
}

impl TestApp {
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .header("x-api-key-name", KEY)
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/chat/completions")
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Reads a stream to its end: the `data:` payloads in order.
    pub async fn events(mut response: reqwest::Response) -> Vec<String> {
        let mut text = String::new();
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    pub async fn usage(&self) -> Value {
        let response = self
            .http
            .get(format!(
                "{}/v1/usage?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
                self.url
            ))
            .send()
            .await
            .expect("usage");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Stops the module (flushing the ledger), then the server.
    pub async fn stop(mut self) {
        if let Some(module) = self.module.take() {
            module.shutdown().await;
        }
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Waits until the ledger holds `n` requests in all (it is written
    /// off the request path).
    pub async fn usage_requests(&self, n: u64) -> Value {
        testkit::eventually(
            &format!("{n} requests in the usage report"),
            Duration::from_secs(10),
            async || {
                let usage = self.usage().await;
                let total: u64 = usage["data"]
                    .as_array()
                    .expect("rows")
                    .iter()
                    .map(|r| r["requests"].as_u64().expect("requests"))
                    .sum();
                (total >= n).then_some(usage)
            },
        )
        .await
    }
}
