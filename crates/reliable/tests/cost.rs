//! `reliable cost` against a Prometheus stand-in that answers the
//! allocation queries with known series: the report must be the
//! arithmetic of docs/operations/cost.md on those numbers, and bad input
//! or a broken Prometheus must end with a clear error.

mod support;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

const PRICING: &str = "\
currency: USD
resources:
  cpu_core_hour: 0.04
  ram_gib_hour: 0.005
node_types:
  n1: {cores: 4, ram_gib: 16, hourly: 0.24}
nodes:
  - {type: n1, count: 2}
";

/// PRICING with LLM prices and key budgets, for `--aggregate key|model`.
const LLM_PRICING: &str = "\
llm:
  gpt-4o-mini: {input_per_1k: 0.00015, output_per_1k: 0.0006}
llm_self_hosted:
  smollm2: {hourly: 0.096}
budgets:
  keys: {team-a: 20, team-b: 100}
";

const WINDOW: &str = "2026-12-01T00:00:00Z,2026-12-01T10:00:00Z";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn series(labels: Value, value: f64) -> Value {
    json!({"metric": labels, "value": [1764583200.0, value.to_string()]})
}

fn pod(name: &str) -> Value {
    json!({"namespace": "reliable", "pod": name, "container": "reliable"})
}

/// The answer to one query, chosen by what it asks for.
fn answer(promql: &str) -> Value {
    let result: Vec<Value> = if promql.contains("llm_key_tokens_total") {
        let tokens = |key: &str, model: &str, kind: &str, value: f64| {
            series(
                json!({"key": key, "gen_ai_request_model": model, "gen_ai_token_type": kind}),
                value,
            )
        };
        vec![
            tokens("team-a", "gpt-4o-mini", "input", 200_000.0),
            tokens("team-a", "gpt-4o-mini", "output", 50_000.0),
            tokens("team-a", "smollm2", "input", 20_000.0),
            tokens("team-a", "smollm2", "output", 10_000.0),
            tokens("team-b", "smollm2", "input", 60_000.0),
            tokens("team-b", "smollm2", "output", 30_000.0),
            tokens("anonymous", "mystery", "output", 1_000.0),
        ]
    } else if promql.contains("count_over_time") {
        vec![
            series(pod("shortener-1"), 600.0),
            series(pod("inference-1"), 600.0),
        ]
    } else if promql.contains("container_cpu_usage_seconds_total") {
        vec![
            series(pod("shortener-1"), 0.5),
            series(pod("inference-1"), 1.5),
        ]
    } else if promql.contains("resource=\"cpu\"") {
        vec![
            series(pod("shortener-1"), 1.0),
            series(pod("inference-1"), 1.0),
        ]
    } else if promql.contains("container_memory_working_set_bytes") {
        vec![
            series(pod("shortener-1"), GIB),
            series(pod("inference-1"), 2.0 * GIB),
        ]
    } else if promql.contains("resource=\"memory\"") {
        vec![
            series(pod("shortener-1"), 2.0 * GIB),
            series(pod("inference-1"), 2.0 * GIB),
        ]
    } else if promql.contains("kube_pod_labels") {
        vec![
            series(
                json!({"namespace": "reliable", "pod": "shortener-1", "label_app_kubernetes_io_name": "shortener"}),
                1.0,
            ),
            series(
                json!({"namespace": "reliable", "pod": "inference-1", "label_app_kubernetes_io_name": "inference"}),
                1.0,
            ),
        ]
    } else if promql.contains("reliable_cost_cpu_seconds_total") {
        vec![series(
            json!({"module": "shortener", "route": "/{slug}"}),
            3600.0,
        )]
    } else if promql.contains("http_server_request_duration_seconds_count") {
        vec![series(
            json!({"service": "shortener", "http_route": "/{slug}"}),
            1_000_000.0,
        )]
    } else {
        Vec::new()
    };
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

#[derive(Clone, Copy)]
enum Behaviour {
    Answers,
    Refuses,
}

async fn query(
    State(behaviour): State<Behaviour>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    match behaviour {
        Behaviour::Answers => Json(answer(params.get("query").map_or("", String::as_str))),
        Behaviour::Refuses => {
            Json(json!({"status": "error", "errorType": "bad_data", "error": "parse error"}))
        }
    }
}

/// A Prometheus stand-in on a free port; its base URL.
async fn prometheus(behaviour: Behaviour) -> String {
    let app = Router::new()
        .route("/api/v1/query", get(query))
        .with_state(behaviour);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn cost(dir: &Path, args: &[&str]) -> Output {
    let mut command = support::reliable();
    command.current_dir(dir).arg("cost").args(args);
    tokio::task::spawn_blocking(move || command.output().expect("run reliable cost"))
        .await
        .expect("join")
}

fn with_pricing(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("cost.yaml"), text).expect("write");
    dir
}

fn near(value: &Value, expected: f64, what: &str) {
    let actual = value.as_f64().unwrap_or(f64::NAN);
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: {actual} != {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_routes_idle_and_projection_follow_the_arithmetic() {
    let base = prometheus(Behaviour::Answers).await;
    let dir = with_pricing(PRICING);
    let output = cost(
        dir.path(),
        &[
            "--prometheus",
            &base,
            "--window",
            WINDOW,
            "--aggregate",
            "module",
            "--json",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let lines = &report["allocations"];
    // shortener: max(1, 0.5) cores and max(2, 1) GiB for 10 h.
    near(
        &lines["shortener"]["cpuCoreHours"],
        10.0,
        "shortener core-hours",
    );
    near(
        &lines["shortener"]["totalCost"],
        0.50,
        "shortener: 0.40 + 0.10",
    );
    // inference: usage 1.5 above its request of 1.
    near(&lines["inference"]["cpuCost"], 0.60, "inference cpu");
    near(
        &lines["inference"]["totalCost"],
        0.70,
        "inference: 0.60 + 0.10",
    );
    near(&lines["__idle__"]["totalCost"], 3.60, "idle: 4.80 - 1.20");
    near(&report["totalCost"], 4.80, "the two nodes for 10 h");
    near(&report["projectedMonthCost"], 4.80 * 72.0, "720 h / 10 h");
    assert_eq!(report["currency"], "USD");

    let output = cost(
        dir.path(),
        &[
            "--prometheus",
            &base,
            "--window",
            WINDOW,
            "--aggregate",
            "route",
            "--json",
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let route = &report["allocations"]["/{slug}"];
    near(&route["cpuCoreHours"], 1.0, "3,600 CPU-seconds");
    near(&route["cpuCost"], 0.04, "one core-hour");
    near(
        &route["costPer1kRequests"],
        0.00004,
        "per 1,000 of 1,000,000",
    );

    let output = cost(dir.path(), &["--prometheus", &base, "--window", WINDOW]).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    assert!(table.contains("cost by module"), "{table}");
    assert!(
        table.contains("__idle__") && table.contains("30-day projection: 345.60 USD"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_spend_per_key_and_model_is_priced_by_basis_against_budgets() {
    let base = prometheus(Behaviour::Answers).await;
    let dir = with_pricing(&format!("{PRICING}{LLM_PRICING}"));
    let args = |by: &'static str| ["--prometheus", &base, "--window", WINDOW, "--aggregate", by];
    let output = cost(dir.path(), &[&args("key")[..], &["--json"]].concat()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let keys = &report["allocations"];
    // team-a, external: 200 × 0.00015 + 50 × 0.0006 = 0.06; self-hosted:
    // smollm2's 10 h × 0.096 = 0.96, split 30,000 : 90,000 tokens, so
    // 0.24 for team-a and 0.72 for team-b.
    near(&keys["team-a"]["totalCost"], 0.30, "team-a: 0.06 + 0.24");
    near(
        &keys["team-a"]["externalCost"],
        0.30,
        "all of it priced outside",
    );
    near(&keys["team-b"]["totalCost"], 0.72, "team-b: 3/4 of 0.96");
    near(&keys["anonymous"]["totalCost"], 0.0, "mystery has no price");
    assert!(keys.get("__idle__").is_none(), "{keys}");
    near(&report["totalCost"], 1.02, "0.30 + 0.72");
    near(&report["projectedMonthCost"], 1.02 * 72.0, "720 h / 10 h");
    let spend = report["spend"].as_array().expect("spend lines");
    let mystery = spend
        .iter()
        .find(|l| l["model"] == "mystery")
        .expect("kept");
    assert_eq!(mystery["basis"], "unpriced");
    assert_eq!(mystery["completion_tokens"], 1000);
    let budgets = report["budgets"].as_array().expect("budgets");
    assert_eq!(budgets.len(), 2);
    // team-a: 0.30 × 72 = 21.60 a month, over 20; team-b: 51.84, under 100.
    near(&budgets[0]["projectedMonth"], 21.6, "team-a's month");
    assert_eq!(
        (&budgets[0]["name"], &budgets[0]["over"]),
        (&json!("team-a"), &json!(true))
    );
    near(&budgets[1]["projectedMonth"], 51.84, "team-b's month");
    assert_eq!(budgets[1]["over"], false);

    let output = cost(dir.path(), &args("model")).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    assert!(table.contains("cost by model"), "{table}");
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // NAME, core-h, GiB-h, CPU, RAM, OTHER, TOTAL, SHARE, PER 1K REQ
    assert_eq!(line("smollm2")[6], "0.9600", "{table}");
    assert_eq!(line("gpt-4o-mini")[6], "0.0600", "{table}");
    assert_eq!(line("smollm2")[7], "94.1%", "0.96 / 1.02: {table}");
    assert!(table.contains("30-day projection: 73.44 USD"), "{table}");
    assert!(
        table.contains("unpriced (no price in cost.yaml, counted at 0): mystery"),
        "{table}"
    );

    let output = cost(dir.path(), &args("key")).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("budget of key team-a: 20.00 USD a month, projected 21.60 (over)")
            && table.contains("budget of key team-b: 100.00 USD a month, projected 51.84\n"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_a_broken_prometheus_are_clear_errors() {
    let base = prometheus(Behaviour::Answers).await;
    let negative = with_pricing(&PRICING.replace("0.04", "-0.04"));
    let output = cost(
        negative.path(),
        &["--prometheus", &base, "--window", WINDOW],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("resources.cpu_core_hour") && stderr.contains("line 3"),
        "{stderr}"
    );

    let no_currency = with_pricing(&PRICING.replace("currency: USD\n", ""));
    let output = cost(no_currency.path(), &["--prometheus", &base]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("currency"));

    let dir = with_pricing(PRICING);
    let output = cost(dir.path(), &["--prometheus", &base, "--window", "7x"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("window `7x`"), "{stderr}");

    let down = format!("http://127.0.0.1:{}", testkit::free_port());
    let output = cost(dir.path(), &["--prometheus", &down, "--window", WINDOW]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not answer") && stderr.contains(&down),
        "{stderr}"
    );
    let by_key = [
        "--prometheus",
        &down,
        "--window",
        WINDOW,
        "--aggregate",
        "key",
    ];
    let output = cost(dir.path(), &by_key).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");

    let refusing = prometheus(Behaviour::Refuses).await;
    let output = cost(dir.path(), &["--prometheus", &refusing, "--window", WINDOW]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad_data"), "{stderr}");
}
