//! The HTTP server over real loopback sockets: header read timeout and
//! graceful drain. Time-dependent cases run on Tokio's paused clock, which
//! jumps to the next timer whenever the runtime is idle, so a 30 s timeout
//! takes no wall-clock time.

use axum::routing::get;
use axum::Router;
use kit::server::{HttpServer, HEADER_READ_TIMEOUT};
use kit::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start() -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let router = Router::new().route("/", get(|| async { "ok" }));
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        server.serve(router, stop).await.expect("serve");
    });
    (addr, shutdown, task)
}

async fn read_all(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    // A reset is as good as a close for these tests.
    let _ = tcp.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (addr, _shutdown, _task) = start().await;

    // Control: a whole request on the same server is answered.
    let mut whole = TcpStream::connect(addr).await.expect("connect");
    whole
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert!(read_all(&mut whole).await.starts_with("HTTP/1.1 200"));

    // Slowloris: headers started, never finished.
    let started = tokio::time::Instant::now();
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    let answer = tokio::time::timeout(2 * HEADER_READ_TIMEOUT, read_all(&mut slow))
        .await
        .expect("the server kept a half-sent request open past twice its header timeout");
    assert!(
        !answer.contains("200"),
        "an incomplete request was served: {answer}"
    );
    assert!(
        started.elapsed() >= HEADER_READ_TIMEOUT,
        "closed after {:?}, before the header timeout",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let (addr, shutdown, task) = start().await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");

    shutdown.cancel();
    task.await.expect("server task");
    // The kept-alive connection was closed by the drain, not left open.
    read_all(&mut idle).await;
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
