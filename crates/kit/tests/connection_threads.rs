//! `http.connection_threads`: connections served on threads of their own
//! ([`ConnectionThreads`]), over real loopback sockets. Every wait is on a
//! channel, never on time.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kit::server::{ConnectionThreads, HttpServer};
use kit::CancellationToken;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

async fn start(
    router: Router,
    threads: Option<&ConnectionThreads>,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let mut server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    if let Some(threads) = threads {
        server = server.with_connection_threads(threads.clone());
    }
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        server.serve(router, stop).await.expect("serve");
    });
    (addr, shutdown, task)
}

/// The name of the thread this runs on.
fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

/// One request on its own connection, closed after the answer; the body.
async fn ask(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn connections_take_turns_on_the_threads_and_each_stays_on_one() {
    let router = Router::new().route("/thread", get(|| async { thread_name() }));
    let threads = ConnectionThreads::start(2).expect("threads");
    assert_eq!(threads.count(), 2);
    let (addr, shutdown, task) = start(router, Some(&threads)).await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(ask(addr, "/thread").await);
    }
    assert_eq!(
        seen,
        BTreeSet::from(["http-conn-0".to_string(), "http-conn-1".to_string()])
    );

    // Requests on one kept-alive connection are served by one thread.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut threads = BTreeSet::new();
    for _ in 0..3 {
        tcp.write_all(b"GET /thread HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut head = vec![0u8; 256];
        let n = tcp.read(&mut head).await.expect("read");
        let text = String::from_utf8_lossy(&head[..n]).into_owned();
        threads.insert(
            text.split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(threads.len(), 1, "{threads:?}");
    drop(tcp);

    shutdown.cancel();
    task.await.expect("server task");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    // The last handle: the threads end, and the drop waits for them.
    drop(threads);
}

/// What the spawned task waits for, and what it sends when it has run.
type Later = (oneshot::Receiver<()>, oneshot::Sender<()>);

/// What the handler below tells the test and waits for.
#[derive(Clone)]
struct Script {
    started: mpsc::UnboundedSender<()>,
    answer: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    /// The task the handler spawns waits for this, then sends on `done`.
    later: Arc<Mutex<Option<Later>>>,
}

async fn slow(State(script): State<Script>) -> &'static str {
    let later = script.later.lock().ok().and_then(|mut l| l.take());
    if let Some((go, done)) = later {
        // Runs on after the answer, on the connection's thread.
        drop(tokio::spawn(async move {
            if go.await.is_ok() {
                let _ = done.send(());
            }
        }));
    }
    let _ = script.started.send(());
    let answer = script.answer.lock().ok().and_then(|mut a| a.take());
    if let Some(answer) = answer {
        let _ = answer.await;
    }
    "late"
}

#[tokio::test]
async fn shutdown_waits_for_a_request_in_flight_and_keeps_the_tasks_it_spawned() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (answer_tx, answer_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let script = Script {
        started: started_tx,
        answer: Arc::new(Mutex::new(Some(answer_rx))),
        later: Arc::new(Mutex::new(Some((go_rx, done_tx)))),
    };
    let router = Router::new().route("/slow", get(slow)).with_state(script);
    let threads = ConnectionThreads::start(2).expect("threads");
    let (addr, shutdown, task) = start(router, Some(&threads)).await;

    let request = tokio::spawn(async move { ask(addr, "/slow").await });
    started.recv().await.expect("the handler started");
    shutdown.cancel();
    // The listener closes; the request in flight is still answered.
    let _ = answer_tx.send(());
    assert_eq!(request.await.expect("request"), "late");
    task.await.expect("server task");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");

    // The server has returned; the task the handler spawned still runs on
    // its thread, which lives as long as its owner's handle.
    let _ = go_tx.send(());
    done_rx
        .await
        .expect("the spawned task was dropped with its thread");
    drop(threads);
}

/// A socket opened on a connection thread (as a database pool opens one
/// for a request there) keeps working after the server has stopped, for
/// as long as the threads' owner keeps them: the platform stops its
/// modules, which use their pools, after its listener has closed.
#[tokio::test]
async fn a_socket_opened_on_a_connection_thread_outlives_the_server() {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                while let Ok(1) = stream.read(&mut byte).await {
                    if stream.write_all(&byte).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (opened_tx, opened_rx) = oneshot::channel::<TcpStream>();
    let opened = Arc::new(Mutex::new(Some(opened_tx)));
    let router = Router::new().route(
        "/open",
        get(move || {
            let opened = opened.clone();
            async move {
                let stream = TcpStream::connect(echo_addr).await.expect("connect");
                if let Some(tx) = opened.lock().ok().and_then(|mut o| o.take()) {
                    let _ = tx.send(stream);
                }
                "opened"
            }
        }),
    );
    let threads = ConnectionThreads::start(1).expect("threads");
    let (addr, shutdown, task) = start(router, Some(&threads)).await;
    assert_eq!(ask(addr, "/open").await, "opened");
    shutdown.cancel();
    task.await.expect("server task");

    // Registered with the connection thread's runtime, used from here.
    let mut stream = opened_rx.await.expect("the handler's socket");
    stream.write_all(b"x").await.expect("write");
    let mut back = [0u8; 1];
    stream.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"x");
    drop(threads);
}

#[tokio::test]
async fn without_threads_connections_are_served_on_the_callers_runtime() {
    let router = Router::new().route("/thread", get(|| async { thread_name() }));
    let (addr, shutdown, task) = start(router, None).await;
    let here = thread_name();
    assert_eq!(ask(addr, "/thread").await, here);
    shutdown.cancel();
    task.await.expect("server task");
}
