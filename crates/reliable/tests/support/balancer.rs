//! One TCP endpoint in front of several replicas, handing each new
//! connection to the next replica in turn, as a Kubernetes Service (or any
//! L4 load balancer) spreads a client's connections. The accept loop and
//! every connection it forwards belong to one task, aborted on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

pub struct Balancer {
    /// `127.0.0.1:PORT`, to use instead of the replicas.
    pub addr: String,
    serving: AbortHandle,
}

impl Balancer {
    /// Starts a balancer over `backends` (`host:port` each).
    pub async fn start(backends: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the balancer");
        let addr = listener.local_addr().expect("addr").to_string();
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let serving = tokio::spawn(async move {
            // Dropped (and every connection aborted) with this task.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let backend =
                    backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()].clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                // Reap finished connections as we go.
                while connections.try_join_next().is_some() {}
            }
        })
        .abort_handle();
        Self { addr, serving }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}
