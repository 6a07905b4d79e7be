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
    start_with(Router::new().route("/", get(|| async { "ok" }))).await
}

async fn start_with(
    router: Router,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
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

/// Asks `GET path` on a keep-alive connection and reads its response: up
/// to and including `end`, which the test knows the response ends with.
async fn ask(tcp: &mut TcpStream, path: &str, end: &[u8]) -> String {
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    while !answer.ends_with(end) {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte)
            .await
            .unwrap_or_else(|e| panic!("{e}: the connection closed after {answer:?}"));
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The guard's tick: the timeout over six (`server::head_timeout`).
const TICK: std::time::Duration = HEADER_READ_TIMEOUT.checked_div(6).expect("tick");

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let (addr, _shutdown, _task) = start().await;
    let started = tokio::time::Instant::now();
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let answer = ask(&mut idle, "/", b"\r\n\r\nok").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answered = tokio::time::Instant::now();

    let rest = tokio::time::timeout(2 * HEADER_READ_TIMEOUT, read_all(&mut idle))
        .await
        .expect("an idle keep-alive connection was kept past twice the header timeout");
    assert!(rest.is_empty(), "unexpected bytes: {rest}");
    // The wait began when the response ended, after `started`; it is seen
    // at the first tick after that, and a paused clock's jumps can put the
    // client's read of the response up to a tick late.
    assert!(
        started.elapsed() >= HEADER_READ_TIMEOUT,
        "closed {:?} after the request, before the header timeout",
        started.elapsed()
    );
    assert!(
        answered.elapsed() <= HEADER_READ_TIMEOUT + 2 * TICK,
        "closed {:?} after the response, more than two ticks past the timeout",
        answered.elapsed()
    );
}

/// The timeout counts from the last response, not from the connection's
/// start: a client that asks every third of the timeout keeps its
/// connection for many timeouts.
#[tokio::test(start_paused = true)]
async fn a_connection_in_use_is_kept_past_the_header_timeout() {
    let (addr, _shutdown, _task) = start().await;
    let started = tokio::time::Instant::now();
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    for round in 0..10 {
        let answer = ask(&mut busy, "/", b"\r\n\r\nok").await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer}"
        );
        tokio::time::sleep(HEADER_READ_TIMEOUT / 3).await;
    }
    assert!(started.elapsed() >= 3 * HEADER_READ_TIMEOUT);
}

/// A request that is being served is not waiting for its client, however
/// long it takes: a handler slower than the timeout and a body that
/// streams for longer than it are served to the end, and the connection
/// is still open for the next request.
#[tokio::test(start_paused = true)]
async fn a_response_longer_than_the_header_timeout_is_served_to_its_end() {
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(2 * HEADER_READ_TIMEOUT).await;
                "slow"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::unfold(0u32, |sent| async move {
                    if sent == 7 {
                        return None;
                    }
                    tokio::time::sleep(HEADER_READ_TIMEOUT / 3).await;
                    let chunk = axum::body::Bytes::from(format!("chunk{sent};"));
                    Some((Ok::<_, std::convert::Infallible>(chunk), sent + 1))
                });
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route("/", get(|| async { "ok" }));
    let (addr, _shutdown, _task) = start_with(router).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");

    let started = tokio::time::Instant::now();
    let answer = ask(&mut tcp, "/slow", b"\r\n\r\nslow").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= 2 * HEADER_READ_TIMEOUT);

    let started = tokio::time::Instant::now();
    let answer = ask(&mut tcp, "/stream", b"\r\n0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("chunk6;"), "{answer}");
    assert!(started.elapsed() >= 2 * HEADER_READ_TIMEOUT);

    tcp.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert!(read_all(&mut tcp).await.starts_with("HTTP/1.1 200"));
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

/// One request over a fresh connection: the status line, the headers and
/// the body, as the client reads them.
async fn exchange(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    read_all(&mut tcp).await
}

/// A front (the gateway's shape: its own routes, a catch-all for the rest)
/// answers exactly as the same router through axum does: its routes and
/// their 405 by the routes, every other path by the catch-all, which sees
/// the peer's address and is observed under its own label.
#[tokio::test]
async fn a_front_hands_other_paths_to_its_catch_all_and_answers_as_axum_does() {
    kit::metrics::install();
    let own = || {
        kit::http::Routes::new()
            .route("/", get(|| async { "root" }))
            .route("/items/{id}", get(|| async { "item" }))
            // A second method on a path: one route, one template.
            .route("/items/{id}", axum::routing::delete(|| async { "gone" }))
            .merge(kit::metrics::routes())
    };
    let catch_all = kit::http::CatchAll::new(
        "/{*front}",
        |request: axum::extract::Request, peer: Option<std::net::SocketAddr>| async move {
            let peer = peer.map_or_else(|| "no peer".into(), |peer| peer.ip().to_string());
            axum::response::IntoResponse::into_response(format!(
                "caught {} from {peer}",
                request.uri().path()
            ))
        },
    );
    let config = kit::http::HttpConfig::default();
    let front = kit::http::front(own(), "kit-front", &config, Some(catch_all.clone()));
    for own_path in ["/", "/items/7", "/metrics"] {
        assert!(!front.goes_around(own_path), "{own_path}");
    }
    for other in [
        "/x",
        "/items",
        "/items/7/more",
        "/items/7/",
        "/%69tems/7",
        "",
    ] {
        assert!(front.goes_around(other), "{other}");
    }
    // An opaque router among the routes turns the way around off.
    let opaque = kit::http::Routes::opaque(Router::new().route("/x", get(|| async { "x" })));
    let through_axum = kit::http::front(
        own().merge(opaque),
        "kit-front-opaque",
        &config,
        Some(catch_all),
    );
    assert!(!through_axum.goes_around("/anything"));

    for (name, front) in [("around", front), ("through axum", through_axum)] {
        let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { server.serve(front, stop).await.expect("serve") });
        let root = exchange(addr, "GET", "/").await;
        assert!(
            root.starts_with("HTTP/1.1 200") && root.ends_with("root"),
            "{name}: {root}"
        );
        let item = exchange(addr, "GET", "/items/7").await;
        assert!(item.ends_with("item"), "{name}: {item}");
        let refused = exchange(addr, "POST", "/items/7").await;
        assert!(refused.starts_with("HTTP/1.1 405"), "{name}: {refused}");
        for (path, seen) in [
            ("/elsewhere?q=1", "/elsewhere"),
            ("/items/7/more", "/items/7/more"),
        ] {
            let caught = exchange(addr, "GET", path).await;
            assert!(caught.starts_with("HTTP/1.1 200"), "{name}: {caught}");
            assert!(
                caught.ends_with(&format!("caught {seen} from 127.0.0.1")),
                "{name}: {caught}"
            );
            let lower = caught.to_ascii_lowercase();
            assert!(lower.contains("\r\nx-request-id: "), "{name}: {caught}");
            assert!(
                lower.contains("\r\nx-content-type-options: nosniff"),
                "{name}: {caught}"
            );
        }
        shutdown.cancel();
        task.await.expect("server task");
    }
    let metrics = kit::metrics::render();
    for service in ["kit-front", "kit-front-opaque"] {
        let series = format!(
            r#"http_server_request_duration_seconds_count{{service="{service}",http_route="/{{*front}}",http_request_method="GET",http_response_status_code="200"}} 2"#
        );
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
}

/// A catch-all that keeps the request's time is handed the stack's
/// `http.request_timeout` and is not cut by kit (it answers after twice
/// the timeout here, on the paused clock); reached through axum as a
/// route, it is handed none and kit's own timeout answers 503.
#[tokio::test(start_paused = true)]
async fn a_catch_all_keeping_time_is_handed_the_timeout_and_kit_arms_none() {
    kit::metrics::install();
    let config = kit::http::HttpConfig::default();
    let slow = config.request_timeout * 2;
    let catch_all = kit::http::CatchAll::keeping_time(
        "/{*kept}",
        move |_: axum::extract::Request, _, timeout: Option<std::time::Duration>| async move {
            tokio::time::sleep(slow).await;
            axum::response::IntoResponse::into_response(format!("handed {timeout:?}"))
        },
    );
    let around = kit::http::front(
        kit::http::Routes::new().route("/", get(|| async { "root" })),
        "kit-kept",
        &config,
        Some(catch_all.clone()),
    );
    let opaque = kit::http::Routes::opaque(Router::new().route("/x", get(|| async { "x" })));
    let through_axum = kit::http::front(opaque, "kit-kept-axum", &config, Some(catch_all));
    for (name, front, expected) in [
        (
            "around",
            around,
            format!("200 handed {:?}", Some(config.request_timeout)),
        ),
        ("through axum", through_axum, "503".to_string()),
    ] {
        let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { server.serve(front, stop).await.expect("serve") });
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /anything HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_all(&mut tcp).await;
        let status = answer.split_whitespace().nth(1).unwrap_or("none");
        let summary = if status == "200" {
            format!("200 {}", answer.rsplit("\r\n\r\n").next().unwrap_or(""))
        } else {
            status.to_string()
        };
        assert_eq!(summary, expected, "{name}: {answer}");
        shutdown.cancel();
    }
}
