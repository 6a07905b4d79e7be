//! The engine's own HTTP/1.1 client against a raw server that closes
//! connections: after every answer without saying so (a kept-alive
//! connection the server dropped, replaced once for a GET), and with
//! `Connection: close` on a chunked answer. Only counts are asserted.

use http::Method;
use reliable_load::plan::{Executor, Plan, RequestPlan, ScenarioPlan, StatusSet};
use reliable_load::scenario::Template;
use reliable_load::{run, EngineOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request on a connection with `response`, then closes the
/// connection after the first answer if `close_after_one`; returns
/// `http://addr`.
async fn serve_raw(response: &'static [u8], close_after_one: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    // GETs without a body: a request ends at its empty line.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(response).await.is_err() {
                            return;
                        }
                        if close_after_one {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn plan(url: String, method: Method) -> Plan {
    Plan {
        pools: Vec::new(),
        setup: Vec::new(),
        scenarios: vec![ScenarioPlan {
            name: "s".to_string(),
            executor: Executor::ConstantArrivalRate {
                rate: 100.0,
                duration: Duration::from_millis(400),
            },
            start: Duration::ZERO,
            connections: 4,
            http2: false,
            insecure_tls: false,
            warmup: Duration::ZERO,
            requests: vec![RequestPlan {
                name: "r".to_string(),
                weight: 1,
                method,
                url: Template::literal(url),
                headers: Vec::new(),
                body: None,
                captures: Vec::new(),
                checks: Vec::new(),
                expect_status: StatusSet::default(),
                timeout: Duration::from_secs(5),
            }],
        }],
        teardown: Vec::new(),
        thresholds: Vec::new(),
        dau: None,
    }
}

async fn stats(plan: &Plan) -> reliable_load::results::Stats {
    let options = EngineOptions {
        threads: Some(2),
        stop: None,
    };
    let results = run(plan, &options, &mut []).await.expect("no setup");
    results.scenarios[0].requests[0].1.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_dropped_is_replaced_without_an_error() {
    let base = serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let stats = stats(&plan(format!("{base}/x"), Method::GET)).await;
    assert_eq!(stats.sent, 40);
    assert_eq!(stats.ok, 40, "transport errors: {}", stats.transport_errors);
    assert_eq!(stats.bytes_received, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_on_a_chunked_answer_opens_a_new_connection() {
    let base = serve_raw(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
          2;x=1\r\nok\r\n0\r\nT: v\r\n\r\n",
        true,
    )
    .await;
    let stats = stats(&plan(format!("{base}/x"), Method::GET)).await;
    assert_eq!(stats.sent, 40);
    assert_eq!(stats.ok, 40, "transport errors: {}", stats.transport_errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_a_transport_error() {
    let base = serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).await;
    let stats = stats(&plan(format!("{base}/x"), Method::GET)).await;
    assert_eq!(stats.sent, 40);
    assert_eq!(stats.transport_errors, 40);
}
