//! Scenario files run end to end against a tiny link shortener on port 0:
//! setup captures, hot-set key choice, checks, nothing lost between what
//! the tool counted and what the server saw, a capture that never matches,
//! `take` pipelines, and a threshold that aborts the run.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use reliable_load::scenario::{compile, CompileOptions};
use reliable_load::{run, EngineOptions, SetupError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Links {
    created: AtomicU64,
    visits: Mutex<HashMap<String, u64>>,
    confirmed: Mutex<Vec<String>>,
}

async fn create(State(links): State<Arc<Links>>) -> impl IntoResponse {
    let n = links.created.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"slug": format!("s{n}"), "n": n})),
    )
}

async fn redirect(State(links): State<Arc<Links>>, Path(slug): Path<String>) -> impl IntoResponse {
    if let Ok(mut visits) = links.visits.lock() {
        *visits.entry(slug).or_default() += 1;
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, "https://example.com/")],
    )
}

async fn confirm(State(links): State<Arc<Links>>, Path(slug): Path<String>) -> impl IntoResponse {
    if let Ok(mut confirmed) = links.confirmed.lock() {
        confirmed.push(slug);
    }
    StatusCode::NO_CONTENT
}

async fn serve() -> (String, Arc<Links>) {
    let links = Arc::new(Links::default());
    let router = Router::new()
        .route("/links", post(create))
        .route("/links/{slug}/confirm", post(confirm))
        .route("/{slug}", get(redirect))
        .with_state(links.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), links)
}

fn options(target: &str) -> CompileOptions {
    CompileOptions {
        target: Some(url::Url::parse(target).expect("target")),
    }
}

const SHORTENER: &str = r#"
setup:
  - name: create-link
    repeat: 50
    concurrency: 4
    method: POST
    url: "{{target}}/links"
    json: {url: "https://example.com/{{random.string(8)}}"}
    capture:
      slugs: {json: /slug}
    expect_status: [201]
scenarios:
  viral:
    rate: 1000
    duration: 600ms
    connections: 16
    requests:
      - name: redirect
        url: "{{target}}/{{pool.slugs | hot(80%, 20%)}}"
        checks:
          - {name: is redirect, status: [301, 302, 307, 308]}
          - {name: has location, header: location}
thresholds:
  checks: ["rate > 99%"]
  "http_req_duration{name:redirect}": ["p(99) < 10s"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_seeds_the_pool_and_the_hot_set_gets_the_traffic_with_nothing_lost() {
    let (target, links) = serve().await;
    let plan = compile(SHORTENER, &options(&target)).expect("compiles");

    let results = run(
        &plan,
        &EngineOptions {
            threads: Some(2),
            stop: None,
        },
        &mut [],
    )
    .await
    .expect("setup seeds");

    assert_eq!(results.setup[0].captured.values().sum::<u64>(), 50);
    assert_eq!(links.created.load(Ordering::SeqCst), 50);
    let redirects = &results.scenarios[0].requests[0].1;
    let found = redirects.status_counts.get(&302).copied().unwrap_or(0);
    assert!(found >= 500, "{redirects:?}");
    assert_eq!(redirects.checks.get("is redirect"), Some(&(found, 0)));
    // Nothing lost: every redirect the tool counted reached the server.
    let visits = links.visits.lock().expect("visits").clone();
    assert_eq!(visits.values().sum::<u64>(), found);
    // The first 20% of the pool (10 of 50 slugs, in capture order, which
    // is creation order only per connection, so count by the pool's own
    // order: the 10 most visited) get about 80% of the redirects.
    let mut counts: Vec<u64> = visits.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let hot: u64 = counts.iter().take(10).sum();
    let share = hot as f64 / found as f64;
    assert!((0.7..0.9).contains(&share), "hot share {share}");
    let verdicts = reliable_load::threshold::evaluate_all(&plan.thresholds, &results);
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_that_never_matches_fails_setup_with_its_line() {
    let (target, _) = serve().await;
    let file = SHORTENER.replace("{json: /slug}", "{json: /no-such-field}");
    let plan = compile(&file, &options(&target)).expect("compiles");

    let error = run(&plan, &EngineOptions::default(), &mut [])
        .await
        .expect_err("the capture never matches");

    match &error {
        SetupError::CaptureMissed {
            matched,
            answered,
            line,
            ..
        } => {
            assert_eq!(*matched, 0);
            assert_eq!(*answered, 50);
            assert_eq!(*line, 10, "{error}");
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("/no-such-field"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_moves_each_key_through_a_pipeline_once() {
    let (target, links) = serve().await;
    let file = r#"
scenarios:
  flow:
    rate: 400
    duration: 500ms
    connections: 8
    requests:
      - name: create
        method: POST
        url: "{{target}}/links"
        json: {}
        capture: {created: {json: /slug}}
        expect_status: [201]
      - name: confirm
        method: POST
        url: "{{target}}/links/{{pool.created | take}}/confirm"
"#;
    let plan = compile(file, &options(&target)).expect("compiles");

    let results = run(
        &plan,
        &EngineOptions {
            threads: Some(1),
            stop: None,
        },
        &mut [],
    )
    .await
    .expect("runs");

    let confirm = &results.scenarios[0].requests[1].1;
    let confirmed = links.confirmed.lock().expect("confirmed").clone();
    assert_eq!(confirmed.len() as u64, confirm.ok);
    let mut unique = confirmed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), confirmed.len(), "a key was taken twice");
    // The first arrivals find the pool empty: skipped and counted.
    assert!(confirm.skipped_empty_pool + confirm.sent > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_abort_on_fail_threshold_ends_the_run_early() {
    let (target, _) = serve().await;
    let file = r#"
scenarios:
  long:
    rate: 200
    duration: 30s
    requests:
      - name: r
        url: "{{target}}/x"
thresholds:
  http_req_duration:
    - {threshold: "p(50) < 0.001ms", abort_on_fail: true, delay_abort_eval: 1s}
"#;
    let plan = compile(file, &options(&target)).expect("compiles");

    let results = run(&plan, &EngineOptions::default(), &mut [])
        .await
        .expect("runs");

    let reason = results.aborted_by.clone().expect("aborted");
    assert!(reason.contains("p(50) < 0.001ms"), "{reason}");
    assert!(
        results.elapsed < Duration::from_secs(20),
        "{:?}",
        results.elapsed
    );
    let scenario = &results.scenarios[0];
    // Only what was due before the abort counts as scheduled.
    assert!(scenario.scheduled < 200 * 20, "{}", scenario.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_threshold_waits_for_its_scenario_to_be_measured() {
    let (target, _) = serve().await;
    // `later` starts after `first`: until then its threshold has nothing to
    // judge, which must not abort the run (it holds once `later` runs).
    let file = r#"
scenarios:
  first:
    rate: 50
    duration: 1500ms
    requests:
      - name: r
        url: "{{target}}/x"
  later:
    rate: 50
    duration: 1s
    requests:
      - name: r
        url: "{{target}}/x"
thresholds:
  "http_req_duration{scenario:later}":
    - {threshold: "p(99) < 10s", abort_on_fail: true}
"#;
    let plan = compile(file, &options(&target)).expect("compiles");

    let results = run(
        &plan,
        &EngineOptions {
            threads: Some(1),
            stop: None,
        },
        &mut [],
    )
    .await
    .expect("runs");

    assert_eq!(results.aborted_by, None);
    assert!(results.scenarios[1].requests[0].1.sent > 0);
}
