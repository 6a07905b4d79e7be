//! Connections served on threads of their own (`http.connection_threads`).
//!
//! Why: on Tokio's work-stealing runtime a proxied request hops threads.
//! The client connection's task and the upstream connection's task wake
//! each other through the runtime, often on the other thread, and each
//! hop is a futex wake and a cold cache. The gateway spent 21% less CPU a
//! request with one single-threaded runtime per core, each with its own
//! upstream connections, than on the shared runtime (docs/performance.md,
//! "Connection threads"; ADR 4). nginx's workers are built the same way.
//!
//! How: [`ConnectionThreads`] runs N threads, each driving a
//! single-threaded Tokio runtime. A listener stays on the caller's runtime
//! and accepts; each accepted connection is handed, in turn, to one of the
//! threads, where it lives until it closes. A task a request spawns runs on
//! that thread too (an upstream connection made there, so the HTTP
//! client's idle lists are kept per thread: `resilience::connections`).
//! The shared runtime keeps everything else: background work, database
//! pools, brokers.
//!
//! Lifetime: the threads run until the last handle to them is dropped,
//! not when a listener closes. A socket opened on a thread (a database
//! connection a pool opened for a request there, say) is driven by that
//! thread's runtime for as long as anyone uses it, and the platform uses
//! its pools while it stops, after its listener has closed. So the owner
//! drops its handle last; then each thread ends, dropping what is left on
//! it, and the drop waits for them.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Threads, each with a single-threaded runtime, that serve connections.
/// Cheap to clone; the threads end when the last clone is dropped.
#[derive(Clone)]
pub struct ConnectionThreads {
    inner: Arc<Inner>,
}

struct Inner {
    runtimes: Vec<tokio::runtime::Handle>,
    /// The thread the next connection goes to.
    next: AtomicUsize,
    release: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ConnectionThreads {
    /// Starts `count` threads (at least one), named `http-conn-N`. An
    /// error building a runtime or a thread fails here, before the first
    /// connection, and stops the threads already started.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let count = count.max(1);
        let release = CancellationToken::new();
        let mut runtimes = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        let mut started = || -> std::io::Result<()> {
            for index in 0..count {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtimes.push(runtime.handle().clone());
                let release = release.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("http-conn-{index}"))
                        .spawn(move || {
                            runtime.block_on(release.cancelled());
                            // Dropping the runtime drops the tasks left on
                            // it (the owner has stopped what it waits for).
                        })?,
                );
            }
            Ok(())
        };
        let outcome = started();
        let inner = Inner {
            runtimes,
            next: AtomicUsize::new(0),
            release,
            threads,
        };
        // On an error, dropping `inner` ends the threads started.
        outcome.map(|()| Self {
            inner: Arc::new(inner),
        })
    }

    /// How many threads there are.
    pub fn count(&self) -> usize {
        self.inner.runtimes.len()
    }

    /// Runs `future` on the next thread in turn.
    pub(super) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let next = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let runtime = &self.inner.runtimes[next % self.inner.runtimes.len()];
        // Detached: the connection's task ends with its connection, and
        // the thread outlives it.
        drop(runtime.spawn(future));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release.cancel();
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            // A thread cannot wait for itself (the last handle dropped by
            // a task of its own): it ends once this task returns.
            if thread.thread().id() != me && thread.join().is_err() {
                tracing::error!("a connection thread panicked");
            }
        }
    }
}
