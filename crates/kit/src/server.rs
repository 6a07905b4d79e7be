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
//! connection gets a header read timeout ([`head_timeout`], one timer per
//! connection rather than hyper's one per request), so a client that
//! trickles its headers (slowloris) or idles on a keep-alive connection
//! cannot hold it open for ever.
//!
//! At shutdown each connection finishes the request it serves and closes
//! ([`graceful`], which costs a request no work where hyper-util's
//! watcher cost two channel polls).
//!
//! With [`ConnectionThreads`] each accepted connection is served on one of
//! N threads of its own, each a single-threaded runtime, instead of on the
//! caller's runtime: a proxied request then never changes thread
//! ([`workers`], ADR 4).
//!
//! With [`TlsListener`] the same loop serves HTTPS (rustls): the handshake
//! runs in the connection's task under the same timeout, the peer's
//! verified identity goes into every request's extensions
//! ([`crate::tls::PeerIdentity`]), and the allow-list refuses a request on
//! a listed prefix from any other identity with 403 before it reaches the
//! router. Refused handshakes and requests are logged with the peer's
//! address and the reason (never key material).

mod graceful;
mod head_timeout;
mod workers;

pub use workers::ConnectionThreads;

use crate::cpu_cost::connection::ConnectionMeter;
use crate::http::Front;
use crate::problem::Problem;
use crate::tls::{AllowList, PeerIdentity};
use axum::response::IntoResponse;
use graceful::{Connections, Watcher};
use head_timeout::{Closed, HeadTimeout};
use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Longest a client may take to send a request's headers, and longest an
/// idle keep-alive connection is kept (nginx: `client_header_timeout` 60s,
/// `keepalive_timeout` 75s; shorter here because only proxies and load
/// balancers talk to us). Checked by one timer per connection
/// ([`head_timeout`]): a waiting connection is dropped between this and a
/// sixth more after its wait began.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, not yet serving, HTTP listener.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsListener>,
    /// `http.cost_sample_every`: each connection measures its own CPU for
    /// one request in this many ([`crate::cpu_cost::connection`]).
    cost_sample_every: u32,
    /// `http.connection_threads`: none serves connections on the
    /// caller's runtime.
    connection_threads: Option<ConnectionThreads>,
}

/// What makes a listener serve HTTPS.
#[derive(Clone)]
pub struct TlsListener {
    /// Certificate (reloaded in place), client-certificate policy, ALPN,
    /// resumption: see [`crate::tls::server_config`].
    pub config: Arc<crate::tls::rustls::ServerConfig>,
    /// Path prefixes reserved to some peer identities.
    pub allow: Arc<AllowList>,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            tls: None,
            cost_sample_every: crate::cpu_cost::DEFAULT_SAMPLE_EVERY,
            connection_threads: None,
        })
    }

    /// Measures one request's CPU in `every` (the router's
    /// `http.cost_sample_every`; 0 measures none). The connection decides
    /// which requests, and its own CPU is charged to their routes.
    pub fn with_cost_sampling(mut self, every: u32) -> Self {
        self.cost_sample_every = every;
        self
    }

    /// Serves HTTPS instead of HTTP.
    pub fn with_tls(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Serves each connection on one of `threads`, in turn, instead of
    /// on the runtime that calls [`HttpServer::serve`] (the default). The
    /// threads outlive the server: they end when their owner drops its
    /// last handle ([`ConnectionThreads`]).
    pub fn with_connection_threads(mut self, threads: ConnectionThreads) -> Self {
        self.connection_threads = Some(threads);
        self
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// every connection finish the request it is serving (idle keep-alive
    /// connections close at once) and returns when all have closed.
    ///
    /// A plain `Router` serves every request through axum; a
    /// [`crate::http::front`] hands the requests its own routes do not
    /// match straight to its catch-all.
    pub async fn serve(
        self,
        front: impl Into<Front>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let serving = Serving {
            front: front.into(),
            // No hyper timer: the header read timeout is the connection's
            // guard's (`head_timeout`), not a sleep per request.
            http: hyper::server::conn::http1::Builder::new(),
            tls: self.tls,
            cost_sample_every: self.cost_sample_every,
            shutdown: shutdown.clone(),
        };
        let connections = Connections::new();
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
            let watcher = connections.watcher();
            let Some(threads) = &self.connection_threads else {
                tokio::spawn(serving.connection(tcp, peer, watcher));
                continue;
            };
            // The socket leaves this runtime's reactor for the thread's.
            match tcp.into_std() {
                Ok(tcp) => {
                    let serving = serving.clone();
                    threads.spawn(async move {
                        match tokio::net::TcpStream::from_std(tcp) {
                            Ok(tcp) => serving.connection(tcp, peer, watcher).await,
                            Err(e) => {
                                tracing::warn!(error = %e, %peer, "a connection thread could not take a connection");
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, %peer, "could not hand a connection to its thread");
                }
            }
        }
        drop(self.listener);
        connections.shutdown().await;
        Ok(())
    }
}

/// What serving a connection needs, on whichever thread serves it.
#[derive(Clone)]
struct Serving {
    front: Front,
    http: hyper::server::conn::http1::Builder,
    tls: Option<TlsListener>,
    cost_sample_every: u32,
    shutdown: CancellationToken,
}

impl Serving {
    /// The whole life of one accepted connection, to run as a task.
    fn connection(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let meter = ConnectionMeter::new();
        if let Some(tls) = &self.tls {
            let connection = TlsConnection {
                tls: tls.clone(),
                front: self.front.clone(),
                http: self.http.clone(),
                watcher,
                shutdown: self.shutdown.clone(),
                meter: meter.clone(),
            };
            // The handshake is charged with the first request.
            return Box::pin(meter.connection(self.cost_sample_every, connection.serve(tcp, peer)));
        }
        let front = self.front.clone();
        let request_meter = meter.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request = request.map(axum::body::Body::new);
            request_meter.request(front.call(request, Some(peer)))
        });
        let connection = watcher.watch(self.http.serve_connection(TokioIo::new(tcp), service));
        let connection = meter.connection(self.cost_sample_every, connection);
        let connection = HeadTimeout::new(connection, meter.activity(), HEADER_READ_TIMEOUT);
        Box::pin(async move { log_end(connection.await, peer) })
    }
}

/// One HTTPS connection: the handshake (bounded by the header read
/// timeout, so a client that stalls it is dropped), then HTTP/1.1 with the
/// peer's identity and the allow-list applied to each request.
struct TlsConnection {
    tls: TlsListener,
    front: Front,
    http: hyper::server::conn::http1::Builder,
    watcher: Watcher,
    /// A handshake still running at shutdown is dropped, not waited for.
    shutdown: CancellationToken,
    meter: ConnectionMeter,
}

impl TlsConnection {
    async fn serve(self, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.config);
        let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp));
        let outcome = tokio::select! {
            () = self.shutdown.cancelled() => return,
            outcome = handshake => outcome,
        };
        let stream = match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(PeerIdentity::of_certificate);
        let activity = self.meter.activity();
        let (allow, front, meter) = (self.tls.allow, self.front, self.meter);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            if let Some(identity) = &identity {
                request.extensions_mut().insert(identity.clone());
            }
            let refused = allow
                .check(request.uri().path(), identity.as_ref())
                .err()
                .map(|refusal| {
                    tracing::warn!(
                        %peer,
                        identity = identity.as_ref().map_or("none", PeerIdentity::as_str),
                        prefix = %refusal.prefix,
                        "request refused: peer identity not allowed on this prefix"
                    );
                    forbidden(&refusal.prefix)
                });
            let answer = match refused {
                Some(response) => futures::future::Either::Left(std::future::ready(Ok(response))),
                None => futures::future::Either::Right(front.call(request, Some(peer))),
            };
            meter.request(answer)
        });
        let connection = self
            .watcher
            .watch(self.http.serve_connection(TokioIo::new(stream), service));
        log_end(
            HeadTimeout::new(connection, activity, HEADER_READ_TIMEOUT).await,
            peer,
        );
    }
}

/// Resets, timeouts and malformed requests are the client's business, not
/// an operator's: debug level.
fn log_end(closed: Closed<Result<(), hyper::Error>>, peer: SocketAddr) {
    match closed {
        Closed::Ended(Ok(())) => {}
        Closed::Ended(Err(e)) => {
            tracing::debug!(error = &e as &dyn std::error::Error, %peer, "connection ended with an error");
        }
        Closed::TimedOut { waited } => {
            tracing::debug!(%peer, ?waited, "connection closed: no request head within the header read timeout");
        }
    }
}

fn forbidden(prefix: &str) -> axum::response::Response {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden-identity",
        "Your identity may not call this path",
    )
    .with_detail(format!(
        "{prefix} is reserved to the identities listed for it in tls.allow"
    ))
    .into_response()
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
