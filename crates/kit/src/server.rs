//! Binding and serving.
//!
//! Binding is separate from serving so that tests bind port 0 and learn the
//! address before the server runs (zero2prod's `spawn_app` habit), and so
//! that a bind error surfaces at start-up, not inside a spawned task.
//!
//! Serving speaks HTTP/1.1 only, through hyper's `http1` connection
//! builder: every Reliable service sits behind an ingress or the gateway,
//! which speak HTTP/1.1 to it, and skipping the HTTP/2 preface sniffing of
//! a protocol-detecting server measurably shortened the redirect path. Each
//! connection gets a header read timeout, so a client that trickles its
//! headers (slowloris) or idles on a keep-alive connection cannot hold it
//! open for ever.

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Longest a client may take to send a request's headers, and longest an
/// idle keep-alive connection is kept (nginx: `client_header_timeout` 60s,
/// `keepalive_timeout` 75s; shorter here because only proxies and load
/// balancers talk to us).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// every connection finish the request it is serving (idle keep-alive
    /// connections close at once) and returns when all have closed.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let connections = GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        wait_after_accept_error(e, &shutdown).await;
                        continue;
                    }
                },
            };
            // Small responses (redirects) must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let router = router.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                // `Router` is always ready; `call` on a clone is what
                // `oneshot` would do, without its extra state machine.
                router.clone().call(request)
            });
            let connection = connections.watch(http.serve_connection(TokioIo::new(tcp), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    // Resets, timeouts and malformed requests: the client's
                    // business, not an operator's.
                    tracing::debug!(error = &e as &dyn std::error::Error, %peer, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        connections.shutdown().await;
        Ok(())
    }
}

/// Accept errors on a healthy listener are per-connection (the peer reset
/// before we accepted) and need no pause; anything else (out of file
/// descriptors, typically) would spin, so wait a second or until shutdown.
async fn wait_after_accept_error(error: std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(
        error = &error as &dyn std::error::Error,
        "accepting a connection failed; retrying in 1s"
    );
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
