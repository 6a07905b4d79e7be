//! Connections served on threads of their own (`http.connection_threads`).
//!
//! Why: on Tokio's work-stealing runtime a proxied request hops threads.
//! The client connection's task and the upstream connection's task wake
//! each other through the runtime, often on the other thread, and each
//! hop is a futex wake and a cold cache. A bare hyper proxy spent about a
//! quarter less CPU a request with one single-threaded runtime per core
//! and its own upstream connections than on the shared runtime
//! (docs/performance.md, "Connection threads"); nginx's workers are built
//! the same way.
//!
//! How: the listener stays on the caller's runtime and accepts; each
//! accepted connection goes, in turn, to one of N threads, each running a
//! single-threaded Tokio runtime, where it lives until it closes. A task
//! a request spawns runs on that thread too (an upstream connection made
//! there, so the gateway's idle lists are kept per thread:
//! `resilience::connections`). The shared runtime keeps everything else:
//! background work, database pools, brokers.
//!
//! Shutdown: when the listener closes, each thread serves the connections
//! it was handed to their graceful end, then runs until its last task has
//! ended (a task a request spawned, such as a usage record written after
//! an answer), and exits.

use super::Serving;
use hyper_util::server::graceful::Watcher;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a thread whose listener has closed looks for tasks left.
const IDLE_CHECK: Duration = Duration::from_millis(10);

/// An accepted connection on its way to its thread.
struct Handed {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
}

/// The threads, as seen by the accepting loop.
pub(super) struct Workers {
    threads: Vec<mpsc::UnboundedSender<Handed>>,
    next: usize,
}

impl Workers {
    /// Starts `count` threads, each with its runtime (an error building
    /// one fails here, before the first connection).
    pub(super) fn start(count: usize, serving: &Serving) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (sender, receiver) = mpsc::unbounded_channel();
            let serving = serving.clone();
            std::thread::Builder::new()
                .name(format!("http-conn-{index}"))
                .spawn(move || run(runtime, receiver, serving))?;
            threads.push(sender);
        }
        Ok(Self { threads, next: 0 })
    }

    /// Hands `tcp` to the next thread in turn. Gives it back when it
    /// cannot (every thread has ended, or the socket could not leave this
    /// runtime), for the caller to serve itself.
    pub(super) fn hand_over(
        &mut self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> Option<tokio::net::TcpStream> {
        let mut tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "could not hand a connection to its thread");
                return None;
            }
        };
        let mut watcher = watcher;
        for _ in 0..self.threads.len() {
            let thread = &self.threads[self.next % self.threads.len()];
            self.next = self.next.wrapping_add(1);
            match thread.send(Handed { tcp, peer, watcher }) {
                Ok(()) => return None,
                Err(mpsc::error::SendError(back)) => {
                    tcp = back.tcp;
                    watcher = back.watcher;
                }
            }
        }
        tracing::error!("no connection thread is running; serving on the shared runtime");
        tokio::net::TcpStream::from_std(tcp).ok()
    }
}

/// One thread: serves what it is handed, then its tasks to their end.
fn run(
    runtime: tokio::runtime::Runtime,
    mut handed: mpsc::UnboundedReceiver<Handed>,
    serving: Serving,
) {
    runtime.block_on(async move {
        while let Some(Handed { tcp, peer, watcher }) = handed.recv().await {
            match tokio::net::TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    // Ends with its connection; the runtime counts it
                    // below.
                    drop(tokio::spawn(serving.connection(tcp, peer, watcher)));
                }
                Err(e) => tracing::warn!(error = %e, %peer, "could not serve a handed connection"),
            }
        }
        let tasks = tokio::runtime::Handle::current().metrics();
        while tasks.num_alive_tasks() > 0 {
            tokio::time::sleep(IDLE_CHECK).await;
        }
    });
}
