//! The controller's API, black-box over HTTP on port 0, against a target
//! kept in memory: runs start, a second one on the same target is refused,
//! bad specs and unknown targets name what is wrong, abort rolls back.

use async_trait::async_trait;
use canary::Controller;
use kit::traffic::{basis_points, SplitError, SplitRegistry, SplitState, TrafficSplits};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One route, `links`, split between `stable` and `canary`.
struct Route(Mutex<SplitState>);

#[async_trait]
impl TrafficSplits for Route {
    async fn list(&self) -> Result<Vec<SplitState>, SplitError> {
        Ok(vec![self.0.lock().unwrap().clone()])
    }
    async fn get(&self, name: &str) -> Result<SplitState, SplitError> {
        let state = self.0.lock().unwrap().clone();
        (state.name == name)
            .then_some(state)
            .ok_or_else(|| SplitError::UnknownName(name.to_string()))
    }
    async fn set(&self, name: &str, percent: f64, reason: &str) -> Result<SplitState, SplitError> {
        let points = basis_points(percent)?;
        self.get(name).await?;
        let mut state = self.0.lock().unwrap();
        state.percent = f64::from(points) / 100.0;
        state.updated_by = Some(reason.to_string());
        Ok(state.clone())
    }
}

struct App {
    controller: Controller,
    url: String,
    client: reqwest::Client,
    route: Arc<Route>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("canary.db").display());
    let store = canary::store::RunStore::connect(&db, &kit::storage::PoolConfig::default())
        .await
        .unwrap();
    let route = Arc::new(Route(Mutex::new(SplitState {
        name: "links".into(),
        baseline: "stable".into(),
        canary: "canary".into(),
        percent: 0.0,
        updated_at: None,
        updated_by: None,
    })));
    let registry = SplitRegistry::new();
    registry.register("gateway", route.clone());
    let controller = Controller::new(
        store,
        slo::catalog::load_platform().unwrap(),
        canary::targets(registry, None),
        canary::sources(None),
        Arc::new(kit::SystemClock),
        TaskTracker::new(),
        CancellationToken::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = canary::http::routes(controller.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    App {
        controller,
        url: format!("http://{addr}"),
        client: reqwest::Client::new(),
        route,
        _dir: dir,
    }
}

const SPEC: &str = "\
name: links-v2
target:
  gateway:
    route: links
steps:
  - {weight: 5, dwell: 1m}
  - {weight: 50, dwell: 1m}
metrics:
  - slo: gateway-availability
max_duration: 10m
";

impl App {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/yaml")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_run_starts_at_its_first_weight_and_a_second_is_refused() {
    let app = spawn_app().await;
    let (status, run) = app.post("/canary/v1/runs", SPEC).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["target"], "gateway/links");
    assert_eq!(run["weight"], 5.0);
    assert_eq!(app.route.0.lock().unwrap().percent, 5.0);

    let (status, body) = app
        .post("/canary/v1/runs", &SPEC.replace("links-v2", "links-v3"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "/problems/canary-running");

    let (status, detail) = app.get("/canary/v1/runs/gateway%2Flinks").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["run"]["phase"], "running");

    let (status, aborted) = app
        .post(
            "/canary/v1/runs/gateway%2Flinks/abort",
            r#"{"by": "alice"}"#,
        )
        .await;
    assert_eq!(status, 200, "{aborted}");
    assert_eq!(aborted["phase"], "aborted");
    assert_eq!(aborted["weight"], 0.0);
    assert!(
        aborted["reason"].as_str().unwrap().contains("alice"),
        "{aborted}"
    );
    assert_eq!(app.route.0.lock().unwrap().percent, 0.0);

    let id = run["id"].as_str().unwrap();
    let (status, body) = app.post(&format!("/canary/v1/runs/{id}/promote"), "").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "/problems/canary-finished");

    // The target is free again.
    let (status, body) = app
        .post("/canary/v1/runs", &SPEC.replace("links-v2", "links-v4"))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn bad_specs_and_targets_are_refused_naming_what_is_wrong() {
    let app = spawn_app().await;
    let cases = [
        (
            SPEC.replace("weight: 50", "weight: 4"),
            422,
            "steps[1].weight",
        ),
        (
            SPEC.replace("weight: 50", "weight: 150"),
            422,
            "steps[1].weight",
        ),
        (
            SPEC.replace("dwell: 1m}\nmetrics", "dwell: 0s}\nmetrics"),
            422,
            "steps[1].dwell",
        ),
        (
            SPEC.replace("gateway-availability", "gateway-joy"),
            422,
            "metrics[0].slo",
        ),
        (SPEC.replace("  gateway:\n", "  mesh:\n"), 422, "target"),
    ];
    for (spec, status, field) in cases {
        let (got, body) = app.post("/canary/v1/runs", &spec).await;
        assert_eq!(got, status, "{field}: {body}");
        let names: Vec<&str> = body["invalid_params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with(field)),
            "{field}: {body}"
        );
    }
    let (status, body) = app
        .post(
            "/canary/v1/runs",
            &SPEC.replace("route: links", "route: nowhere"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "/problems/unknown-target");
    assert!(
        body["detail"].as_str().unwrap().contains("nowhere"),
        "{body}"
    );
    assert_eq!(app.route.0.lock().unwrap().percent, 0.0, "nothing moved");
}

#[tokio::test]
async fn a_prometheus_that_is_down_keeps_the_canary_from_starting() {
    let app = spawn_app().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let spec = format!("{SPEC}metrics_source:\n  prometheus: http://{addr}\n");
    let (status, body) = app.post("/canary/v1/runs", &spec).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "/problems/metrics-unreadable");
    assert_eq!(
        app.route.0.lock().unwrap().percent,
        0.0,
        "never moved, never promoted"
    );
    let (_, runs) = app.get("/canary/v1/runs").await;
    assert_eq!(runs, serde_json::json!([]));
}

#[tokio::test]
async fn the_judge_endpoint_checks_its_parameters() {
    let app = spawn_app().await;
    let ok = "/canary/v1/judge?target=gateway/links&baseline=stable&canary=canary&slo=gateway-availability";
    let (status, body) = app.get(ok).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "inconclusive", "no traffic yet: {body}");
    for (query, status) in [
        (
            "target=mesh/x&baseline=a&canary=b&slo=gateway-availability",
            400,
        ),
        ("target=gateway/links&baseline=a&canary=b&slo=nope", 422),
        (
            "target=gateway/links&baseline=a%20b&canary=b&slo=gateway-availability",
            400,
        ),
        (
            "target=gateway/links&baseline=a&canary=b&slo=gateway-availability&window=0s",
            400,
        ),
        (
            "target=inference/digits&baseline=one&canary=2&slo=inference-accuracy",
            400,
        ),
        (
            "target=gateway/links&baseline=a&canary=b&slo=inference-accuracy",
            422,
        ),
        ("target=gateway/links&baseline=a&canary=b", 400),
    ] {
        let (got, body) = app.get(&format!("/canary/v1/judge?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
    }
    let argo = "/canary/v1/judge?target=pods/shortener&baseline=5d8f9c7b6&canary=6b7c8d9f0&slo=shortener-redirect-availability,shortener-redirect-latency&window=5m";
    let (status, body) = app.get(argo).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "inconclusive", "{body}");
    let (status, _) = app.get("/canary/v1/runs/nope").await;
    assert_eq!(status, 404);
}

/// A YAML file of the repository as JSON.
fn yaml_file(path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text = std::fs::read_to_string(&path).unwrap();
    yamlspec::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_shipped_argo_analysis_template_calls_the_judge_as_it_answers() {
    let app = spawn_app().await;
    let template = yaml_file("deploy/base/common/analysis-template.yaml");
    let metric = &template["spec"]["metrics"][0];
    assert_eq!(metric["successCondition"], "result == \"pass\"");
    assert_eq!(metric["failureCondition"], "result == \"fail\"");
    assert_eq!(metric["provider"]["web"]["jsonPath"], "{$.verdict}");
    let url = metric["provider"]["web"]["url"].as_str().unwrap();
    for file in [
        "deploy/base/shortener/rollout.yaml",
        "deploy/base/inference/rollout.yaml",
    ] {
        let rollout = yaml_file(file);
        let analysis = &rollout["spec"]["strategy"]["canary"]["analysis"];
        assert_eq!(
            analysis["templates"][0]["templateName"], template["metadata"]["name"],
            "{file}"
        );
        let arg = |name: &str| {
            analysis["args"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == name)
                .and_then(|a| a["value"].as_str())
                .unwrap_or_else(|| panic!("{file}: no arg {name}"))
                .to_string()
        };
        // Argo fills the template; the judge must accept what it sends.
        let filled = url
            .replace("{{args.service}}", &arg("service"))
            .replace("{{args.slos}}", &arg("slos"))
            .replace("{{args.stable-hash}}", "5d8f9c7b6")
            .replace("{{args.canary-hash}}", "6b7c8d9f0")
            .replace("{{args.window}}", "5m");
        let path = &filled[filled.find("/canary/v1/judge").unwrap()..];
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{file}: {path}: {body}");
        assert!(
            ["pass", "fail", "inconclusive"].contains(&body["verdict"].as_str().unwrap()),
            "{body}"
        );
    }
}

#[test]
fn the_shipped_canary_specs_compile() {
    let slos = slo::catalog::load_platform().unwrap();
    for file in ["deploy/canary/shortener.yaml", "deploy/canary/digits.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        canary::spec::compile(&text, &slos).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[tokio::test]
async fn a_manual_promotion_is_recorded_with_who_asked() {
    let app = spawn_app().await;
    let (status, run) = app.post("/canary/v1/runs", SPEC).await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap();
    let (status, body) = app
        .post(&format!("/canary/v1/runs/{id}/promote"), r#"{"by": "bob"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phase"], "promoted");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("bob") && reason.contains("manual"),
        "{reason}"
    );
    assert_eq!(app.route.0.lock().unwrap().percent, 100.0);
    let (_, detail) = app.get(&format!("/canary/v1/runs/{id}")).await;
    let last = detail["decisions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "promote", "{detail}");
}

#[tokio::test]
async fn specs_in_the_watched_directory_start_once() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("links.yaml"), SPEC).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "name: [").unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        SPEC.replace("links-v2", "other"),
    )
    .unwrap();
    let mut refused = std::collections::HashSet::new();
    let started = canary::watch::scan(&app.controller, dir.path(), &mut refused).await;
    assert_eq!(started, 1);
    assert_eq!(refused.len(), 1, "the broken spec is reported once");
    assert_eq!(app.route.0.lock().unwrap().percent, 5.0);
    let again = canary::watch::scan(&app.controller, dir.path(), &mut refused).await;
    assert_eq!(again, 0, "a spec that ran is not run again");
    let (_, runs) = app.get("/canary/v1/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
}

#[tokio::test]
async fn runs_are_recorded_on_the_change_timeline() {
    use kit::changes::{ChangeKind, ChangeRecorder, MemoryChangeLog};
    let app = spawn_app().await;
    let log = MemoryChangeLog::new(10);
    app.controller.record_changes(ChangeRecorder(log.clone()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("links.yaml"), SPEC).unwrap();
    let mut refused = std::collections::HashSet::new();
    assert_eq!(
        canary::watch::scan(&app.controller, dir.path(), &mut refused).await,
        1
    );
    let (_, runs) = app.get("/canary/v1/runs").await;
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(&format!("/canary/v1/runs/{id}/promote"), r#"{"by": "bob"}"#)
        .await;
    assert_eq!(status, 200, "{body}");

    let events: Vec<_> = log.snapshot().into_iter().map(|c| c.event).collect();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::CanaryStep,
            ChangeKind::ConfigReload,
            ChangeKind::CanaryPromoted
        ],
        "{events:?}"
    );
    for event in &events {
        assert_eq!(event.service, "canary");
        assert_eq!(event.actor, format!("canary:{id}"));
        assert_eq!(event.subject, runs[0]["target"].as_str().unwrap());
    }
    assert!(
        events[0].summary.contains("links-v2 started: 5%"),
        "{}",
        events[0].summary
    );
    assert!(
        events[1].summary.contains("links.yaml"),
        "{}",
        events[1].summary
    );
    assert!(events[2].summary.contains("bob"), "{}", events[2].summary);
}
