//! A proxy's listener and its connections.
//!
//! Each accepted client is dialled through to the proxy's current
//! upstream and served by one task that runs both directions' pumps
//! (as `copy_bidirectional` does). A half close passes through; a toxic's
//! close or reset, an I/O error, or the proxy's connection token (cancelled
//! when the proxy is disabled, deleted or repointed) ends both.

use super::pump::{Chain, End, Pump};
use super::toxic::Stream;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long dialling the upstream may take before the client is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a proxy's listener and connections share with the registry.
pub(crate) struct Shared {
    pub name: String,
    /// Where new connections go; replaced by an update.
    pub upstream: Mutex<String>,
    /// Cancelled to close every open connection (disable, delete,
    /// new upstream); replaced by a fresh child of the registry's token.
    pub connections: Mutex<CancellationToken>,
    pub toxics: watch::Receiver<Chain>,
    /// Seeds each connection's RNG with this and its accept number.
    pub seed: u64,
    pub accepted: AtomicU64,
    pub bytes_upstream: Arc<AtomicU64>,
    pub bytes_downstream: Arc<AtomicU64>,
}

impl Shared {
    pub fn upstream(&self) -> String {
        self.upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_upstream(&self, upstream: String) {
        *self.upstream.lock().unwrap_or_else(PoisonError::into_inner) = upstream;
    }

    /// Closes every open connection; later ones get `fresh`.
    pub fn close_connections(&self, fresh: CancellationToken) {
        let old = std::mem::replace(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            fresh,
        );
        old.cancel();
    }

    fn connection_token(&self) -> CancellationToken {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .child_token()
    }
}

/// Accepts until `stop` is cancelled.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let client = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(e) => {
                    // Out of descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(proxy = %shared.name, error = %e, "accept failed");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let n = shared.accepted.fetch_add(1, Ordering::Relaxed);
        let cancel = shared.connection_token();
        tracker.spawn(serve(client, shared.clone(), n, cancel));
    }
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>, n: u64, cancel: CancellationToken) {
    let upstream_addr = shared.upstream();
    let dial = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream_addr.as_str()));
    let mut upstream = tokio::select! {
        () = cancel.cancelled() => return,
        dialled = dial => match dialled {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(e)) => {
                tracing::info!(proxy = %shared.name, upstream = %upstream_addr, error = %e, "upstream refused; closing the client");
                return;
            }
            Err(_) => {
                tracing::info!(proxy = %shared.name, upstream = %upstream_addr, "upstream did not answer; closing the client");
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let seed = shared.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut up = Pump::new(
        Stream::Upstream,
        StdRng::seed_from_u64(seed),
        shared.toxics.clone(),
        shared.bytes_upstream.clone(),
    );
    let mut down = Pump::new(
        Stream::Downstream,
        StdRng::seed_from_u64(seed ^ 1),
        shared.toxics.clone(),
        shared.bytes_downstream.clone(),
    );
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let to_upstream = up.run(&mut client_read, &mut upstream_write);
        let to_client = down.run(&mut upstream_read, &mut client_write);
        tokio::pin!(to_upstream, to_client);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break End::Stopped,
                end = &mut to_upstream, if !up_done => match end {
                    End::Eof if down_done => break End::Eof,
                    End::Eof => up_done = true,
                    other => break other,
                },
                end = &mut to_client, if !down_done => match end {
                    End::Eof if up_done => break End::Eof,
                    End::Eof => down_done = true,
                    other => break other,
                },
            }
        }
    };
    if let End::Reset = end {
        // SO_LINGER 0: the close sends RST and drops unsent data, which is
        // what "connection reset by peer" looks like to both ends.
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}
