//! The client's connections: HTTP/1.1 connections of hyper's
//! `client::conn` API, each served by a task of its own, kept idle per
//! server for reuse.
//!
//! hyper-util's pooled client (what this replaces) finds a request's pool
//! by hashing the URI's scheme and authority with SipHash three times a
//! call (checkout, the idle map's entry, the return), wraps each
//! connection in its checkout and return machinery, and, when the answer's
//! body has not been read by the time the head is back (every answer with
//! a body), spawns a task per request that waits for the connection to
//! be ready again before returning it. Here the idle list compares the
//! scheme and authority as bytes, and the connection goes back when its
//! answer's body ends ([`ResponseBody`]), from the task that read it: no
//! task per request (issue 18; the instructions are in
//! docs/performance.md).
//!
//! Each connection's I/O runs in its own task, as with hyper-util (driving
//! it from the request's task instead saved instructions and cost more
//! CPU in thread wake-ups: measured and reverted, see the same page). The
//! task ends when the server closes the connection or when the client
//! drops its last handle to it (an idle connection past its timeout, or
//! past `max_idle_per_host`, or the client dropped). The client's tracker
//! holds every such task, so its owner can close the idle connections and
//! wait for the tasks at shutdown ([`crate::HttpClient::shutdown`]); a
//! task that panics is logged, not lost.
//!
//! A closed idle connection is skipped when taken; a request that a
//! connection closed under before it could start is sent on another; one
//! that was sent is the caller's to retry ([`crate::ClientError::Exchange`]).
//! Idle connections older than the idle timeout are closed when their
//! server's list is next used.

use crate::body::ClientBody;
use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// The transport of a connection: TCP, with TLS for `https://`.
pub(crate) type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// Which server a connection is to: scheme and authority, compared byte
/// for byte (a name written in two cases makes two lists, which costs a
/// connection, never a wrong answer).
#[derive(Clone, Debug)]
pub(crate) struct Key {
    https: bool,
    authority: Authority,
}

impl Key {
    pub(crate) fn new(https: bool, authority: Authority) -> Self {
        Self { https, authority }
    }

    fn is(&self, other: &Key) -> bool {
        self.https == other.https && self.authority.as_str() == other.authority.as_str()
    }
}

/// One HTTP/1.1 connection: the handle that sends on it. Its I/O runs in
/// a task of its own (spawned by [`Conn::handshake`]).
pub(crate) struct Conn {
    sender: SendRequest<ClientBody>,
    /// The idle list it goes back to: the thread its task runs on, when
    /// that thread has a runtime of its own.
    shard: Shard,
}

/// How a request on one connection ended, when it did not get an answer.
pub(crate) enum SendError {
    /// The connection could not take it (closed while idle): nothing was
    /// sent, and here it is back.
    /// (Boxed: the cold path, kept out of every call's result.)
    Unsent(Box<http::Request<ClientBody>>, hyper::Error),
    /// Sent, at least in part, then the exchange failed.
    Failed(hyper::Error),
}

impl Conn {
    /// Speaks HTTP/1.1 over `io`, its I/O in a task of `tasks`.
    pub(crate) async fn handshake(io: Io, tasks: &TaskTracker) -> Result<Self, hyper::Error> {
        use futures::FutureExt;
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tasks.spawn(async move {
            match std::panic::AssertUnwindSafe(connection)
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => {}
                // Resets and servers closing mid-answer: the caller saw
                // the error; routine for an operator.
                Ok(Err(e)) => tracing::debug!(
                    error = &e as &dyn std::error::Error,
                    "upstream connection ended with an error"
                ),
                Err(_) => tracing::error!("upstream connection task panicked"),
            }
        });
        Ok(Self {
            sender,
            shard: Shard::current(),
        })
    }

    fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Whether it would take a request now: its task has read the last
    /// answer's end and sent the last request's body.
    fn is_ready(&self) -> bool {
        self.sender.is_ready()
    }

    /// Sends `request` (origin-form URI, `Host` set) and waits for the
    /// response head.
    pub(crate) async fn send(
        mut self,
        request: http::Request<ClientBody>,
        home: Home,
    ) -> Result<http::Response<ResponseBody>, SendError> {
        // A connection goes back to its list when its last answer's body
        // has been read, which its task may not have seen yet: it is
        // ready once it has.
        if !self.sender.is_ready() {
            if let Err(error) = std::future::poll_fn(|cx| self.sender.poll_ready(cx)).await {
                return Err(SendError::Unsent(Box::new(request), error));
            }
        }
        match self.sender.try_send_request(request).await {
            Ok(response) => Ok(response.map(|body| ResponseBody {
                body,
                conn: Some(self),
                home: Some(home),
            })),
            Err(mut error) => match error.take_message() {
                Some(request) => Err(SendError::Unsent(Box::new(request), error.into_error())),
                None => Err(SendError::Failed(error.into_error())),
            },
        }
    }
}

/// Which idle list a connection belongs to. A connection's I/O runs in a
/// task of the runtime that opened it: on a single-threaded runtime (a
/// server's connection thread, `kit::server`), a request that takes a
/// connection opened on another thread would wake that thread for every
/// read and write, which costs more than the connection saves. So each
/// such thread keeps its own idle connections; every thread of a
/// multi-threaded runtime shares one list (its tasks move between its
/// threads anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shard(Option<std::thread::ThreadId>);

impl Shard {
    fn current() -> Self {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                Shard(Some(std::thread::current().id()))
            }
            _ => Shard(None),
        }
    }
}

/// Idle connections of one client, per server (and per thread with a
/// runtime of its own: [`Shard`]).
pub(crate) struct IdleList {
    /// A handful of servers per client (a pool's endpoints): a short scan
    /// finds one.
    servers: Mutex<Vec<Server>>,
    max_per_server: usize,
    timeout: Duration,
    /// Every connection's task.
    tasks: TaskTracker,
}

struct Server {
    key: Key,
    shard: Shard,
    /// Oldest first.
    idle: VecDeque<Idle>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl IdleList {
    pub(crate) fn new(max_per_server: usize, timeout: Duration) -> Self {
        Self {
            servers: Mutex::new(Vec::new()),
            max_per_server,
            timeout,
            tasks: TaskTracker::new(),
        }
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Closes every idle connection and waits for the tasks of all
    /// connections to end (those in use end when their answers do). New
    /// connections may still be opened afterwards; they are tracked too.
    pub(crate) async fn shutdown(&self) {
        let idle: Vec<Server> =
            std::mem::take(&mut *self.servers.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// The most recently used idle connection to `key` that can take a
    /// request now; the expired and closed ones met on the way are closed
    /// (outside the lock). One that is open but not ready stays: its
    /// answer has ended while it still sends its request's body (an
    /// upstream that answered before reading an upload), and a request
    /// given to it would wait behind that body; none ready, the caller
    /// opens a new connection, as hyper-util's pool did.
    pub(crate) fn take(&self, key: &Key) -> Option<Conn> {
        let mut closing = Vec::new();
        let shard = Shard::current();
        let found = {
            let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
            let server = servers
                .iter_mut()
                .find(|s| s.shard == shard && s.key.is(key))?;
            self.expire(&mut server.idle, &mut closing);
            let mut found = None;
            let mut i = server.idle.len();
            while i > 0 {
                i -= 1;
                let conn = &server.idle[i].conn;
                if conn.is_closed() {
                    closing.extend(server.idle.remove(i));
                } else if conn.is_ready() {
                    found = server.idle.remove(i).map(|idle| idle.conn);
                    break;
                }
            }
            found
        };
        drop(closing);
        found
    }

    /// Keeps `conn` for the next request to `key`, if it is open; past
    /// `max_per_server`, the oldest of that server's is closed.
    fn put(&self, key: Key, conn: Conn) {
        if conn.is_closed() || self.max_per_server == 0 {
            return;
        }
        let mut closing = Vec::new();
        let shard = conn.shard;
        {
            let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
            let server = match servers
                .iter()
                .position(|s| s.shard == shard && s.key.is(&key))
            {
                Some(i) => &mut servers[i],
                None => {
                    servers.push(Server {
                        key,
                        shard,
                        idle: VecDeque::new(),
                    });
                    let last = servers.len() - 1;
                    &mut servers[last]
                }
            };
            self.expire(&mut server.idle, &mut closing);
            if server.idle.len() >= self.max_per_server {
                closing.extend(server.idle.pop_front());
            }
            server.idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
        }
        drop(closing);
    }

    /// Moves the connections idle longer than the timeout (the oldest
    /// come first) to `closing`.
    fn expire(&self, idle: &mut VecDeque<Idle>, closing: &mut Vec<Idle>) {
        while idle
            .front()
            .is_some_and(|entry| entry.since.elapsed() >= self.timeout)
        {
            closing.extend(idle.pop_front());
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.servers
            .lock()
            .map(|servers| servers.iter().map(|s| s.idle.len()).sum())
            .unwrap_or(0)
    }
}

/// Where a connection goes back to when its response body has ended.
pub(crate) struct Home {
    pub(crate) list: Arc<IdleList>,
    pub(crate) key: Key,
}

/// A response body from [`crate::HttpClient`]: hyper's, with the
/// connection it arrives on. When the body has ended, the connection is
/// kept for the next request; a body dropped before its end closes it.
pub struct ResponseBody {
    body: Incoming,
    conn: Option<Conn>,
    home: Option<Home>,
}

impl ResponseBody {
    fn release(&mut self) {
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) {
            home.list.put(home.key, conn);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            // The whole body is in: the connection may serve another.
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken body leaves the connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body (a 204, a `Content-Length: 0`) is never polled.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::body::{empty, full};
    use crate::{ClientError, ClientSettings, HttpClient};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Reads one request head (and no body); false at the end of the
    /// stream.
    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        true
    }

    /// A server whose `serve` runs on each accepted connection (numbered
    /// from 0); returns its address and the count of connections.
    async fn server<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(n, stream));
            }
        });
        (format!("http://{addr}"), accepted)
    }

    /// Answers `ok` to every request, kept alive.
    async fn keep_alive(_: usize, mut stream: TcpStream) {
        while read_head(&mut stream).await {
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
    }

    fn get(url: &str) -> http::Request<crate::body::ClientBody> {
        http::Request::get(url).body(empty()).expect("request")
    }

    async fn text(client: &HttpClient, request: http::Request<crate::body::ClientBody>) -> String {
        let response = client.send(request).await.expect("answer");
        let body = response.into_body().collect().await.expect("body");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    /// A thread with a runtime of its own keeps its own idle
    /// connections (their tasks run there); a multi-threaded runtime's
    /// threads share theirs.
    #[test]
    fn threads_with_runtimes_of_their_own_keep_their_own_connections() {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (base, accepted) = multi.block_on(server(keep_alive));
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let url = format!("{base}/");
        let on_own_thread = |client: HttpClient, url: String| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    for _ in 0..3 {
                        assert_eq!(text(&client, get(&url)).await, "ok");
                    }
                });
                // The connection's task ends with its runtime.
            })
            .join()
            .expect("thread")
        };
        on_own_thread(client.clone(), url.clone());
        on_own_thread(client.clone(), url.clone());
        // Each thread opened one and reused it; neither took the other's.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // On the multi-threaded runtime, requests from tasks that may run
        // on either thread reuse one connection.
        let shared = HttpClient::new(&ClientSettings::default()).expect("client");
        multi.block_on(async {
            for _ in 0..4 {
                let (client, url) = (shared.clone(), url.clone());
                let answer = tokio::spawn(async move { text(&client, get(&url)).await })
                    .await
                    .expect("task");
                assert_eq!(answer, "ok");
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(shared.idle_connections(), 1);
    }

    #[tokio::test]
    async fn requests_in_sequence_share_one_connection() {
        let (base, accepted) = server(keep_alive).await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        for _ in 0..5 {
            assert_eq!(text(&client, get(&format!("{base}/"))).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.idle_connections(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_not_used() {
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        let close_rx = Arc::new(std::sync::Mutex::new(Some(close_rx)));
        // The first connection answers once, then the server closes it
        // when told (a server's keep-alive timeout); the others stay open.
        let (base, accepted) = server(move |n, mut stream| {
            let closed = closed_tx.clone();
            let close = close_rx.lock().ok().and_then(|mut c| c.take());
            async move {
                if let (0, Some(close)) = (n, close) {
                    if read_head(&mut stream).await {
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        let _ = stream.write_all(answer).await;
                    }
                    let _ = close.await;
                    drop(stream);
                    let _ = closed.send(());
                } else {
                    keep_alive(n, stream).await;
                }
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        assert_eq!(text(&client, get(&format!("{base}/"))).await, "ok");
        assert_eq!(client.idle_connections(), 1);
        let _ = close_tx.send(());
        closed_rx.recv().await.expect("closed");
        // Lets the runtime's I/O driver see the end of the stream (a
        // yielded task is woken after the driver is polled).
        tokio::task::yield_now().await;
        // Not idempotent: it must not go out on the closed connection.
        let post = http::Request::post(format!("{base}/orders"))
            .body(full(bytes::Bytes::from_static(b"{}")))
            .expect("request");
        assert_eq!(text(&client, post).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(client.idle_connections(), 1);
    }

    /// The server answers before reading the request's body, which is
    /// still being sent: that connection is not ready when the answer
    /// ends, and the next request goes on another instead of waiting
    /// behind the body.
    #[tokio::test]
    async fn a_connection_still_sending_a_request_body_is_not_given_to_the_next_request() {
        let (base, accepted) = server(keep_alive).await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let (chunks, stalled) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let stream = futures::stream::unfold(stalled, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(http_body::Frame::data(chunk)), rx))
        });
        chunks
            .send(bytes::Bytes::from_static(b"part"))
            .expect("chunk");
        let upload = http::Request::post(format!("{base}/upload"))
            .body(crate::body::streaming(http_body_util::StreamBody::new(
                stream,
            )))
            .expect("request");
        // The body never ends (its sender is kept): the answer does.
        assert_eq!(text(&client, upload).await, "ok");
        let within = std::time::Duration::from_secs(10);
        let next = tokio::time::timeout(within, text(&client, get(&format!("{base}/"))))
            .await
            .expect("an answer on another connection, not a wait behind the upload");
        assert_eq!(next, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        drop(chunks);
    }

    /// Shutdown closes the idle connections and returns once their tasks
    /// have ended: the server sees each connection closed.
    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_waits_for_their_tasks() {
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let (base, _) = server(move |n, stream| {
            let closed = closed_tx.clone();
            async move {
                keep_alive(n, stream).await;
                let _ = closed.send(n);
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let (a, b) = tokio::join!(
            text(&client, get(&format!("{base}/a"))),
            text(&client, get(&format!("{base}/b")))
        );
        assert_eq!((a.as_str(), b.as_str()), ("ok", "ok"));
        assert_eq!(client.idle_connections(), 2);
        client.shutdown().await;
        assert_eq!(client.idle_connections(), 0);
        assert_eq!(client.connection_tasks(), 0);
        for _ in 0..2 {
            closed_rx.recv().await.expect("a connection closed");
        }
        // The client still works afterwards.
        assert_eq!(text(&client, get(&format!("{base}/"))).await, "ok");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (base, accepted) = server(|n, mut stream| async move {
            if n == 0 {
                // Half of a body, then nothing.
                if read_head(&mut stream).await {
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.";
                    let _ = stream.write_all(answer).await;
                }
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
            } else {
                keep_alive(n, stream).await;
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let response = client.send(get(&format!("{base}/"))).await.expect("head");
        assert_eq!(response.status(), 200);
        drop(response);
        assert_eq!(client.idle_connections(), 0);
        assert_eq!(text(&client, get(&format!("{base}/"))).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_empty_body_frees_its_connection_unread() {
        let (base, accepted) = server(|_, mut stream| async move {
            while read_head(&mut stream).await {
                let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        for _ in 0..3 {
            let response = client.send(get(&format!("{base}/"))).await.expect("head");
            assert_eq!(response.status(), 204);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.idle_connections(), 1);
    }

    #[tokio::test]
    async fn idle_connections_are_kept_up_to_the_limit_and_not_past_their_timeout() {
        let (base, accepted) = server(keep_alive).await;
        let client = HttpClient::new(&ClientSettings {
            max_idle_per_host: 1,
            ..ClientSettings::default()
        })
        .expect("client");
        // Two at once: two connections, one kept.
        let (a, b) = tokio::join!(
            text(&client, get(&format!("{base}/a"))),
            text(&client, get(&format!("{base}/b")))
        );
        assert_eq!((a.as_str(), b.as_str()), ("ok", "ok"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(client.idle_connections(), 1);

        // A timeout of zero: every idle connection has expired when the
        // next request looks.
        let expiring = HttpClient::new(&ClientSettings {
            idle_timeout: std::time::Duration::ZERO,
            ..ClientSettings::default()
        })
        .expect("client");
        for _ in 0..2 {
            assert_eq!(text(&expiring, get(&format!("{base}/"))).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    /// The connection ends inside the answer's head, then inside a body:
    /// each is an error that arrives (not a wait for ever), and neither
    /// connection is kept.
    #[tokio::test]
    async fn a_connection_that_breaks_mid_answer_fails_the_call_and_is_not_kept() {
        let (base, accepted) = server(|n, mut stream| async move {
            if read_head(&mut stream).await {
                let answer: &[u8] = if n == 0 {
                    b"HTTP/1.1 200 OK\r\nContent-Le"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf."
                };
                let _ = stream.write_all(answer).await;
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let within = std::time::Duration::from_secs(30);
        let head = tokio::time::timeout(within, client.send(get(&format!("{base}/"))))
            .await
            .expect("an answer, not a wait");
        assert!(matches!(head, Err(ClientError::Exchange(_))), "{head:?}");
        let response = client.send(get(&format!("{base}/"))).await.expect("head");
        let body = tokio::time::timeout(within, response.into_body().collect())
            .await
            .expect("an end, not a wait");
        assert!(body.is_err());
        assert_eq!(client.idle_connections(), 0);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_gets_the_servers_host_and_goes_out_in_origin_form() {
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let (base, _) = server(move |_, mut stream| {
            let seen = seen_tx.clone();
            async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = seen.send(String::from_utf8_lossy(&head).into_owned());
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                let _ = stream.write_all(answer).await;
            }
        })
        .await;
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        assert_eq!(text(&client, get(&format!("{base}/p?q=1"))).await, "ok");
        let head = seen_rx.recv().await.expect("head").to_ascii_lowercase();
        assert!(head.starts_with("get /p?q=1 http/1.1\r\n"), "{head}");
        let host = base.trim_start_matches("http://");
        assert!(head.contains(&format!("\r\nhost: {host}\r\n")), "{head}");

        let relative = client.send(get("/no-server")).await;
        assert!(
            matches!(relative, Err(ClientError::Connect(_))),
            "{relative:?}"
        );
    }
}
