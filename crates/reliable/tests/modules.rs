//! Modules sharing one process: each route keeps its own module's
//! `service` label, for every pair of modules (`serve --target a,b` on
//! PostgreSQL and NATS), so each module's SLO sees its own traffic.

mod support;

use support::{reliable, start, terminate};

/// One request a module answers, and the route label it must carry.
struct Probe {
    module: &'static str,
    method: reqwest::Method,
    path: &'static str,
    body: Option<serde_json::Value>,
    route: &'static str,
}

fn probe(module: &str) -> Probe {
    match module {
        "shortener" => Probe {
            module: "shortener",
            method: reqwest::Method::GET,
            path: "/no-such-link",
            body: None,
            route: "/{slug}",
        },
        "orders" => Probe {
            module: "orders",
            method: reqwest::Method::POST,
            path: "/api/v1/orders",
            body: Some(support::order_body("label-test")),
            route: "/api/v1/orders",
        },
        "notifier" => Probe {
            module: "notifier",
            method: reqwest::Method::GET,
            path: "/api/v1/notifications/dead",
            body: None,
            route: "/api/v1/notifications/dead",
        },
        "inference" => Probe {
            module: "inference",
            method: reqwest::Method::GET,
            path: "/v2/models/digits",
            body: None,
            route: "/v2/models/{name}",
        },
        "llm" => Probe {
            module: "llm",
            method: reqwest::Method::GET,
            path: "/v1/models",
            body: None,
            route: "/v1/models",
        },
        other => panic!("no probe for {other}"),
    }
}

async fn check_pair(first: &str, second: &str, llm_backend: &str) {
    let nats = testkit::NatsServer::start();
    let database_url = testkit::postgres().create_database();
    // The LLM gateway's routes need a key with its scope behind the
    // gateway.
    let created = reliable()
        .args([
            "keys",
            "create",
            "--name",
            "probe",
            "--scopes",
            "llm:invoke",
        ])
        .env("RELIABLE_DATABASE_URL", &database_url)
        .output()
        .expect("keys");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let mut cmd = reliable();
    cmd.args(["serve", "--target", &format!("{first},{second}")])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", &database_url)
        .env("RELIABLE_LLM_BACKEND_URL", llm_backend)
        .env("RELIABLE_NATS_URL", nats.url())
        .env("RELIABLE_NOTIFIER_LOG_CHANNEL", "false")
        .env(
            "RELIABLE_INFERENCE_REPOSITORY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../models"),
        );
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let modules: Vec<&str> = [first, second]
        .into_iter()
        .filter(|m| *m != "gateway")
        .collect();
    for module in &modules {
        let probe = probe(module);
        let mut request = http
            .request(probe.method.clone(), format!("{base}{}", probe.path))
            .header("idempotency-key", "label-test-1")
            .bearer_auth(&key);
        if let Some(body) = &probe.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        assert!(
            response.status().as_u16() < 500,
            "{first},{second}: {} {} answered {}",
            probe.method,
            probe.path,
            response.status()
        );
    }
    let metrics = support::get_text(&http, &format!("{base}/metrics")).await;
    for module in &modules {
        let probe = probe(module);
        let series = format!(
            "http_server_request_duration_seconds_count{{service=\"{}\",http_route=\"{}\",http_request_method=\"{}\"",
            probe.module, probe.route, probe.method
        );
        assert!(
            metrics.contains(&series),
            "{first},{second}: {series} missing:\n{metrics}"
        );
        for other in [
            "shortener",
            "orders",
            "notifier",
            "inference",
            "llm",
            "reliable",
        ]
        .into_iter()
        .filter(|o| *o != probe.module)
        {
            let wrong = format!(
                "service=\"{other}\",http_route=\"{}\",http_request_method=\"{}\"",
                probe.route, probe.method
            );
            assert!(
                !metrics.contains(&wrong),
                "{first},{second}: {} labelled {other}",
                probe.route
            );
        }
    }
    if first == "gateway" || second == "gateway" {
        assert!(
            metrics.contains(r#"http_server_request_duration_seconds_count{service="gateway",http_route="/{*path}""#),
            "{first},{second}: the front's own series missing:\n{metrics}"
        );
    }
    assert!(
        terminate(app).await.success(),
        "{first},{second}: exit status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_of_modules_keeps_its_own_service_label() {
    let backend = testkit::openai::ScriptedBackend::start(testkit::openai::Script::default())
        .await
        .expect("an OpenAI-compatible backend");
    let modules = [
        "shortener",
        "orders",
        "notifier",
        "inference",
        "llm",
        "gateway",
    ];
    for (i, first) in modules.iter().enumerate() {
        for second in &modules[i + 1..] {
            check_pair(first, second, &backend.base_url()).await;
        }
    }
}
