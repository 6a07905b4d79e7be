//! Process shutdown.
//!
//! One [`CancellationToken`](tokio_util::sync::CancellationToken) is created
//! by the binary and handed to every server and background task; a signal
//! cancels it. Background work is spawned on a
//! [`TaskTracker`](tokio_util::task::TaskTracker) so the binary can wait for
//! it to flush before exiting.

use std::future::Future;

/// Installs the SIGTERM and SIGINT handlers now and returns a future that
/// resolves when either arrives. Call it before announcing readiness: a
/// handler installed lazily (on first poll) leaves a window in which a
/// SIGTERM kills the process outright, losing buffered work. Must be
/// called inside a Tokio runtime.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            let (mut terminate, mut interrupt) = match (terminate, interrupt) {
                (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(
                        error = &e as &dyn std::error::Error,
                        "cannot install signal handlers; stop the process with SIGKILL"
                    );
                    return std::future::pending().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "Ctrl-C", "shutdown requested");
    }
}
