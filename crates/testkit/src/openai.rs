//! A scripted OpenAI-compatible backend for the LLM gateway's tests.
//!
//! The gateway's promises (chunks forwarded as they come, usage that
//! matches what the backend generated, cancellation reaching the backend,
//! failover on 429/5xx, timeouts on a silent backend) are only testable
//! against a backend whose speed and failures a test controls exactly.
//! [`ScriptedBackend`] is that backend: an HTTP/1 server on a free loopback
//! port answering `POST /v1/chat/completions`, `POST /v1/completions`
//! (streamed as server-sent events or not), `POST /v1/embeddings`,
//! `GET /v1/models` and `GET /health`, as its [`Script`] says.
//!
//! It counts what it did ([`Stats`]: the ground truth a gateway's usage
//! report must match), keeps the last requests it received (what the
//! gateway forwarded), and lets a test wait for a count without sleeping
//! ([`ScriptedBackend::wait_until`]). Sockets have Nagle off, so a chunk
//! leaves when it is produced; [`Pacing::Manual`] makes chunk timing
//! independent of the clock altogether. Connections are served one task
//! each by a hand-written accept loop (not `axum::serve`) so that
//! [`ScriptedBackend::stop`] and [`Failure::DisconnectAfter`] can cut a
//! connection at once, as a crashed server would.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use std::time::Duration;
//! use testkit::openai::{Pacing, Script, ScriptedBackend};
//!
//! let backend = ScriptedBackend::start(Script {
//!     tokens: 3,
//!     pacing: Pacing::Manual,
//!     ..Script::default()
//! })
//! .await?;
//! // Configure the gateway with `backend.base_url()`, stream through it,
//! // read chunk 0, then `backend.release(1)` for chunk 1...
//! // After the client goes away:
//! let stats = tokio::time::timeout(
//!     Duration::from_secs(10),
//!     backend.wait_until(|s| s.active == 0 && s.cancelled == 1),
//! )
//! .await
//! .expect("the backend saw the client leave");
//! assert_eq!(stats.completion_tokens_served, 1);
//! # Ok(())
//! # }
//! ```
//!
//! Under `tokio::time::pause()` (a current-thread runtime, the backend on
//! it) the scripted delays cost no real time, and a `timeout` fires only
//! once no task can progress: `timeout(an_hour, next_chunk)` failing proves
//! deterministically that a chunk is being held.

mod generation;
mod handlers;
mod script;
mod server;
mod wire;

pub use script::{Failure, Pacing, Script};
pub use wire::{prompt_tokens, token_text};

use axum::http::HeaderMap;
use serde_json::Value;
use server::Server;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How many requests [`ScriptedBackend::recorded`] keeps (the latest).
pub const RECORDED_REQUESTS: usize = 64;

/// What the backend did so far, counted over its whole life (across
/// [`ScriptedBackend::restart`]). Every request to a `POST` endpoint ends
/// exactly one way: `requests == active + completed + cancelled + aborted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received on the `POST` endpoints (generations, embeddings).
    pub requests: u64,
    /// Requests whose response is still being produced.
    pub active: u64,
    /// Responses produced to their end as scripted, error statuses and
    /// [`Failure::MissingDone`] included.
    pub completed: u64,
    /// Responses left unfinished because the client went away (or the
    /// backend was stopped): the response future or body stream was
    /// dropped before its end.
    pub cancelled: u64,
    /// Responses the backend cut on purpose ([`Failure::DisconnectAfter`]).
    pub aborted: u64,
    /// Prompt tokens of every generation that produced a first byte, and
    /// of every embedding answered or aborted, counted by
    /// [`prompt_tokens`], whether or not usage was reported.
    pub prompt_tokens_served: u64,
    /// Output tokens generated, each counted when produced (a cancelled
    /// stream counts the tokens it produced), whether or not usage was
    /// reported.
    pub completion_tokens_served: u64,
    /// `GET /health` requests.
    pub health_checks: u64,
    /// `GET /v1/models` requests.
    pub model_lists: u64,
    /// TCP connections accepted (so a test can see connection reuse).
    pub connections: u64,
}

/// One `POST` request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body; a body that is not JSON is kept as a string (and was
    /// answered 400).
    pub body: Value,
}

impl RecordedRequest {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What every handler and connection shares.
struct Shared {
    script: Mutex<Script>,
    /// Every counter change goes through `send_modify`, which wakes
    /// [`ScriptedBackend::wait_until`].
    stats: watch::Sender<Stats>,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    /// Tokens waiting under [`Pacing::Manual`] take one permit each.
    permits: Semaphore,
    next_id: AtomicU64,
}

impl Shared {
    fn script(&self) -> Script {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, change: impl FnOnce(&mut Stats)) {
        self.stats.send_modify(change);
    }

    fn record(&self, request: RecordedRequest) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if recorded.len() == RECORDED_REQUESTS {
            recorded.pop_front();
        }
        recorded.push_back(request);
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// One `POST` request's life in the counters: counted received and active
/// when made, and exactly once completed, aborted, or (when dropped
/// unfinished: the client went away) cancelled.
struct Exchange {
    shared: Arc<Shared>,
    open: bool,
}

impl Exchange {
    fn begin(shared: &Arc<Shared>) -> Self {
        shared.count(|s| {
            s.requests += 1;
            s.active += 1;
        });
        Self {
            shared: shared.clone(),
            open: true,
        }
    }

    fn complete(&mut self) {
        self.end(|s| s.completed += 1);
    }

    fn abort(&mut self) {
        self.end(|s| s.aborted += 1);
    }

    fn end(&mut self, outcome: impl FnOnce(&mut Stats)) {
        if std::mem::take(&mut self.open) {
            self.shared.count(|s| {
                s.active -= 1;
                outcome(s);
            });
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.end(|s| s.cancelled += 1);
    }
}

/// A scripted OpenAI-compatible backend; see the module docs. Stopped (its
/// tasks told to end) when dropped.
pub struct ScriptedBackend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<Server>>,
}

impl ScriptedBackend {
    /// Starts the backend on `127.0.0.1`, a free port, on the current Tokio
    /// runtime.
    pub async fn start(script: Script) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            stats: watch::Sender::new(Stats::default()),
            recorded: Mutex::new(VecDeque::new()),
            permits: Semaphore::new(0),
            next_id: AtomicU64::new(0),
        });
        let server = Server::spawn(listener, shared.clone());
        Ok(Self {
            shared,
            addr,
            server: Mutex::new(Some(server)),
        })
    }

    /// `http://127.0.0.1:PORT/v1`: what a user configures as an OpenAI
    /// base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the script for requests arriving from now on.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    pub fn script(&self) -> Script {
        self.shared.script()
    }

    /// Lets `n` more tokens go under [`Pacing::Manual`] (shared by all
    /// requests; unused permits stay for later tokens).
    pub fn release(&self, n: usize) {
        self.shared.permits.add_permits(n);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.borrow().clone()
    }

    /// Waits until `pred` holds for the counters and returns the snapshot
    /// that satisfied it; woken by every counter change, never polling.
    /// Bound it with `tokio::time::timeout`.
    pub async fn wait_until(&self, pred: impl Fn(&Stats) -> bool) -> Stats {
        let mut rx = self.shared.stats.subscribe();
        let satisfied = rx.wait_for(|stats| pred(stats)).await.map(|s| s.clone());
        // The sender lives in `self.shared`, so the channel cannot close
        // while `self` is borrowed.
        satisfied.unwrap_or_else(|_| self.stats())
    }

    /// The JSON bodies of the last [`RECORDED_REQUESTS`] `POST` requests,
    /// oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.recorded().into_iter().map(|r| r.body).collect()
    }

    /// The last [`RECORDED_REQUESTS`] `POST` requests with path and headers,
    /// oldest first.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Whether the backend is listening (not stopped).
    pub fn is_running(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Closes the listener and cuts every connection at once (requests in
    /// flight count as cancelled), and returns when all of its tasks have
    /// ended: from then on, connecting to [`addr`](Self::addr) is refused.
    /// Counters, script and recorded requests are kept.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            server.cancel.cancel();
            server.tracker.close();
            server.tracker.wait().await;
        }
    }

    /// Listens again on the same address after [`stop`](Self::stop) (a
    /// no-op when running). This can race: between stop and restart the
    /// kernel may hand the port to another socket (it was chosen from the
    /// ephemeral range), and then this fails with `AddrInUse`.
    pub async fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        let server = Server::spawn(listener, self.shared.clone());
        let mut slot = self.server.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            // Another restart won the race: keep its server.
            Some(_) => server.cancel.cancel(),
            None => *slot = Some(server),
        }
        Ok(())
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        if let Some(server) = self
            .server
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            server.cancel.cancel();
            server.tracker.close();
        }
    }
}
