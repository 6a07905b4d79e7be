//! The write-up's question ("what costs the most?") in one command, and
//! the same answer on the console's cost page in headless Chromium.
//!
//! `reliable up` with the example digit models and a real llama.cpp
//! backend (SmolLM2-135M, self-hosted: its hours are priced from the
//! pricing file, as a GPU node would be) under a mixed load: cheap
//! redirects, CPU-heavy inference batches and a few chat completions.
//! The pricing makes the self-hosted backend the biggest line, as in the
//! write-up ("vLLM was costing more than all four application
//! microservices combined"); inference, which burns the process's CPU,
//! must come next and above the shortener. `reliable cost --aggregate
//! module` and the page's Modules table must agree on the order.

use crate::browser::{npm_ci, which, BROWSER_TIMEOUT};
use crate::support::{self, create_key, reliable, start};
use crate::{until, DEADLINE};
use serde_json::{json, Value};
use std::path::Path;

/// One hour of the self-hosted backend: a GPU node's price, so the
/// backend's share dominates minutes of measurement.
const PRICING: &str = "\
currency: USD
resources: {cpu_core_hour: 0.031611, ram_gib_hour: 0.004237}
llm_self_hosted:
  MODEL: {hourly: 2.0}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_by_module_names_the_same_leader_in_the_cli_and_the_console() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if ["node", "npm", chromium.as_str()]
        .iter()
        .any(|p| which(p).is_none())
    {
        if std::env::var("RELIABLE_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("skipped: chromium, node or npm missing and RELIABLE_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "chromium, node or npm not found: run scripts/test (or set RELIABLE_SKIP_BROWSER=1)"
        );
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/browser");
    npm_ci(&package).await;
    let llama = testkit::llamacpp::LlamaServer::start()
        .await
        .expect("llama.cpp's server (scripts/llm-backend installs it)");
    let model = llama.model_id().to_string();

    let data = tempfile::tempdir().expect("dir");
    let pricing = data.path().join("cost.yaml");
    std::fs::write(&pricing, PRICING.replace("MODEL", &model)).expect("pricing");
    let invoke = create_key(data.path(), "team-a", "llm:invoke");
    let reader = create_key(data.path(), "finance", "cost:read");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        .env("RELIABLE_SLO_TICK", "200ms")
        .env("RELIABLE_COST_TICK", "200ms")
        .env("RELIABLE_COST_PRICING", &pricing)
        .env("RELIABLE_INFERENCE_REPOSITORY", &models)
        .env("RELIABLE_INFERENCE_MODELS", "digits")
        .env("RELIABLE_LLM_BACKEND_URL", llama.base_url());
    let app = start(cmd);
    let console = app
        .lines
        .recv_timeout(DEADLINE)
        .expect("console line")
        .strip_prefix("console on ")
        .expect("console on http://ADDR")
        .to_string();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // The mixed load: redirects, inference batches of 64 rows, chats.
    let created = http
        .post(format!("{base}/api/v1/links"))
        .json(&json!({"url": "https://example.com/", "slug": "cost-q"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let row: Vec<f64> = (0..64).map(|i| f64::from(i % 17)).collect();
    let batch = json!({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [64, 64],
        "data": vec![row; 64]}]});
    for round in 0..20 {
        for _ in 0..20 {
            let redirect = http
                .get(format!("{base}/cost-q"))
                .send()
                .await
                .expect("redirect");
            assert!(redirect.status().is_redirection(), "{}", redirect.status());
        }
        for _ in 0..4 {
            let inferred = http
                .post(format!("{base}/v2/models/digits/infer"))
                .json(&batch)
                .send()
                .await
                .expect("infer");
            assert_eq!(inferred.status(), 200, "{:?}", inferred.text().await);
        }
        if round % 7 == 0 {
            let chat = http
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(&invoke)
                .json(&json!({"model": model, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "Name a colour."}]}))
                .send()
                .await
                .expect("chat");
            assert_eq!(chat.status(), 200, "{:?}", chat.text().await);
        }
    }

    // The measurement has the three modules' lines once the meter ticked.
    let allocation = format!("{base}/api/v1/cost/allocation?window=1h&aggregate=module");
    let start_wait = std::time::Instant::now();
    let lines = loop {
        let answer: Value = http
            .get(&allocation)
            .bearer_auth(&reader)
            .send()
            .await
            .expect("allocation")
            .json()
            .await
            .expect("json");
        let lines = answer["data"][0].clone();
        // Every request sent is in the buckets (the meter's last tick may
        // have landed mid-load), and the chats' tokens are priced.
        let requests = |m: &str| lines[m]["requests"].as_u64().unwrap_or(0);
        let priced = lines["llm"]["totalCost"].as_f64().is_some_and(|c| c > 0.0);
        if priced && requests("inference") >= 80 && requests("shortener") >= 401 {
            break lines;
        }
        assert!(
            start_wait.elapsed() < DEADLINE,
            "the measurement never showed every request and the chats: {answer:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let cost = |m: &str| lines[m]["totalCost"].as_f64().unwrap_or(0.0);
    assert!(
        cost("inference") > cost("shortener"),
        "inference batches must cost more than redirects: {lines:#}"
    );

    // One command answers the question.
    let cost_cli = |json: bool| {
        let mut cmd = reliable();
        cmd.args([
            "cost",
            "--url",
            &base,
            "--window",
            "1h",
            "--aggregate",
            "module",
        ])
        .env("RELIABLE_API_KEY", &reader);
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("reliable cost")
    };
    let cli = cost_cli(true);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let report: Value = serde_json::from_slice(&cli.stdout).expect("cost --json");
    let mut ranked: Vec<(String, f64)> = report["allocations"]
        .as_object()
        .expect("allocations")
        .iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .map(|(name, a)| (name.clone(), a["totalCost"].as_f64().unwrap_or(0.0)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(ranked[0].0, "llm", "{ranked:?}");
    let table = cost_cli(false);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    println!("{table}");
    assert!(table.contains("30-day projection"), "{table}");

    // The console's page shows the same leader, in a real browser.
    until(&http, &format!("{console}/api/v1/cost?window=1h"), |v| {
        v["measured"] == true
            && v["cost"]["modules"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
    })
    .await;
    let shots = match std::env::var_os("CONSOLE_SCREENSHOTS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => data.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let shot = shots.join("cost-question.png");
    let mut node = tokio::process::Command::new("node");
    node.arg("cost-question.mjs")
        .arg(&console)
        .arg(&shot)
        .current_dir(&package)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, node.output())
        .await
        .expect("the browser finished in time")
        .expect("node starts");
    assert!(
        output.status.success(),
        "the cost page check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_slice(&output.stdout).expect("the page's rows");
    let first = page["modules"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| !r["module"].as_str().unwrap_or("").starts_with("__"))
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(first["module"], "llm", "{page:#}");
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000);
    support::stop(app).await;
}
