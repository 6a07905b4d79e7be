//! Serving connections by hand (not `axum::serve`), one task each, so that
//! a stop or a scripted disconnect cuts a connection at once, as a crashed
//! server would, and Nagle is off on every socket.

use super::{handlers, Shared};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cuts the connection a request arrived on, from inside its handler.
#[derive(Clone)]
pub(super) struct ConnectionKill(pub(super) CancellationToken);

/// The listener and connections of one run (between start and stop).
pub(super) struct Server {
    pub(super) cancel: CancellationToken,
    pub(super) tracker: TaskTracker,
}

impl Server {
    pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            shared,
            cancel.clone(),
            tracker.clone(),
        ));
        Self { cancel, tracker }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let app = handlers::router(shared.clone());
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: try again shortly
                // rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Nagle off: a chunk leaves when it is written, so chunk timing
        // seen by the client is the script's.
        let _ = stream.set_nodelay(true);
        shared.count(|s| s.connections += 1);
        tracker.spawn(serve_connection(stream, app.clone(), cancel.child_token()));
    }
}

/// Serves one connection until it ends, the backend stops, or a handler
/// cuts it ([`ConnectionKill`]). Dropping the connection future closes the
/// socket and drops the in-flight handler or body, which counts the
/// request cancelled.
async fn serve_connection(stream: TcpStream, app: axum::Router, kill: CancellationToken) {
    let for_requests = ConnectionKill(kill.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(for_requests.clone());
        tower::ServiceExt::oneshot(app.clone(), request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        // The connection first: after a handler asks for the cut, the
        // connection gets one more turn to flush what was already written.
        biased;
        _ = connection.as_mut() => {}
        _ = kill.cancelled() => {}
    }
}
