//! Bodies stream through the gateway: server-sent events arrive one by
//! one (the upstream sends the next only after the client read the
//! previous: a buffering gateway would hang here), and size limits still
//! hold on streams.

use crate::helpers::*;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use gateway::RouteConfig;
use kit::server::HttpServer;
use kit::CancellationToken;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// An upstream whose `GET /events` streams what the test sends down the
/// channel, as `text/event-stream`, and ends when the sender is dropped.
fn event_source() -> (mpsc::Sender<&'static str>, Router) {
    let (events, receiver) = mpsc::channel::<&'static str>(1);
    let receiver = Arc::new(Mutex::new(Some(receiver)));
    let router = Router::new().route(
        "/events",
        get(move || {
            let receiver = receiver.lock().expect("lock").take();
            async move {
                let stream = futures::stream::unfold(receiver, |receiver| async move {
                    let mut receiver = receiver?;
                    let event = receiver.recv().await?;
                    Some((Ok::<_, Infallible>(Bytes::from(event)), Some(receiver)))
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .expect("response")
            }
        }),
    );
    (events, router)
}

async fn serve(router: Router) -> (SocketAddr, CancellationToken) {
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let token = CancellationToken::new();
    tokio::spawn(server.serve(router, token.clone()));
    (addr, token)
}

/// A gateway config routing everything to the upstream at `addr`.
fn through_gateway(addr: SocketAddr) -> gateway::GatewayConfig {
    let mut cfg = config(&[], vec![RouteConfig::new("/", "sse")]);
    let pool = gateway::PoolConfig::new(vec![format!("http://{addr}")]);
    cfg.pools.insert("sse".into(), pool);
    cfg
}

async fn events_pass_one_by_one(gw: &TestGateway, events: mpsc::Sender<&'static str>) {
    let mut response = client().get(gw.url("/events")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    for event in ["data: one\n\n", "data: two\n\n"] {
        events.send(event).await.expect("upstream waiting");
        let chunk = response.chunk().await.expect("read").expect("an event");
        assert_eq!(chunk, event, "the event arrives before the next is sent");
    }
    drop(events);
    assert!(response.chunk().await.expect("clean end").is_none());
}

#[tokio::test]
async fn server_sent_events_pass_through_without_buffering() {
    let (events, router) = event_source();
    let (addr, _stop) = serve(router).await;
    let gw = spawn_gateway(through_gateway(addr)).await;
    events_pass_one_by_one(&gw, events).await;
}

#[tokio::test]
async fn server_sent_events_from_an_in_process_module_stream_too() {
    let (events, router) = event_source();
    let cfg = config(&[], vec![RouteConfig::new("/", "local")]);
    let deps = Deps {
        in_process: BTreeMap::from([("local".to_string(), router)]),
        ..Deps::default()
    };
    let gw = spawn_gateway_with(cfg, deps).await;
    events_pass_one_by_one(&gw, events).await;
}

#[tokio::test]
async fn a_streamed_response_over_the_limit_is_cut_off() {
    let (events, router) = event_source();
    let (addr, _stop) = serve(router).await;
    let mut cfg = through_gateway(addr);
    cfg.max_response_body_bytes = 16;
    let gw = spawn_gateway(cfg).await;
    let response = client().get(gw.url("/events")).send().await.unwrap();
    // No length was declared: the head went out before the size was known.
    assert_eq!(response.status(), 200);
    // One event already over the limit (a second send could race the
    // upstream connection being closed).
    events.send("data: 0123456789\n\n").await.expect("sent");
    assert!(response.bytes().await.is_err(), "the stream is cut off");
}

#[tokio::test]
async fn a_large_request_body_streams_and_the_limit_still_holds() {
    let a = Upstream::start("a").await;
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.max_request_body_bytes = 256 * 1024;
    let gw = spawn_gateway(cfg).await;
    // Larger than what is kept for retries, within the limit: streamed.
    let within = vec![b'x'; 200 * 1024];
    let response = client()
        .post(gw.url("/"))
        .body(within)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["body_len"], 200 * 1024);
    // Chunked (no length declared) and over the limit: cut off, 413.
    let mut chunked =
        b"POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&vec![b'x'; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw(gw.addr, &chunked).await;
    assert_eq!(status, 413, "{text}");
}
