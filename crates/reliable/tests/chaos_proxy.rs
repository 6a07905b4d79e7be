//! `reliable chaos proxy`: the fault proxy as a process, with proxies from
//! a `--config` file, driven through its HTTP API.

mod support;

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn serves_toxiproxys_api_with_proxies_from_a_config_file() {
    let upstream = testkit::echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxies.json");
    std::fs::write(
        &config,
        format!(r#"[{{"name":"echo","listen":"127.0.0.1:0","upstream":"{upstream}"}}]"#),
    )
    .unwrap();
    let mut cmd = support::reliable();
    cmd.args([
        "chaos",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "1",
        "--config",
    ])
    .arg(&config);
    let running = support::start(cmd);
    let api = format!("http://{}", running.addr);
    let http = reqwest::Client::new();

    let proxies: serde_json::Value = http
        .get(format!("{api}/proxies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listen = proxies["echo"]["listen"].as_str().unwrap().to_string();
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let mut buf = [0u8; 4];
    s.write_all(b"ping").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    let resp = http
        .post(format!("{api}/proxies/echo/toxics"))
        .body(r#"{"type":"latency","attributes":{"latency":100}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t0 = Instant::now();
    s.write_all(b"pong").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(100));

    let resp = http
        .post(format!("{api}/proxies/echo/toxics"))
        .body(r#"{"type":"latency","attributes":{"latency":-1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["status"], 400);
    support::stop(running).await;
}

#[test]
fn a_bad_config_file_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxies.json");
    std::fs::write(&config, r#"[{"name":"echo"}]"#).unwrap();
    let out = support::reliable()
        .args(["chaos", "proxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing required field: upstream at proxy 1"),
        "{stderr}"
    );
    assert!(stderr.contains("proxies.json"), "{stderr}");
}
