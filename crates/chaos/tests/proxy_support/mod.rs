//! Shared by the proxy tests: an echo server and an API client.
#![allow(dead_code)]

use chaos::proxy::ProxyServer;
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP echo server on a free loopback port; it runs until the test ends.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that answers every connection with `tag` and closes.
pub async fn tag_server(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(tag.as_bytes()).await;
        }
    });
    addr
}

/// Sends `msg` and reads the echo.
pub async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

pub async fn server() -> ProxyServer {
    ProxyServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A JSON call to the API: the status and the body.
pub async fn call(
    server: &ProxyServer,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", server.url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, url);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Creates a proxy to `upstream` through the API; returns its address.
pub async fn create_proxy(server: &ProxyServer, name: &str, upstream: SocketAddr) -> SocketAddr {
    let body = format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
    let (status, json) = call(server, "POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{json}");
    json["listen"].as_str().unwrap().parse().unwrap()
}

/// A free port below the kernel's ephemeral range. Outgoing connections
/// never take one of these as their source port, so a test that closes a
/// listener and binds the same port again cannot lose it in between to
/// another test's client, as a port picked with `:0` (from that range)
/// can: CI saw `Address already in use` on re-enabling a proxy.
pub fn port_outside_ephemeral_range() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let first = 1024u16;
    let span = low.saturating_sub(first).max(1);
    // Start at a different place in each process: test binaries run at once.
    let offset = (std::process::id() % u32::from(span)) as u16;
    (0..span)
        .map(|i| first + (offset + i) % span)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}
