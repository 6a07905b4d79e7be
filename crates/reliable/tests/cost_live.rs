//! The platform measures its own cost: `reliable up` with a short
//! `cost.tick`, some redirects, then `GET /api/v1/cost/allocation` (keys,
//! bad queries, OpenCost's shape), `reliable cost --url`, and the history
//! after a restart. No clock crosses the process, so the test polls the
//! endpoint (bounded) until the buckets show the traffic.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::{create_key, reliable, start, stop, Running};

/// How long the buckets may take to show what was sent.
const DEADLINE: Duration = Duration::from_secs(60);

fn up(data: &Path) -> Running {
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data)
        .env("RELIABLE_COST_TICK", "200ms")
        // Every request measured: 40 redirects at one in 32 may leave the
        // shortener with no measured CPU, and so (overhead being shared by
        // measured CPU) no share of the overhead to assert on.
        .env("RELIABLE_HTTP_COST_SAMPLE_EVERY", "1")
        .env("RELIABLE_COST_CAPACITY_CORES", "2");
    start(cmd)
}

async fn redirects(http: &reqwest::Client, base: &str, count: usize) {
    let created = http
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": "cost-live"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    for _ in 0..count {
        let answer = http
            .get(format!("{base}/cost-live"))
            .send()
            .await
            .expect("redirect");
        assert!(answer.status().is_redirection(), "{}", answer.status());
    }
}

async fn allocation(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = http.get(format!("{base}/api/v1/cost/allocation?{query}"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("allocation");
    let status = response.status().as_u16();
    if status != 200 {
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(kind, "application/problem+json", "{status}");
    }
    (status, response.json().await.expect("json"))
}

/// The shortener's requests in the last hour, once they reach `at_least`.
async fn shortener_requests(http: &reqwest::Client, base: &str, key: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = allocation(http, base, "window=1h&aggregate=module", Some(key)).await;
        assert_eq!(status, 200, "{body}");
        let requests = body["data"][0]["shortener"]["requests"]
            .as_u64()
            .unwrap_or(0);
        if requests >= at_least {
            return requests;
        }
        assert!(
            Instant::now() < deadline,
            "the buckets never showed {at_least} shortener requests: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cost_cli(args: &[&str], key: Option<&str>) -> Output {
    let mut command = reliable();
    command.arg("cost").args(args).env_remove("RELIABLE_URL");
    match key {
        Some(key) => command.env("RELIABLE_API_KEY", key),
        None => command.env_remove("RELIABLE_API_KEY"),
    };
    tokio::task::spawn_blocking(move || command.output().expect("run reliable cost"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_prices_its_own_traffic_behind_cost_read() {
    let dir = tempfile::tempdir().expect("dir");
    let reader = create_key(dir.path(), "finance", "cost:read");
    let writer = create_key(dir.path(), "links", "links:write");
    let app = up(dir.path());
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    redirects(&http, &base, 40).await;
    let seen = shortener_requests(&http, &base, &reader, 41).await;

    // Keys: none, unknown, without the scope.
    let (status, body) = allocation(&http, &base, "window=1h", None).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (401, Some("/problems/unauthorized"))
    );
    let unknown = "rlk_0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        allocation(&http, &base, "window=1h", Some(unknown)).await.0,
        401
    );
    let (status, body) = allocation(&http, &base, "window=1h", Some(&writer)).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("/problems/forbidden"))
    );

    // Bad queries, each a 400 naming the parameter.
    for (query, parameter) in [
        ("window=7x", "window"),
        ("", "window"),
        ("window=1h&aggregate=namespace", "aggregate"),
        ("window=1h&step=2h", "step"),
        ("window=1h&step=1m", "step"),
        ("window=1h&includeIdle=maybe", "includeIdle"),
    ] {
        let (status, body) = allocation(&http, &base, query, Some(&reader)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["type"], "/problems/invalid-query", "{query}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(parameter),
            "{query}: {body}"
        );
    }

    // OpenCost's shape: one set, lines with its field names, idle a line.
    let (status, body) =
        allocation(&http, &base, "window=1h&aggregate=module", Some(&reader)).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 200);
    assert_eq!(body["pricing"], "example");
    assert_eq!(body["currency"], "USD");
    let set = &body["data"][0];
    let shortener = &set["shortener"];
    for field in [
        "cpuCost",
        "ramCost",
        "totalCost",
        "cpuCoreUsageAverage",
        "minutes",
        "sharedCost",
    ] {
        assert!(shortener[field].is_number(), "{field}: {shortener:#}");
    }
    assert!(shortener["minutes"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(
        shortener["sharedCost"].as_f64().unwrap_or(0.0) > 0.0,
        "{shortener:#}"
    );
    assert!(
        set["__idle__"]["cpuCost"].as_f64().unwrap_or(0.0) > 0.0,
        "{set:#}"
    );
    let (_, shared) = allocation(
        &http,
        &base,
        "window=1h&aggregate=module&shareIdle=true",
        Some(&reader),
    )
    .await;
    assert!(shared["data"][0].get("__idle__").is_none());
    let (_, steps) = allocation(
        &http,
        &base,
        "window=1h&step=5m&aggregate=route",
        Some(&reader),
    )
    .await;
    assert_eq!(steps["data"].as_array().map(Vec::len), Some(12));

    // `reliable cost --url`: the same numbers as a table.
    let url = base.as_str();
    let output = cost_cli(&["--url", url, "--window", "1h"], Some(&reader)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "cost by module",
        "shortener",
        "__idle__",
        "30-day projection",
        "example prices",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    println!("{stdout}");
    let output = cost_cli(
        &[
            "--url",
            url,
            "--window",
            "1h",
            "--json",
            "--aggregate",
            "route",
        ],
        Some(&reader),
    )
    .await;
    let json: Value = serde_json::from_slice(&output.stdout).expect("--json");
    assert_eq!(json["aggregate"], "route");
    assert!(json["projectedMonthCost"].as_f64().unwrap_or(0.0) > 0.0);

    let output = cost_cli(&["--url", url], None).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RELIABLE_API_KEY"));
    let output = cost_cli(&["--url", url, "--window", "7x"], Some(&reader)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("7x"), "{stderr}");
    let output = cost_cli(&["--url", url, "--aggregate", "pod"], Some(&reader)).await;
    assert_eq!(output.status.code(), Some(2));
    let output = cost_cli(&["--url", url, "--prometheus", url], Some(&reader)).await;
    assert_eq!(output.status.code(), Some(2));
    let down = format!("http://127.0.0.1:{}", testkit::free_port());
    let output = cost_cli(&["--url", &down], Some(&reader)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");

    // A restart keeps the history.
    stop(app).await;
    let app = up(dir.path());
    let base = format!("http://{}", app.addr);
    let after = shortener_requests(&http, &base, &reader, seen).await;
    assert!(after >= seen, "{after} < {seen}");
    stop(app).await;
}

/// A `serve` without the gateway and without a database measures itself
/// but has no key store to check a key against: 503, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_without_a_key_store_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let app = start(support::serve("inference", dir.path()));
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let (status, body) = allocation(&http, &base, "window=1h", Some("rlk_x")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "/problems/unavailable");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("key store"),
        "{body}"
    );
    stop(app).await;

    // Modules on a SQLite URL keep their migrations in its file: the cost
    // API must not open the key store there (it would refuse to migrate
    // and stop the process); it measures and answers 503 the same way.
    let mut cmd = support::serve("shortener", dir.path());
    cmd.env(
        "RELIABLE_DATABASE_URL",
        format!("sqlite://{}", dir.path().join("modules.db").display()),
    );
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let (status, body) = allocation(&http, &base, "window=1h", Some("rlk_x")).await;
    assert_eq!(status, 503, "{body}");
    stop(app).await;
}

/// Every schema the endpoint's OpenAPI operation refers to is in the
/// document (Schemathesis and client generators stop at a dangling one).
#[test]
fn the_endpoint_s_schema_references_resolve() {
    let out = reliable()
        .arg("openapi")
        .output()
        .expect("reliable openapi");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut pending = vec![doc["paths"]["/api/v1/cost/allocation"].clone()];
    assert!(pending[0]["get"].is_object(), "no cost operation");
    let mut seen = std::collections::BTreeSet::new();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let name = target
                        .strip_prefix("#/components/schemas/")
                        .unwrap_or_else(|| panic!("unexpected reference {target}"));
                    let schema = &doc["components"]["schemas"][name];
                    assert!(schema.is_object(), "{target} is not in the document");
                    if seen.insert(name.to_string()) {
                        pending.push(schema.clone());
                    }
                }
                pending.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    for name in [
        "AllocationResponse",
        "Allocation",
        "Aggregate",
        "PricingSource",
    ] {
        assert!(seen.contains(name), "{name} not reached: {seen:?}");
    }
}
