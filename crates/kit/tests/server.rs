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

/// A response body that spends `BODY_CPU_NANOS` of CPU on the thread that
/// polls it (as a long-lived stream's chunks would), outside the handler.
struct BurningBody {
    done: bool,
}

const BODY_CPU_NANOS: u64 = 3_000_000;

impl http_body::Body for BurningBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        self.done = true;
        let start = kit::cpu_cost::thread_cpu_nanos();
        let mut x = 0u64;
        while kit::cpu_cost::thread_cpu_nanos().saturating_sub(start) < BODY_CPU_NANOS {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(
            axum::body::Bytes::from_static(b"ok"),
        ))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(if self.done { 0 } else { 2 })
    }
}

/// The CPU a connection spends on a request outside its handler (here,
/// writing a body that is costly to produce) is charged to the request's
/// route, request after request on one keep-alive connection.
#[tokio::test]
async fn a_connection_charges_its_cpu_to_the_route_it_serves() {
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
        .with_cost_sampling(1);
    let addr = server.local_addr();
    let config = kit::http::HttpConfig {
        cost_sample_every: 1,
        ..kit::http::HttpConfig::default()
    };
    let router = Router::new().route(
        "/burning",
        get(|| async { axum::body::Body::new(BurningBody { done: false }) }),
    );
    let router = kit::http::stack(router, "kit-connection-test", &config);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { server.serve(router, stop).await.expect("serve") });

    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..3 {
        tcp.write_all(b"GET /burning HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\nok") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.expect("the response");
            answer.push(byte[0]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"));
    }
    drop(tcp);
    // Every connection has finished once the server returns.
    shutdown.cancel();
    task.await.expect("server task");

    let charged: u64 = kit::cpu_cost::counters()
        .snapshot()
        .into_iter()
        .filter(|c| c.module == "kit-connection-test" && c.route == "/burning")
        .map(|c| c.nanos)
        .sum();
    assert!(
        charged >= 3 * BODY_CPU_NANOS,
        "the bodies' CPU is the route's: {charged} ns charged for 3 bodies of {BODY_CPU_NANOS} ns"
    );
}
