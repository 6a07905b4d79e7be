//! In-process pools: a router called without a TCP hop gets everything a
//! remote pool gets (headers, client IP, timeout, breaker, retries, size
//! limit, health checks, metrics), and sees the client, not the gateway.

use crate::helpers::*;
use chrono::Duration as ChronoDuration;
use gateway::{GatewayConfig, RouteConfig};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A gateway whose pool `local` is the echo upstream, in-process.
async fn in_process_gateway(
    state: &Arc<UpstreamState>,
    tune: impl FnOnce(&mut GatewayConfig),
) -> TestGateway {
    let mut cfg = config(&[], vec![RouteConfig::new("/", "local")]);
    tune(&mut cfg);
    let deps = Deps {
        in_process: BTreeMap::from([("local".to_string(), echo_router(state.clone()))]),
        ..Deps::default()
    };
    spawn_gateway_with(cfg, deps).await
}

#[tokio::test]
async fn an_in_process_pool_gets_the_same_headers_as_a_remote_one() {
    let state = UpstreamState::new("local");
    let gw = in_process_gateway(&state, |_| {}).await;
    let response = client()
        .get(gw.url("/a/b?q=1"))
        .header("x-request-id", "req-in-process")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-pool"], "local");
    assert_eq!(response.headers()["x-request-id"], "req-in-process");
    let echo = json(response).await;
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "q=1");
    let headers = &echo["headers"];
    assert_eq!(headers["x-request-id"], "req-in-process");
    let traceparent = headers["traceparent"].as_str().unwrap();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "a new parent span"
    );
    assert!(headers.get("x-hop").is_none(), "hop-by-hop stripped");
    // The spoofed chain from an untrusted peer is dropped, and the module
    // sees the client (here on loopback) as its peer.
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["peer"], "127.0.0.1");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"http_client_request_duration_seconds_count{gateway_pool="local",server_address="in-process",http_response_status_code="200",error_type=""}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_module_sees_the_client_a_trusted_proxy_forwarded() {
    let state = UpstreamState::new("local");
    let gw = in_process_gateway(&state, |cfg| {
        cfg.trusted_proxies = trusted(&["127.0.0.1"]);
    })
    .await;
    let echo = echo_forwarded_for(&gw, "198.51.100.7").await;
    assert_eq!(echo["peer"], "198.51.100.7");
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        "198.51.100.7, 127.0.0.1"
    );
}

#[tokio::test]
async fn an_in_process_pool_has_a_breaker_timeout_and_retries() {
    let state = UpstreamState::new("local");
    let gw = in_process_gateway(&state, |cfg| {
        cfg.breaker.failures_to_open = 3;
        cfg.breaker.open_for = Duration::from_secs(30);
        cfg.routes[0].timeout = Duration::from_millis(200);
    })
    .await;
    let http = client();

    // 503s are retried for GET (max_retries 2: three attempts), and the
    // module's own answer is relayed when retries run out.
    state.mode.store(FAIL_503, Ordering::Release);
    assert_eq!(http.get(gw.url("/r")).send().await.unwrap().status(), 503);
    assert_eq!(state.hits.load(Ordering::Acquire), 3);
    // Three failures opened the breaker: fail fast, nothing sent.
    let response = http.get(gw.url("/r")).send().await.unwrap();
    assert_eq!(json(response).await["type"], "/problems/circuit-open");
    assert_eq!(state.hits.load(Ordering::Acquire), 3);

    // Half-open after `open_for`: a hanging module is cut off at the
    // route's timeout, which reopens the breaker.
    state.mode.store(HANG, Ordering::Release);
    gw.clock.advance(ChronoDuration::seconds(30));
    let response = http.get(gw.url("/r")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(json(response).await["type"], "/problems/upstream-timeout");
    state.mode.store(OK, Ordering::Release);
    assert_eq!(http.get(gw.url("/r")).send().await.unwrap().status(), 503);
    gw.clock.advance(ChronoDuration::seconds(30));
    assert_eq!(http.get(gw.url("/r")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_in_process_response_over_the_limit_is_a_502() {
    let state = UpstreamState::new("local");
    let gw = in_process_gateway(&state, |cfg| cfg.max_response_body_bytes = 64).await;
    let response = client().get(gw.url("/big")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        json(response).await["type"],
        "/problems/upstream-response-too-large"
    );
}

#[tokio::test]
async fn active_health_checks_call_the_in_process_readyz() {
    let state = UpstreamState::new("local");
    let gw = in_process_gateway(&state, |cfg| {
        cfg.health.interval = Duration::from_millis(20);
    })
    .await;
    let endpoint = gw.gateway.pools()[0].endpoints[0].clone();
    state.ready.store(false, Ordering::Release);
    let pool = gw.gateway.pools()[0].clone();
    eventually("ejected", || pool.pick(None).is_none()).await;
    let response = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(json(response).await["type"], "/problems/circuit-open");
    state.ready.store(true, Ordering::Release);
    eventually("readmitted", || pool.pick(None).is_some()).await;
    assert_eq!(endpoint.label, "in-process");
}

#[tokio::test]
async fn a_failing_in_process_pool_leaves_the_other_pools_alone() {
    // `reliable up` puts the shortener and the event modules in pools of
    // their own, so one's open breaker does not fail the other fast.
    let links = UpstreamState::new("local");
    let orders = UpstreamState::new("events");
    let mut cfg = config(
        &[],
        vec![
            RouteConfig::new("/", "local"),
            RouteConfig::new("/api/v1/orders", "events"),
        ],
    );
    cfg.breaker.failures_to_open = 2;
    cfg.breaker.open_for = Duration::from_secs(30);
    let deps = Deps {
        in_process: BTreeMap::from([
            ("local".to_string(), echo_router(links.clone())),
            ("events".to_string(), echo_router(orders.clone())),
        ]),
        ..Deps::default()
    };
    let gw = spawn_gateway_with(cfg, deps).await;
    let http = client();

    orders.mode.store(FAIL_500, Ordering::Release);
    for _ in 0..2 {
        let response = http.post(gw.url("/api/v1/orders")).send().await.unwrap();
        assert_eq!(response.status(), 500);
    }
    let response = http.post(gw.url("/api/v1/orders")).send().await.unwrap();
    assert_eq!(json(response).await["type"], "/problems/circuit-open");
    assert_eq!(orders.hits.load(Ordering::Acquire), 2, "failed fast");

    let response = http.get(gw.url("/some-slug")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-pool"], "local");
}

#[tokio::test]
async fn an_in_process_module_gets_every_body_whole_and_an_empty_one_empty() {
    let state = UpstreamState::new("local");
    // Room for a body past the replay buffer, which streams instead of
    // being kept.
    let big = gateway::proxy::REPLAY_BUFFER_BYTES + 10_000;
    let gw = in_process_gateway(&state, |cfg| cfg.max_request_body_bytes = 2 * big).await;
    let http = client();
    for (method, len) in [("POST", 0), ("POST", 3), ("PUT", big), ("GET", 0)] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = http
            .request(method.clone(), gw.url("/upload"))
            .body(vec![b'x'; len])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} of {len} bytes");
        let echo = json(response).await;
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["body_len"], len, "{method} of {len} bytes");
    }
}
