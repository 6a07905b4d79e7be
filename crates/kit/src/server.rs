//! Binding and serving.
//!
//! Binding is separate from serving so that tests bind port 0 and learn the
//! address before the server runs (zero2prod's `spawn_app` habit), and so
//! that a bind error surfaces at start-up, not inside a spawned task.

use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound, not yet serving, HTTP listener.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and waits
    /// for in-flight requests to finish.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
        let listener = self.listener.tap_io(|tcp| {
            // Small responses (redirects) must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    }
}
