//! Bad input: each gets a clear error and never reaches the upstream.

use crate::helpers::*;
use gateway::RouteConfig;

#[tokio::test]
async fn path_traversal_is_refused_and_never_forwarded() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(
        &[("a", &[&a])],
        vec![RouteConfig::new("/api/v1", "a")],
    ))
    .await;
    for path in [
        "/api/v1/../admin",
        "/api/v1/%2e%2e/admin",
        "/api/v1/..%2fadmin",
        "/api/v1/./x",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(gw.addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("application/problem+json"), "{text}");
        assert!(text.contains("/problems/bad-path"), "{text}");
    }
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn oversized_headers_are_a_431_problem() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")])).await;
    let response = client()
        .get(gw.url("/"))
        .header("x-big", "v".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(json(response).await["type"], "/problems/headers-too-large");
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn malformed_headers_are_refused_by_the_http_parser() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")])).await;
    let (status, _) = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: gw\r\nno colon here\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: gw\r\nX-A: \x01\x02\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_a_413_problem() {
    let a = Upstream::start("a").await;
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.max_request_body_bytes = 1024;
    let gw = spawn_gateway(cfg).await;
    let http = client();
    let response = http
        .post(gw.url("/"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(json(response).await["type"], "/problems/body-too-large");
    // Chunked, so no Content-Length warns us: the limit still holds.
    let mut chunked =
        b"POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'x'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw(gw.addr, &chunked).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(a.hits(), 0);
    let ok = http
        .post(gw.url("/"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_route_may_take_larger_bodies_than_the_default() {
    let a = Upstream::start("a").await;
    let mut uploads = RouteConfig::new("/uploads", "a");
    uploads.max_body_bytes = Some(4096);
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a"), uploads]);
    cfg.max_request_body_bytes = 1024;
    let gw = spawn_gateway(cfg).await;
    let http = client();
    let post =
        |path: &'static str, size: usize| http.post(gw.url(path)).body(vec![b'x'; size]).send();
    assert_eq!(post("/uploads/f", 3000).await.unwrap().status(), 200);
    assert_eq!(post("/uploads/f", 5000).await.unwrap().status(), 413);
    assert_eq!(post("/other", 3000).await.unwrap().status(), 413);
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn oversized_upstream_responses_are_a_502_problem() {
    let a = Upstream::start("a").await;
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.max_response_body_bytes = 64;
    let gw = spawn_gateway(cfg).await;
    let response = client()
        .get(gw.url("/a-long-enough-path-to-make-the-echo-large"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        json(response).await["type"],
        "/problems/upstream-response-too-large"
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let a = Upstream::start("a").await;
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.trusted_proxies = trusted(&["10.0.0.0/8"]);
    cfg.anon_rate = Some("2/min".into());
    let gw = spawn_gateway(cfg).await;
    let http = client();
    let first = http
        .get(gw.url("/"))
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await
        .unwrap();
    assert_eq!(json(first).await["headers"]["x-forwarded-for"], "127.0.0.1");
    // A fresh spoofed address per request does not buy a fresh allowance.
    let second = http
        .get(gw.url("/"))
        .header("x-forwarded-for", "203.0.113.2")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let third = http
        .get(gw.url("/"))
        .header("x-forwarded-for", "203.0.113.3")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
}
