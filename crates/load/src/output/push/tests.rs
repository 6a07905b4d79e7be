use super::super::fixture;
use super::*;
use crate::results::{Outcome, Stats};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::net::SocketAddr;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug)]
struct Captured {
    method: Method,
    path: String,
    content_type: String,
    body: String,
}

/// A Pushgateway stand-in on port 0 that hands over every request and
/// answers `status`.
async fn gateway(
    status: StatusCode,
) -> (
    SocketAddr,
    UnboundedReceiver<Captured>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = unbounded_channel();
    let app = axum::Router::new()
        .fallback(
            |State((tx, status)): State<(UnboundedSender<Captured>, StatusCode)>,
             method: Method,
             uri: Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(Captured {
                    method,
                    path: uri.path().to_string(),
                    content_type,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                status
            },
        )
        .with_state((tx, status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0 binds");
    let addr = listener.local_addr().expect("bound");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx, server)
}

async fn next(rx: &mut UnboundedReceiver<Captured>) -> Captured {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a push within 20 s")
        .expect("the gateway is up")
}

fn second(rows: Vec<(usize, usize, Stats)>) -> Tick {
    Tick {
        t: 1.0,
        in_flight: 3,
        queued: 1,
        rows,
    }
}

fn answered(n: u64, ms: u64) -> Stats {
    let mut stats = Stats::default();
    for _ in 0..n {
        stats.record_outcome(Outcome::Status(200), true, Duration::from_millis(ms));
        stats.record_check("is redirect", true);
    }
    stats.record_outcome(Outcome::Timeout, false, Duration::from_secs(5));
    stats.sent = n + 1;
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_every_n_seconds_then_the_final_counts() {
    let (addr, mut received, server) = gateway(StatusCode::OK).await;
    let plan = fixture::plan();
    let mut push = PrometheusPush::new(
        &format!("http://{addr}/"),
        "run 1/x",
        Duration::from_secs(2),
    )
    .expect("a valid URL");
    assert_eq!(
        push.endpoint(),
        format!("http://{addr}/metrics/job/reliable_load/instance/run_1_x")
    );

    push.tick(&plan, &second(vec![(0, 1, answered(10, 2))]));
    push.tick(&plan, &second(vec![(0, 1, answered(10, 2))]));
    let first = next(&mut received).await;
    assert_eq!(first.method, Method::PUT);
    assert_eq!(first.path, "/metrics/job/reliable_load/instance/run_1_x");
    assert_eq!(first.content_type, "text/plain; version=0.0.4");
    let body = &first.body;
    assert!(body.contains("reliable_load_requests_total{scenario=\"baseline\",name=\"redirect\",outcome=\"ok\"} 20\n"), "{body}");
    assert!(body.contains("reliable_load_requests_total{scenario=\"baseline\",name=\"redirect\",outcome=\"timeout\"} 2\n"));
    assert!(body.contains("check=\"is redirect\",result=\"passed\"} 20\n"));
    assert!(body.contains("reliable_load_latency_seconds{scenario=\"baseline\",name=\"redirect\",quantile=\"0.5\"} 0.002"));
    assert!(body.contains("reliable_load_in_flight 3\n"));

    push.tick(&plan, &second(vec![(0, 1, answered(5, 2))]));
    push.tick(&plan, &second(Vec::new()));
    let third_second = next(&mut received).await;
    assert!(
        third_second.body.contains("outcome=\"ok\"} 25\n"),
        "{}",
        third_second.body
    );

    let results = fixture::results();
    tokio::task::block_in_place(|| push.finish(&plan, &results));
    let last = next(&mut received).await;
    let body = &last.body;
    assert!(
        body.contains("name=\"redirect\",outcome=\"ok\"} 1100\n"),
        "the results' counts: {body}"
    );
    assert!(
        body.contains("reliable_load_dropped_total{scenario=\"baseline\"} 94\n"),
        "{body}"
    );
    assert!(body.contains("reliable_load_in_flight 0\n"));
    assert!(
        body.contains("scenario=\"<script>alert(\\\"x\\\")</script>\""),
        "escaped: {body}"
    );
    // The interval with no answers keeps the latest latency it had.
    assert!(body.contains("name=\"redirect\",quantile=\"0.99\"}"));
    assert_eq!(
        push.tally(),
        PushTally {
            pushed: 3,
            failed: 0
        }
    );
    assert!(received.try_recv().is_err(), "nothing after finish");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_is_counted_not_fatal() {
    let (addr, mut received, server) = gateway(StatusCode::SERVICE_UNAVAILABLE).await;
    let plan = fixture::plan();
    let mut push = PrometheusPush::new(&format!("http://{addr}"), "r", Duration::from_secs(1))
        .expect("a valid URL");
    push.tick(&plan, &second(vec![(0, 0, answered(1, 1))]));
    let _ = next(&mut received).await;
    let results = fixture::results();
    tokio::task::block_in_place(|| push.finish(&plan, &results));
    assert_eq!(
        push.tally(),
        PushTally {
            pushed: 0,
            failed: 2
        }
    );
    server.abort();
}

#[test]
fn an_unreachable_gateway_is_counted_and_finish_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let plan = fixture::plan();
    let mut push = PrometheusPush::new(&format!("http://127.0.0.1:{port}"), "r", Duration::ZERO)
        .expect("a valid URL");
    push.tick(&plan, &second(Vec::new()));
    push.finish(&plan, &fixture::results());
    let tally = push.tally();
    assert_eq!(tally.pushed, 0);
    assert!((1..=2).contains(&tally.failed), "{tally:?}");
}

#[test]
fn a_bad_url_is_refused_before_the_run() {
    assert!(matches!(
        PrometheusPush::new("ftp://gateway:9091", "r", DEFAULT_PUSH_EVERY),
        Err(PushError::Url(_))
    ));
}
