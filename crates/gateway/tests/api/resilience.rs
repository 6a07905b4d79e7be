//! Failing upstreams: breakers, fail-fast, retries, shedding, health
//! checks, a rolling restart. Breaker time is the gateway's manual clock.

use crate::helpers::*;
use chrono::Duration as ChronoDuration;
use gateway::RouteConfig;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn two_routes(bad: &Upstream, good: &Upstream) -> gateway::GatewayConfig {
    let mut cfg = config(
        &[("bad", &[bad]), ("good", &[good])],
        vec![
            RouteConfig::new("/bad", "bad"),
            RouteConfig::new("/good", "good"),
        ],
    );
    cfg.breaker.failures_to_open = 3;
    cfg.breaker.open_for = Duration::from_secs(30);
    cfg
}

#[tokio::test]
async fn a_500ing_upstream_opens_its_breaker_then_recovers() {
    let (bad, good) = (Upstream::start("bad").await, Upstream::start("good").await);
    bad.set_mode(FAIL_500);
    let gw = spawn_gateway(two_routes(&bad, &good)).await;
    let http = client();
    for _ in 0..3 {
        // The upstream's own 500 is relayed, and counted by the breaker.
        assert_eq!(http.get(gw.url("/bad")).send().await.unwrap().status(), 500);
    }
    let hits = bad.hits();
    for _ in 0..10 {
        let response = http.get(gw.url("/bad")).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(json(response).await["type"], "/problems/circuit-open");
    }
    assert_eq!(bad.hits(), hits, "an open breaker sends nothing upstream");
    assert_eq!(
        http.get(gw.url("/good")).send().await.unwrap().status(),
        200,
        "other routes unaffected"
    );

    bad.set_mode(OK);
    assert_eq!(
        http.get(gw.url("/bad")).send().await.unwrap().status(),
        503,
        "still open"
    );
    gw.clock.advance(ChronoDuration::seconds(30));
    assert_eq!(
        http.get(gw.url("/bad")).send().await.unwrap().status(),
        200,
        "the half-open probe"
    );
    for _ in 0..5 {
        assert_eq!(
            http.get(gw.url("/bad")).send().await.unwrap().status(),
            200,
            "closed again"
        );
    }
}

#[tokio::test]
async fn a_hanging_upstream_times_out_with_504_then_fails_fast() {
    let (bad, good) = (Upstream::start("bad").await, Upstream::start("good").await);
    bad.set_mode(HANG);
    let mut cfg = two_routes(&bad, &good);
    cfg.routes[0].timeout = Duration::from_millis(200);
    let gw = spawn_gateway(cfg).await;
    let http = client();
    for _ in 0..3 {
        let response = http.get(gw.url("/bad")).send().await.unwrap();
        assert_eq!(response.status(), 504);
        assert_eq!(json(response).await["type"], "/problems/upstream-timeout");
    }
    let hits = bad.hits();
    let response = http.get(gw.url("/bad")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        bad.hits(),
        hits,
        "failed fast, without waiting on the upstream"
    );
    assert_eq!(
        http.get(gw.url("/good")).send().await.unwrap().status(),
        200
    );
    bad.set_mode(OK);
    gw.clock.advance(ChronoDuration::seconds(30));
    assert_eq!(http.get(gw.url("/bad")).send().await.unwrap().status(), 200);
}

/// The gateway's dependencies as usual, with the stack's
/// `http.request_timeout` set.
fn with_request_timeout(timeout: Duration) -> Deps {
    Deps {
        http: kit::http::HttpConfig {
            request_timeout: timeout,
            ..kit::http::HttpConfig::default()
        },
        ..Deps::default()
    }
}

/// The request's time (kit's `http.request_timeout`, which the gateway
/// keeps itself) bounds an attempt whose route allows longer: the client
/// gets the gateway's 504 when the request's time is up, not after the
/// route's minute.
#[tokio::test]
async fn the_request_timeout_cuts_an_attempt_whose_route_allows_longer() {
    let (bad, good) = (Upstream::start("bad").await, Upstream::start("good").await);
    bad.set_mode(HANG);
    let mut cfg = two_routes(&bad, &good);
    cfg.routes[0].timeout = Duration::from_secs(60);
    let gw = spawn_gateway_with(cfg, with_request_timeout(Duration::from_millis(300))).await;
    let http = client();
    let response = tokio::time::timeout(Duration::from_secs(20), http.get(gw.url("/bad")).send())
        .await
        .expect("the request's timeout did not bound the route's minute")
        .expect("response");
    assert_eq!(response.status(), 504);
    assert_eq!(json(response).await["type"], "/problems/upstream-timeout");
    assert_eq!(
        http.get(gw.url("/good")).send().await.unwrap().status(),
        200
    );
}

/// A client that never finishes its request body is answered 503 when
/// the request's time is up, and nothing reaches the upstream.
#[tokio::test]
async fn a_body_that_never_arrives_runs_out_of_the_request_time() {
    let (bad, good) = (Upstream::start("bad").await, Upstream::start("good").await);
    let gw = spawn_gateway_with(
        two_routes(&bad, &good),
        with_request_timeout(Duration::from_millis(300)),
    )
    .await;
    let (status, text) = raw(
        gw.addr,
        b"POST /good HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nConnection: close\r\n\r\nfive!",
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("/problems/request-timeout"), "{text}");
    assert_eq!(good.hits(), 0, "a request without its body was forwarded");
}

#[tokio::test]
async fn refused_connections_are_retried_for_any_method() {
    let (up, down) = (Upstream::start("up").await, Upstream::start("down").await);
    down.stop().await;
    let mut cfg = config(&[("p", &[&up, &down])], vec![RouteConfig::new("/", "p")]);
    cfg.breaker.failures_to_open = 1000;
    cfg.retry.budget_min_reserve = 100;
    let gw = spawn_gateway(cfg).await;
    let http = client();
    for _ in 0..20 {
        assert_eq!(http.get(gw.url("/")).send().await.unwrap().status(), 200);
        // A refused connection sent nothing: even a POST may go elsewhere.
        assert_eq!(http.post(gw.url("/")).send().await.unwrap().status(), 200);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("gateway_retries_total"),
        "retries are counted"
    );
}

/// A pool of a healthy upstream and one that answers 503, whose breaker
/// never opens and whose retry budget always has room: a GET that lands
/// on the busy one is retried on the other.
async fn gateway_with_a_busy_endpoint() -> (Upstream, Upstream, TestGateway) {
    let (up, busy) = (Upstream::start("up").await, Upstream::start("busy").await);
    busy.set_mode(FAIL_503);
    let mut cfg = config(&[("p", &[&up, &busy])], vec![RouteConfig::new("/", "p")]);
    cfg.breaker.failures_to_open = 1000;
    cfg.retry.budget_min_reserve = 100;
    let gw = spawn_gateway(cfg).await;
    (up, busy, gw)
}

#[tokio::test]
async fn an_upstream_503_is_retried_for_get_but_relayed_for_post() {
    let (_up, _busy, gw) = gateway_with_a_busy_endpoint().await;
    let http = client();
    let mut post_503 = 0;
    for _ in 0..20 {
        assert_eq!(http.get(gw.url("/")).send().await.unwrap().status(), 200);
        let post = http.post(gw.url("/")).send().await.unwrap().status();
        assert!(post == 200 || post == 503, "{post}");
        post_503 += u32::from(post == 503);
    }
    assert!(
        post_503 > 0,
        "a POST is never retried after the upstream saw it"
    );
}

#[tokio::test]
async fn a_retry_sends_the_headers_the_first_attempt_would_have() {
    let (_up, busy, gw) = gateway_with_a_busy_endpoint().await;
    let http = client();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let response = http
            .get(gw.url("/x?q=1"))
            .header("x-custom", "kept")
            .header("x-request-id", "one-id")
            .header("connection", "x-hop")
            .header("x-hop", "dropped")
            .header("x-api-key-name", "spoofed")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echo = json(response).await;
        assert_eq!(echo["upstream"], "up");
        let mut headers = echo["headers"].as_object().unwrap().clone();
        // A new root trace per request: present, never the same.
        assert!(headers.remove("traceparent").is_some());
        seen.insert(serde_json::Value::Object(headers).to_string());
    }
    assert!(busy.hits() > 0, "some requests were retried");
    assert_eq!(
        seen.len(),
        1,
        "retried or not, one set of headers: {seen:?}"
    );
    let headers: serde_json::Value = serde_json::from_str(seen.first().unwrap()).unwrap();
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["x-request-id"], "one-id");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert!(headers.get("x-api-key-name").is_none(), "{headers}");
}

#[tokio::test]
async fn the_retry_budget_caps_retries() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    a.stop().await;
    b.stop().await;
    // Its own route name: the counter is process-wide, shared by tests.
    let mut route = RouteConfig::new("/", "p");
    route.name = Some("budget-test".into());
    let mut cfg = config(&[("p", &[&a, &b])], vec![route]);
    cfg.breaker.failures_to_open = 100_000;
    cfg.retry.budget_ratio = 0.1;
    cfg.retry.budget_min_reserve = 0;
    cfg.retry.backoff = Duration::from_millis(1);
    let gw = spawn_gateway(cfg).await;
    let http = client();
    for _ in 0..100 {
        let response = http.get(gw.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 502);
        assert_eq!(
            json(response).await["type"],
            "/problems/upstream-unreachable"
        );
    }
    let metrics = gw.metrics().await;
    let retries = metric_value(
        &metrics,
        "gateway_retries_total{gateway_route=\"budget-test\"}",
    );
    println!("retries for 100 failing requests at a 10% budget: {retries}");
    assert!(retries <= 10.0, "{retries} retries");
    assert!(retries >= 9.0, "{retries} retries");
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_with_retry_after() {
    let a = Upstream::start("a").await;
    a.set_mode(HANG);
    let mut route = RouteConfig::new("/", "a");
    route.max_concurrency = 2;
    route.timeout = Duration::from_secs(5);
    let mut cfg = config(&[("a", &[&a])], vec![route]);
    cfg.breaker.failures_to_open = 1000;
    let gw = spawn_gateway(cfg).await;
    let http = client();
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(gw.url("/")).send()))
        .collect();
    eventually("two requests in flight upstream", || a.hits() == 2).await;
    let response = http.get(gw.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(json(response).await["type"], "/problems/overloaded");
    for h in held {
        h.abort();
    }
}

#[tokio::test]
async fn active_health_checks_eject_and_readmit_an_endpoint() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config(&[("p", &[&a, &b])], vec![RouteConfig::new("/", "p")]);
    cfg.health.interval = Duration::from_millis(20);
    let gw = spawn_gateway(cfg).await;
    a.state.ready.store(false, Ordering::Release);
    let endpoint_a = gw.gateway.pools()[0].endpoints[0].clone();
    eventually("a ejected", || {
        endpoint_a.in_flight() == 0 && !is_picked(&gw, "a")
    })
    .await;
    let before = a.hits();
    let http = client();
    for _ in 0..20 {
        assert_eq!(
            json(http.get(gw.url("/")).send().await.unwrap()).await["upstream"],
            "b"
        );
    }
    assert_eq!(a.hits(), before);
    a.state.ready.store(true, Ordering::Release);
    eventually("a readmitted", || is_picked(&gw, "a")).await;
}

/// Whether the pool would pick the endpoint of upstream `name` (a or b).
fn is_picked(gw: &TestGateway, name: &str) -> bool {
    let pool = &gw.gateway.pools()[0];
    let index = usize::from(name == "b");
    (0..50).any(|_| {
        pool.pick(None)
            .is_some_and(|slot| Arc::ptr_eq(slot.endpoint(), &pool.endpoints[index]))
    })
}

#[tokio::test]
async fn a_rolling_restart_loses_no_idempotent_request() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let cfg = config(&[("p", &[&a, &b])], vec![RouteConfig::new("/", "p")]);
    let gw = Arc::new(spawn_gateway(cfg).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut sent = 0;
            while !stop.load(Ordering::Acquire) && sent < 5000 {
                sent += 1;
                match http.get(gw.url("/")).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::AcqRel),
                    _ => failed.fetch_add(1, Ordering::AcqRel),
                };
            }
        }));
    }
    for upstream in [&a, &b] {
        let before = ok.load(Ordering::Acquire);
        eventually("traffic flowing", || {
            ok.load(Ordering::Acquire) > before + 50
        })
        .await;
        upstream.stop().await;
        let down = ok.load(Ordering::Acquire);
        eventually("traffic while one is down", || {
            ok.load(Ordering::Acquire) > down + 100
        })
        .await;
        upstream.start_again().await;
        // The restarted pod's breaker may have opened: a rolling restart
        // waits longer than `open_for` between pods.
        gw.clock.advance(ChronoDuration::seconds(60));
    }
    let after = ok.load(Ordering::Acquire);
    eventually("traffic after the restart", || {
        ok.load(Ordering::Acquire) > after + 50
    })
    .await;
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    println!(
        "rolling restart: {} ok, {} failed",
        ok.load(Ordering::Acquire),
        failed.load(Ordering::Acquire)
    );
    assert_eq!(failed.load(Ordering::Acquire), 0);
    assert!(a.hits() > 0 && b.hits() > 0);
}
