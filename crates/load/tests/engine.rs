//! The engine on hand-built plans against small servers on port 0: the
//! weighted mix, the ramping executor, scenarios in sequence and in
//! parallel, HTTP/2, and TLS. Runs are a few hundred milliseconds; only
//! counts are asserted (with margins for a slow machine), never timings.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reliable_load::plan::{Executor, Plan, RequestPlan, ScenarioPlan, Stage, StatusSet};
use reliable_load::scenario::Template;
use reliable_load::{run, EngineOptions};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How a test server speaks.
#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as `http2: true` on `http://`.
    Http2,
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match request.uri().path() {
        "/missing" => StatusCode::NOT_FOUND,
        "/version" if request.version() == http::Version::HTTP_2 => StatusCode::OK,
        "/version" => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        _ => StatusCode::NO_CONTENT,
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    Ok(response)
}

/// Serves [`answer`] on 127.0.0.1:0; returns `http://addr`.
async fn serve(protocol: Protocol) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                let service = service_fn(answer);
                match protocol {
                    Protocol::Http1 => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                    Protocol::Http2 => {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Serves [`answer`] over TLS 1.3 with a self-signed certificate for
/// `localhost`; returns `https://localhost:port`.
async fn serve_tls() -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service_fn(answer))
                    .await;
            });
        }
    });
    format!("https://localhost:{port}")
}

fn request(name: &str, url: String, weight: u32) -> RequestPlan {
    RequestPlan {
        name: name.to_string(),
        weight,
        method: Method::GET,
        url: Template::literal(url),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
        expect_status: StatusSet::default(),
        timeout: Duration::from_secs(5),
    }
}

fn scenario(name: &str, executor: Executor, requests: Vec<RequestPlan>) -> ScenarioPlan {
    ScenarioPlan {
        name: name.to_string(),
        executor,
        start: Duration::ZERO,
        connections: 8,
        http2: false,
        insecure_tls: false,
        warmup: Duration::ZERO,
        requests,
    }
}

fn plan(scenarios: Vec<ScenarioPlan>) -> Plan {
    Plan {
        pools: Vec::new(),
        setup: Vec::new(),
        scenarios,
        teardown: Vec::new(),
        thresholds: Vec::new(),
        dau: None,
    }
}

fn constant(rate: f64, millis: u64) -> Executor {
    Executor::ConstantArrivalRate {
        rate,
        duration: Duration::from_millis(millis),
    }
}

async fn run_plan(plan: &Plan) -> reliable_load::results::Results {
    run(
        plan,
        &EngineOptions {
            threads: Some(2),
            stop: None,
        },
        &mut [],
    )
    .await
    .expect("no setup to fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_mix_sends_each_request_in_proportion() {
    let base = serve(Protocol::Http1).await;
    let plan = plan(vec![scenario(
        "mix",
        constant(2000.0, 500),
        vec![
            request("write", format!("{base}/write"), 1),
            request("read", format!("{base}/read"), 3),
            request("missing", format!("{base}/missing"), 1),
        ],
    )]);

    let results = run_plan(&plan).await;

    let scenario = &results.scenarios[0];
    assert_eq!(scenario.scheduled, 1000);
    let sent = |i: usize| scenario.requests[i].1.sent;
    let total = sent(0) + sent(1) + sent(2);
    assert!(total >= 900, "{total}");
    // 3:1 within generous binomial margins (n = 1000).
    let ratio = sent(1) as f64 / sent(0) as f64;
    assert!((2.2..4.0).contains(&ratio), "read/write {ratio}");
    // A 404 is an answer but an unexpected status: an error.
    let missing = &scenario.requests[2].1;
    assert_eq!(missing.errors(), missing.sent);
    assert_eq!(missing.status_counts.get(&404), Some(&missing.sent));
    assert_eq!(scenario.requests[1].1.errors(), 0);
    assert_eq!(scenario.dropped + total, scenario.scheduled);
    // Every request has a lateness sample, kept apart from latency.
    assert_eq!(scenario.requests[1].1.lateness.len(), sent(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_sends_the_area_under_its_rate() {
    let base = serve(Protocol::Http1).await;
    let ramp = Executor::RampingArrivalRate {
        start_rate: 0.0,
        stages: vec![
            Stage {
                target: 2000.0,
                duration: Duration::from_millis(400),
            },
            Stage {
                target: 2000.0,
                duration: Duration::from_millis(200),
            },
        ],
    };
    let plan = plan(vec![scenario(
        "ramp",
        ramp,
        vec![request("r", format!("{base}/r"), 1)],
    )]);

    let results = run_plan(&plan).await;

    // 2000/s x 0.4 s / 2 + 2000/s x 0.2 s = 400 + 400.
    let scenario = &results.scenarios[0];
    assert_eq!(scenario.scheduled, 800);
    assert!(
        scenario.requests[0].1.sent >= 700,
        "{}",
        scenario.requests[0].1.sent
    );
    assert_eq!(scenario.executor, "ramping-arrival-rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_run_in_sequence_or_together_by_their_start() {
    let base = serve(Protocol::Http1).await;
    let mut first = scenario(
        "first",
        constant(500.0, 300),
        vec![request("r", format!("{base}/r"), 1)],
    );
    first.start = Duration::ZERO;
    let mut second = scenario(
        "second",
        Executor::ConstantConnections {
            duration: Duration::from_millis(300),
        },
        vec![request("r", format!("{base}/r"), 1)],
    );
    second.start = Duration::from_millis(300);
    second.connections = 2;
    let mut alongside = scenario(
        "alongside",
        constant(200.0, 300),
        vec![request("r", format!("{base}/r"), 1)],
    );
    alongside.start = Duration::from_millis(300);

    let results = run_plan(&plan(vec![first, second, alongside])).await;

    let by_name = |name: &str| {
        results
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .expect("scenario")
    };
    assert_eq!(by_name("first").scheduled, 150);
    assert_eq!(by_name("alongside").scheduled, 60);
    let closed = by_name("second");
    assert!(closed.requests[0].1.sent > 0);
    assert_eq!(closed.scheduled, closed.requests[0].1.sent);
    assert_eq!(closed.dropped, 0);
    // The series has one point a second per request name and scenario.
    assert_eq!(results.series.len(), 3);
    assert!(results.elapsed >= Duration::from_millis(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_multiplex_over_prior_knowledge() {
    let base = serve(Protocol::Http2).await;
    let mut s = scenario(
        "h2",
        constant(1000.0, 300),
        vec![request("version", format!("{base}/version"), 1)],
    );
    s.http2 = true;

    let results = run_plan(&plan(vec![s])).await;

    let stats = &results.scenarios[0].requests[0].1;
    assert!(stats.sent >= 250, "{}", stats.sent);
    assert_eq!(
        stats.status_counts.get(&200),
        Some(&stats.sent),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_a_trusted_certificate_unless_told_otherwise() {
    let base = serve_tls().await;
    let make = |insecure: bool| {
        let mut s = scenario(
            "tls",
            constant(200.0, 300),
            vec![request("r", format!("{base}/r"), 1)],
        );
        s.insecure_tls = insecure;
        plan(vec![s])
    };

    let trusted = run_plan(&make(true)).await;
    let strict = run_plan(&make(false)).await;

    let ok = &trusted.scenarios[0].requests[0].1;
    assert!(ok.sent >= 50, "{}", ok.sent);
    assert_eq!(ok.status_counts.get(&204), Some(&ok.sent));
    let refused = &strict.scenarios[0].requests[0].1;
    assert!(refused.sent > 0);
    assert_eq!(
        refused.transport_errors, refused.sent,
        "a self-signed certificate is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_arrival_of_a_schedule_is_sent_when_a_connection_is_free() {
    let base = serve(Protocol::Http1).await;
    // 10 arrivals, 50 ms apart, against a server that answers at once on
    // 8 connections: each finds a free connection, the last one included
    // (due 450 ms in, 50 ms before the end).
    for threads in [1, 2] {
        let plan = plan(vec![scenario(
            "slow",
            constant(20.0, 500),
            vec![request("r", format!("{base}/r"), 1)],
        )]);
        let results = run(
            &plan,
            &EngineOptions {
                threads: Some(threads),
                stop: None,
            },
            &mut [],
        )
        .await
        .expect("no setup to fail");
        let scenario = &results.scenarios[0];
        assert_eq!(scenario.scheduled, 10, "{threads} threads");
        assert_eq!(scenario.requests[0].1.sent, 10, "{threads} threads");
        assert_eq!(scenario.dropped, 0, "{threads} threads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_open_model_reads_each_answer_long_before_the_next_arrival() {
    // The open model reads its answers when its thread wakes anyway; with
    // arrivals 250 ms apart and a 200 ms timeout, an answer left for the
    // next arrival's wake-up would time out. Each is read within a
    // harvest interval of its arrival instead.
    let base = serve(Protocol::Http1).await;
    let mut sparse = scenario(
        "sparse",
        constant(4.0, 1_000),
        vec![request("r", format!("{base}/r"), 1)],
    );
    sparse.connections = 1;
    sparse.requests[0].timeout = Duration::from_millis(200);
    let results = run(
        &plan(vec![sparse]),
        &EngineOptions {
            threads: Some(1),
            stop: None,
        },
        &mut [],
    )
    .await
    .expect("no setup to fail");
    let stats = &results.scenarios[0].requests[0].1;
    assert_eq!(stats.sent, 4);
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.ok, 4);
}
