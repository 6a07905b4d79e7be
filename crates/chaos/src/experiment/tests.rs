//! Parsing, validation and the runner against a fake toxiproxy API and a
//! fake service (axum on 127.0.0.1:0).

use super::*;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::path::Path;
use std::sync::{Arc, Mutex};

fn env(name: &str) -> Option<String> {
    (name == "FROM_ENV").then(|| "http://127.0.0.1:9".to_string())
}

fn parse_text(text: &str) -> Result<Experiment, ExperimentError> {
    parse_with_env(text, Path::new("."), &[], &env)
}

const VALID: &str = r#"
title: a valid experiment
configuration:
  service: {type: env, key: FROM_ENV, default: "http://127.0.0.1:1"}
  fallback: {type: env, key: NOT_SET, default: "10ms"}
  proxy_api: http://127.0.0.1:8474
  latency: 200
steady-state-hypothesis:
  title: it answers
  interval: 500ms
  probes:
    - name: health
      type: http
      url: ${service}/readyz
      tolerance: {one_of: [200]}
    - name: orders
      type: count
      left: {type: http, url: "${service}/a", pointer: /n}
      right: {type: metric, url: "${service}/metrics", metric: x_total}
      tolerance: {equals: 0}
      when: [after]
method:
  - type: toxic.add
    name: slow db
    proxy: postgres
    toxic: {name: pg-latency, type: latency, attributes: {latency: "${latency}", jitter: 0}}
    pauses: {after: "${fallback}"}
rollbacks:
  - type: toxic.remove
    proxy: postgres
    toxic: pg-latency
"#;

#[test]
fn a_valid_file_reads_with_its_variables() {
    let experiment = parse_text(VALID).expect("valid");
    let hypothesis = experiment.hypothesis.as_ref().expect("hypothesis");
    assert_eq!(hypothesis.interval, std::time::Duration::from_millis(500));
    let model::ProbeSpec::Http(http) = &hypothesis.probes[0].spec else {
        panic!("http")
    };
    assert_eq!(
        http.url, "http://127.0.0.1:9/readyz",
        "env wins over the default"
    );
    assert_eq!(hypothesis.probes[1].when, vec![model::Phase::After]);
    let model::ActionSpec::ToxicAdd(add) = &experiment.method[0].spec else {
        panic!("toxic.add")
    };
    assert_eq!(add.toxic.attributes["latency"], 200.0);
    assert_eq!(add.api.as_deref(), Some("http://127.0.0.1:8474"));
    assert_eq!(
        experiment.method[0].pauses.after.map(|d| d.0),
        Some(std::time::Duration::from_millis(10))
    );
    // --var overrides configuration.
    let vars = [("latency".to_string(), "5".to_string())];
    let experiment = parse_with_env(VALID, Path::new("."), &vars, &env).expect("valid");
    let model::ActionSpec::ToxicAdd(add) = &experiment.method[0].spec else {
        panic!("toxic.add")
    };
    assert_eq!(add.toxic.attributes["latency"], 5.0);
}

/// Each bad input is refused with the line and the field to edit.
#[test]
fn bad_inputs_name_their_line_and_field() {
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "type: toxic.add",
            "type: toxic.addd",
            23,
            "unknown action type `toxic.addd`",
        ),
        (
            "type: count",
            "type: counter",
            16,
            "unknown probe type `counter`",
        ),
        (
            "      tolerance: {one_of: [200]}\n",
            "",
            12,
            "a probe in the hypothesis needs a tolerance",
        ),
        (
            "jitter: 0",
            "jitter: -5",
            23,
            "must be a non-negative number, got -5",
        ),
        (
            "type: latency,",
            "type: latency, toxicity: 1.5,",
            23,
            "toxic.toxicity: must be between 0 and 1, got 1.5",
        ),
        (
            "type: latency,",
            "type: nosuch,",
            23,
            "unknown toxic type `nosuch`",
        ),
        (
            "    proxy: postgres\n    toxic: {",
            "    proxy: postgres\n    proxie: x\n    toxic: {",
            26,
            "method[0].proxie: unknown field `proxie`",
        ),
        (
            "${service}/readyz",
            "${servise}/readyz",
            14,
            "`${servise}` is not defined",
        ),
        (
            "title: it answers",
            "title: it answers\n  intervall: 1s",
            10,
            "unknown field `intervall`",
        ),
        ("interval: 500ms", "interval: 500", 10, "not a duration"),
    ];
    for (from, to, line, message) in cases {
        assert!(VALID.contains(from), "{from}");
        let text = VALID.replacen(from, to, 1);
        let error = parse_text(&text).expect_err(to);
        let shown = error.to_string();
        assert!(shown.contains(message), "{to}: {shown}");
        assert_eq!(error.line, *line, "{to}: {shown}");
        assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
    }
}

#[test]
fn other_refusals() {
    let minimal =
        "title: t\nmethod:\n  - type: process.signal\n    process: db\n    signal: STOP\n";
    let error = parse_text(minimal).expect_err("unknown process");
    assert!(
        error.to_string().contains("no `process.start` before"),
        "{error}"
    );
    let error = parse_text("title: t\nmethod:\n  - type: pause\n").expect_err("no duration");
    assert!(error.to_string().contains("duration"), "{error}");
    let error = parse_text("title: t\nmethod:\n  - name: x\n").expect_err("no type");
    assert_eq!(error.path, "method[0].type");
    let error = parse_text("title: t\nsteady-state-hypothesis:\n  title: x\n  probes:\n    - {type: load, metric: p99_ms, tolerance: {max: 1}}\n")
        .expect_err("no load section");
    assert!(
        error.to_string().contains("needs a `load` section"),
        "{error}"
    );
    let error = parse_text("title: t\nbogus: 1\n").expect_err("unknown top-level key");
    assert!(
        error.to_string().contains("unknown field `bogus`"),
        "{error}"
    );
    let vars = [("bad name".to_string(), "1".to_string())];
    assert!(parse_with_env("title: t\n", Path::new("."), &vars, &env).is_err());
}

/// The fake toxiproxy API and a service that fails while a toxic named
/// `break` is present.
#[derive(Default)]
struct Fake {
    toxics: Mutex<Vec<String>>,
    requests: Mutex<Vec<String>>,
}

async fn fake() -> (String, Arc<Fake>) {
    let state = Arc::new(Fake::default());
    async fn add(
        State(s): State<Arc<Fake>>,
        UrlPath(p): UrlPath<String>,
        Json(body): Json<serde_json::Value>,
    ) -> StatusCode {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        s.requests
            .lock()
            .unwrap()
            .push(format!("add {p} {name} {}", body["attributes"]));
        s.toxics.lock().unwrap().push(name);
        StatusCode::OK
    }
    async fn remove(
        State(s): State<Arc<Fake>>,
        UrlPath((p, t)): UrlPath<(String, String)>,
    ) -> StatusCode {
        s.requests.lock().unwrap().push(format!("remove {p} {t}"));
        let mut toxics = s.toxics.lock().unwrap();
        match toxics.iter().position(|n| n == &t) {
            Some(i) => {
                toxics.remove(i);
                StatusCode::NO_CONTENT
            }
            None => StatusCode::NOT_FOUND,
        }
    }
    async fn health(State(s): State<Arc<Fake>>) -> StatusCode {
        if s.toxics.lock().unwrap().iter().any(|t| t == "break") {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        }
    }
    async fn count(State(s): State<Arc<Fake>>) -> Json<serde_json::Value> {
        Json(
            serde_json::json!({"n": s.toxics.lock().unwrap().len(), "items": [{"id": 1}, {"id": 2}]}),
        )
    }
    async fn replay(State(s): State<Arc<Fake>>, UrlPath(id): UrlPath<String>) -> StatusCode {
        s.requests.lock().unwrap().push(format!("replay {id}"));
        StatusCode::OK
    }
    let app = Router::new()
        .route("/proxies/{p}/toxics", post(add))
        .route("/proxies/{p}/toxics/{t}", delete(remove))
        .route("/health", get(health))
        .route("/count", get(count))
        .route("/replay/{id}", post(replay))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn experiment(base: &str, toxic: &str) -> Experiment {
    let text = format!(
        r#"
title: fake
configuration:
  proxy_api: {base}
steady-state-hypothesis:
  title: healthy
  interval: 50ms
  probes:
    - {{name: health, type: http, url: "{base}/health", tolerance: {{one_of: [200]}}}}
    - {{name: toxics, type: http, url: "{base}/count", pointer: /n, tolerance: {{max: 0}}, when: [after]}}
method:
  - {{type: toxic.add, proxy: db, toxic: {{name: {toxic}, type: latency, attributes: {{latency: 10}}}}}}
  - {{type: pause, duration: 300ms}}
  - {{type: toxic.remove, proxy: db, toxic: {toxic}}}
  - {{type: http, url: "{base}/replay/{{{{item}}}}", for_each: {{url: "{base}/count", items: /items, field: /id}}}}
rollbacks:
  - {{type: toxic.remove, proxy: db, toxic: {toxic}}}
"#
    );
    parse_text(&text).expect("valid")
}

#[tokio::test]
async fn a_hypothesis_that_holds_exits_0() {
    let (base, fake) = fake().await;
    let journal = run(&experiment(&base, "slow"), RunOptions::default()).await;
    assert_eq!(journal.status, Status::Ok, "{}", journal.render());
    assert_eq!(journal.exit_code(), exit::OK);
    assert!(journal
        .checks
        .iter()
        .any(|c| c.phase == model::Phase::During));
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests[0], "add db slow {\"latency\":10.0}");
    assert!(
        requests.contains(&"replay 1".to_string()) && requests.contains(&"replay 2".to_string())
    );
    // The rollback found nothing to remove: not an error.
    assert!(
        journal.activities.iter().all(|a| a.ok),
        "{}",
        journal.render()
    );
}

#[tokio::test]
async fn a_deviation_stops_the_method_runs_rollbacks_and_exits_1() {
    let (base, fake) = fake().await;
    let journal = run(&experiment(&base, "break"), RunOptions::default()).await;
    assert_eq!(journal.status, Status::Deviated, "{}", journal.render());
    assert_eq!(journal.exit_code(), exit::DEVIATED);
    let deviation = &journal.deviations[0];
    assert_eq!(
        (deviation.probe.as_str(), deviation.value),
        ("health", Some(503.0))
    );
    assert_eq!(deviation.phase, model::Phase::During);
    assert!(
        journal.render().contains("health (during"),
        "{}",
        journal.render()
    );
    // The method stopped before its own removal; the rollback removed it.
    let rollback = journal.activities.last().unwrap();
    assert_eq!((rollback.section, rollback.ok), ("rollbacks", true));
    assert!(fake.toxics.lock().unwrap().is_empty());
    let json = serde_json::to_value(&journal).unwrap();
    assert_eq!(json["status"], "deviated");
    assert_eq!(json["deviations"][0]["probe"], "health");
}

#[tokio::test]
async fn a_failed_action_aborts_with_3_and_still_rolls_back() {
    let (base, fake) = fake().await;
    let mut experiment = experiment(&base, "slow");
    // The toxiproxy API of the first action is unreachable.
    if let model::ActionSpec::ToxicAdd(add) = &mut experiment.method[0].spec {
        add.api = Some("http://127.0.0.1:1".into());
    }
    fake.toxics.lock().unwrap().push("slow".into());
    let journal = run(&experiment, RunOptions::default()).await;
    assert_eq!(journal.exit_code(), exit::ABORTED, "{}", journal.render());
    assert!(journal
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("toxiproxy API"));
    assert!(fake.toxics.lock().unwrap().is_empty(), "the rollback ran");
}

#[tokio::test]
async fn an_interrupted_run_rolls_back_and_exits_130() {
    let (base, fake) = fake().await;
    let options = RunOptions::default();
    let cancel = options.cancel.clone();
    let experiment = experiment(&base, "slow");
    let run = tokio::spawn(async move { run(&experiment, options).await });
    testkit_like_wait(|| !fake.toxics.lock().unwrap().is_empty()).await;
    cancel.cancel();
    let journal = run.await.unwrap();
    assert_eq!(
        journal.exit_code(),
        exit::INTERRUPTED,
        "{}",
        journal.render()
    );
    assert!(fake.toxics.lock().unwrap().is_empty(), "the rollback ran");
}

/// Polls until `done` (bounded).
async fn testkit_like_wait(done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn processes_and_files_are_owned_by_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
title: owned
method:
  - {{type: process.start, process: sleeper, command: [sleep, "30"]}}
  - {{type: process.signal, process: sleeper, signal: STOP}}
  - {{type: process.signal, process: sleeper, signal: CONT}}
  - {{type: process.restart, process: sleeper, signal: KILL}}
  - {{type: disk.fill, dir: "{}", bytes: 3000000}}
"#,
        dir.path().display()
    );
    let journal = run(&parse_text(&text).unwrap(), RunOptions::default()).await;
    assert_eq!(journal.status, Status::Ok, "{}", journal.render());
    assert!(
        journal.activities[4].note.contains("3000000 bytes"),
        "{}",
        journal.render()
    );
    assert!(
        !dir.path().join("chaos-fill").exists(),
        "removed at the end"
    );
    assert!(journal
        .clean_up
        .iter()
        .any(|n| n.contains("stopped `sleeper`")));
}

const SCHEMA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../experiments/experiment.schema.json"
);

/// The checked-in schema is what editors load; `UPDATE_SCHEMA=1 cargo
/// test -p reliable-chaos schema` rewrites it.
#[test]
fn the_checked_in_schema_matches_the_code() {
    if let Err(stale) = yamlspec::check_schema_file(
        SCHEMA_FILE.as_ref(),
        &json_schema(),
        "cargo test -p reliable-chaos schema",
    ) {
        panic!("{stale}");
    }
}

/// Every shipped experiment parses with its defaults.
#[test]
fn the_shipped_experiments_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            parse(&text, Path::new(dir), &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}
