//! `http.connection_threads`: connections served on threads of their own,
//! over real loopback sockets. Every wait is on a channel, never on time.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kit::server::HttpServer;
use kit::CancellationToken;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

async fn start(
    router: Router,
    threads: usize,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
        .with_connection_threads(threads);
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        server.serve(router, stop).await.expect("serve");
    });
    (addr, shutdown, task)
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
    let router = Router::new().route(
        "/thread",
        get(|| async {
            std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string()
        }),
    );
    let (addr, shutdown, task) = start(router, 2).await;
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
    let (addr, shutdown, task) = start(router, 2).await;

    let request = tokio::spawn(async move { ask(addr, "/slow").await });
    started.recv().await.expect("the handler started");
    shutdown.cancel();
    // The listener closes; the request in flight is still answered.
    let _ = answer_tx.send(());
    assert_eq!(request.await.expect("request"), "late");
    task.await.expect("server task");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");

    // The server has returned; the task the handler spawned still runs on
    // its thread, which ends only after it.
    let _ = go_tx.send(());
    done_rx
        .await
        .expect("the spawned task was dropped with its thread");
}

#[tokio::test]
async fn zero_threads_serve_on_the_callers_runtime() {
    let router = Router::new().route(
        "/thread",
        get(|| async {
            std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string()
        }),
    );
    let (addr, shutdown, task) = start(router, 0).await;
    let here = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string();
    assert_eq!(ask(addr, "/thread").await, here);
    shutdown.cancel();
    task.await.expect("server task");
}
