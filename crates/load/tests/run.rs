//! The generator against a tiny in-process server on port 0. Runs are a few
//! hundred milliseconds and nothing asserts the machine's speed: only
//! counts (with generous margins), and that a stall injected by the server
//! shows up in the open model's tail.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use reliable_load::{run_url, EngineOptions, LoadError, LoadSpec, Report};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Serves `router` on 127.0.0.1:0 and returns the URL of `/r`.
async fn serve(router: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    url::Url::parse(&format!("http://{addr}/r")).expect("url")
}

/// A server whose handler is told how many requests came before.
async fn serve_counting<F, R>(answer: F) -> (url::Url, Arc<AtomicU64>)
where
    F: Fn(u64) -> R + Clone + Send + Sync + 'static,
    R: std::future::Future<Output = axum::response::Response> + Send + 'static,
{
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let url = serve(Router::new().route(
        "/r",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            answer(n)
        }),
    ))
    .await;
    (url, seen)
}

async fn run(spec: LoadSpec) -> Result<Report, LoadError> {
    run_url(spec, &EngineOptions::default()).await
}

fn spec(url: url::Url, rate: Option<f64>, duration_ms: u64, connections: usize) -> LoadSpec {
    LoadSpec {
        url,
        method: http::Method::GET,
        headers: vec![],
        rate,
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::ZERO,
        connections,
        timeout: Duration::from_secs(5),
    }
}

fn redirect() -> axum::response::Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, "https://example.com/")],
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_counts_redirects_as_successes() {
    let url = serve(Router::new().route("/r", get(|| async { redirect() }))).await;

    let report = run(spec(url, None, 300, 4)).await.expect("run");

    assert_eq!(report.model, "closed");
    assert!(report.completed > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.sent, report.completed);
    assert_eq!(report.status_counts.get(&302), Some(&report.completed));
    assert!(!report.fell_behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_sends_rate_times_duration_and_counts_each_status() {
    // Every third request is a 404: the counts must add up exactly.
    let (url, seen) = serve_counting(|n| async move {
        if n % 3 == 0 {
            StatusCode::NOT_FOUND.into_response()
        } else {
            redirect()
        }
    })
    .await;

    let report = run(spec(url, Some(1000.0), 300, 4)).await.expect("run");

    assert_eq!(report.model, "open");
    assert_eq!(report.scheduled, 300);
    // The schedule, not the server, decides how many are sent; a slow CI
    // machine may leave a few queued at the end.
    assert!((250..=300).contains(&report.sent), "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.completed, report.sent);
    let found = report.status_counts.get(&302).copied().unwrap_or(0);
    let missing = report.status_counts.get(&404).copied().unwrap_or(0);
    assert_eq!(found + missing, report.completed, "{report}");
    assert!(missing > 0 && found > missing, "{report}");
    // Without warmup every request sent is measured.
    assert_eq!(seen.load(Ordering::SeqCst), report.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_sent_but_not_measured() {
    let (url, seen) = serve_counting(|_| async { StatusCode::NO_CONTENT.into_response() }).await;
    let mut spec = spec(url, Some(1000.0), 200, 2);
    spec.warmup = Duration::from_millis(200);

    let report = run(spec).await.expect("run");

    assert_eq!(report.scheduled, 200);
    assert!(report.sent <= 200, "{report}");
    assert!(seen.load(Ordering::SeqCst) >= report.sent + 150, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_counts_a_stall_from_the_schedule() {
    // The 100th request stalls 200 ms: a slow upstream, simulated.
    let (url, _) = serve_counting(|n| async move {
        if n == 100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        StatusCode::NO_CONTENT.into_response()
    })
    .await;

    let report = run(spec(url, Some(1000.0), 600, 1)).await.expect("run");

    assert!((450..=600).contains(&report.sent), "{report}");
    assert_eq!(report.errors, 0, "{report}");
    // One connection: every request due during the stall waited for it. A
    // closed-model tool would report one slow request; the open model
    // reports the ~200 queued behind it, latency counted from when each
    // was due, so the stalled one is the slowest and the tail is long.
    assert!(report.latency.max_us >= 190_000, "{report}");
    assert!(report.latency.p90_us >= 10_000, "{report}");
    assert!(report.latency.p50_us < 190_000, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_the_connections_cannot_carry_is_reported_as_not_held() {
    // One connection to a server taking 20 ms a request carries ~50 req/s;
    // 1000 req/s were asked for. Most requests are never sent, and their
    // latencies are not in the histogram: the report must say so.
    let (url, _) = serve_counting(|_| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        StatusCode::NO_CONTENT.into_response()
    })
    .await;

    let report = run(spec(url, Some(1000.0), 300, 1)).await.expect("run");

    assert_eq!(report.scheduled, 300);
    assert!(report.sent < 100, "{report}");
    assert_eq!(report.behind_schedule, report.scheduled - report.sent);
    assert!(report.fell_behind, "{report}");
    assert!(report.to_string().contains("WARNING"), "{report}");
    // Those that were sent waited in line, and it shows.
    assert!(report.latency.max_us >= 100_000, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_an_error_and_the_connection_recovers() {
    // The 5th request never gets an answer.
    let (url, _) = serve_counting(|n| async move {
        if n == 5 {
            std::future::pending::<()>().await;
        }
        redirect()
    })
    .await;
    let mut spec = spec(url, None, 500, 1);
    spec.timeout = Duration::from_millis(200);

    let report = run(spec).await.expect("run");

    // A starved CI machine may time out an ordinary request too; the hung
    // one times out whatever the machine does.
    assert!(report.timeouts >= 1, "{report}");
    assert_eq!(report.errors, report.timeouts, "{report}");
    // Requests after the timeout went over a fresh connection.
    assert!(report.completed >= 5, "{report}");
    assert!(report.latency.max_us >= 200_000, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_after_each_answer_is_not_an_error() {
    let url = serve(Router::new().route(
        "/r",
        get(|| async { (StatusCode::FOUND, [(header::CONNECTION, "close")]) }),
    ))
    .await;

    let report = run(spec(url, None, 200, 2)).await.expect("run");

    assert!(report.completed > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.status_counts.get(&302), Some(&report.completed));
}

#[tokio::test]
async fn bad_specs_fail_before_any_load() {
    let url = url::Url::parse("http://127.0.0.1:9/r").expect("url");
    let bad = |change: fn(&mut LoadSpec)| {
        let mut spec = spec(url.clone(), Some(100.0), 100, 1);
        change(&mut spec);
        spec
    };
    type Expected = fn(&LoadError) -> bool;
    let cases: Vec<(LoadSpec, Expected)> = vec![
        (
            bad(|s| s.url = url::Url::parse("ftp://example.com/").expect("url")),
            |e| matches!(e, LoadError::Scheme(s) if s == "ftp"),
        ),
        (
            bad(|s| s.url = url::Url::parse("file:///tmp/x").expect("url")),
            |e| matches!(e, LoadError::Scheme(_)),
        ),
        (bad(|s| s.rate = Some(0.0)), |e| {
            matches!(e, LoadError::Rate(_))
        }),
        (bad(|s| s.rate = Some(-5.0)), |e| {
            matches!(e, LoadError::Rate(_))
        }),
        (bad(|s| s.rate = Some(f64::NAN)), |e| {
            matches!(e, LoadError::Rate(_))
        }),
        (bad(|s| s.rate = Some(f64::INFINITY)), |e| {
            matches!(e, LoadError::Rate(_))
        }),
        (bad(|s| s.connections = 0), |e| {
            matches!(e, LoadError::Connections)
        }),
        (bad(|s| s.duration = Duration::ZERO), |e| {
            matches!(e, LoadError::Duration)
        }),
        (bad(|s| s.timeout = Duration::ZERO), |e| {
            matches!(e, LoadError::Timeout)
        }),
    ];
    for (spec, expected) in cases {
        let described = format!("{spec:?}");
        let error = run(spec).await.expect_err(&described);
        assert!(expected(&error), "{described}: {error}");
        assert!(!error.to_string().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_connections_is_counted_and_the_run_ends_on_time() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = url::Url::parse(&format!("http://{addr}/r")).expect("url");

    let started = std::time::Instant::now();
    let report = run(spec(url, Some(200.0), 300, 2)).await.expect("runs");

    assert!(report.sent > 0, "{report}");
    assert_eq!(report.errors, report.sent, "{report}");
    assert_eq!(report.completed, 0, "{report}");
    // Bounded by the schedule and the graceful stop, not by retries.
    assert!(
        started.elapsed()
            < Duration::from_millis(300) + reliable_load::GRACEFUL_STOP + Duration::from_secs(5),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_counts_timeouts_and_the_run_ends_on_time() {
    let (url, _) = serve_counting(|_| async {
        std::future::pending::<()>().await;
        StatusCode::OK.into_response()
    })
    .await;
    let mut spec = spec(url, Some(100.0), 300, 4);
    // Longer than the run: the graceful stop, not the timeout, ends it.
    spec.timeout = Duration::from_secs(30);

    let started = std::time::Instant::now();
    let report = run(spec).await.expect("runs");

    assert!(report.sent > 0, "{report}");
    assert_eq!(report.timeouts, report.sent, "{report}");
    assert!(started.elapsed() < Duration::from_secs(10), "{report}");
}
