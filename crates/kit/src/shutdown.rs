//! Process shutdown.
//!
//! One [`CancellationToken`](tokio_util::sync::CancellationToken) is created
//! by the binary and handed to every server and background task; a signal
//! cancels it. Background work is spawned on a
//! [`TaskTracker`](tokio_util::task::TaskTracker) so the binary can wait for
//! it to flush before exiting.

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler we can never be interrupted this way; wait forever.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
