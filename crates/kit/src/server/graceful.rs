//! Graceful shutdown of a listener's connections, with no work per poll.
//!
//! At shutdown every connection finishes the request it is serving and
//! closes (an idle keep-alive connection closes at once), and the server
//! waits until all have. hyper-util's `GracefulShutdown` does this by
//! polling a `watch` receiver's `changed()` future each time it polls the
//! connection, and that poll locks the channel's waiter list to refresh
//! the connection's waker: about 180 instructions a poll, two polls a
//! keep-alive request, nearly 2% of a redirect (issue 18).
//!
//! [`Connections`] registers each connection's waker once instead: its
//! `Notified` is created with the connection, so shutdown's
//! `notify_waiters` resolves it even before its first poll, and it is
//! polled again only when the task polling the connection hands it a waker
//! that would not wake the same task (never, for a connection spawned as
//! its own task). Between those polls one atomic load says whether
//! shutdown began.

use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio_util::task::{task_tracker::TaskTrackerToken, TaskTracker};

/// The connections of one listener: hand each a [`Connections::watcher`],
/// then [`Connections::shutdown`] once the listener is closed.
pub(super) struct Connections {
    signal: Arc<Signal>,
    open: TaskTracker,
}

struct Signal {
    stopping: AtomicBool,
    notify: Arc<Notify>,
}

impl Connections {
    pub(super) fn new() -> Self {
        Self {
            signal: Arc::new(Signal {
                stopping: AtomicBool::new(false),
                notify: Arc::new(Notify::new()),
            }),
            open: TaskTracker::new(),
        }
    }

    /// What one connection holds until it ends.
    pub(super) fn watcher(&self) -> Watcher {
        Watcher {
            signal: self.signal.clone(),
            open: self.open.token(),
        }
    }

    /// Tells every connection to finish its request and close, then waits
    /// until each has ended (or its watcher was dropped unused).
    pub(super) async fn shutdown(self) {
        // The flag first: a connection woken by the notification reads it.
        self.signal.stopping.store(true, Ordering::Release);
        self.signal.notify.notify_waiters();
        self.open.close();
        self.open.wait().await;
    }
}

/// One connection's part in shutdown; dropping it unused counts as the
/// connection's end.
pub(super) struct Watcher {
    signal: Arc<Signal>,
    open: TaskTrackerToken,
}

/// A connection that can be told to finish the request it serves and
/// close: hyper's ([`GracefulConnection`]).
pub(super) trait Drain: Future {
    fn drain(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Drain for C {
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl Watcher {
    /// `connection`, which drains when the server shuts down.
    pub(super) fn watch<C: Drain>(self, connection: C) -> Watched<C> {
        Watched {
            notified: self.signal.notify.clone().notified_owned(),
            connection,
            signal: self.signal,
            registered: None,
            draining: false,
            _open: self.open,
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection that drains when its server shuts down.
    pub(super) struct Watched<C> {
        #[pin]
        connection: C,
        #[pin]
        notified: OwnedNotified,
        signal: Arc<Signal>,
        // The waker `notified` holds, once polled.
        registered: Option<Waker>,
        draining: bool,
        _open: TaskTrackerToken,
    }
}

impl<C: Drain> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.draining {
            let holds_waker = this
                .registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
            let notified = !holds_waker && {
                *this.registered = Some(cx.waker().clone());
                this.notified.as_mut().poll(cx).is_ready()
            };
            if notified || this.signal.stopping.load(Ordering::Acquire) {
                *this.draining = true;
                this.connection.as_mut().drain();
            }
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A connection that ends once told to drain.
    #[derive(Default)]
    struct Fake {
        told: bool,
    }

    impl Future for Fake {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.told {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Drain for Fake {
        fn drain(mut self: Pin<&mut Self>) {
            self.told = true;
        }
    }

    /// A task's waker that counts its wakes.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(watched: Pin<&mut Watched<Fake>>, task: &Arc<Task>) -> Poll<()> {
        let waker = Waker::from(task.clone());
        watched.poll(&mut Context::from_waker(&waker))
    }

    /// Shutdown on a task of its own, run until it waits for the
    /// connections.
    async fn begin_shutdown(connections: Connections) -> tokio::task::JoinHandle<()> {
        let shutdown = tokio::spawn(connections.shutdown());
        tokio::task::yield_now().await;
        shutdown
    }

    /// The connection ends; shutdown then returns.
    async fn end(watched: Pin<Box<Watched<Fake>>>, shutdown: tokio::task::JoinHandle<()>) {
        drop(watched);
        shutdown
            .await
            .expect("shutdown returns once the connection ended");
    }

    #[tokio::test]
    async fn a_connection_polled_by_one_task_is_woken_and_drains_at_shutdown() {
        let connections = Connections::new();
        let mut watched = Box::pin(connections.watcher().watch(Fake::default()));
        let task = Arc::new(Task::default());
        assert!(poll(watched.as_mut(), &task).is_pending());
        assert!(poll(watched.as_mut(), &task).is_pending());
        // Shutdown wakes the connection's task, which then drains it, and
        // waits for it to end.
        let shutdown = begin_shutdown(connections).await;
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(!shutdown.is_finished());
        assert!(poll(watched.as_mut(), &task).is_ready());
        end(watched, shutdown).await;
    }

    #[tokio::test]
    async fn a_connection_moved_to_another_task_is_woken_there() {
        let connections = Connections::new();
        let mut watched = Box::pin(connections.watcher().watch(Fake::default()));
        let (first, second) = (Arc::new(Task::default()), Arc::new(Task::default()));
        assert!(poll(watched.as_mut(), &first).is_pending());
        assert!(poll(watched.as_mut(), &second).is_pending());
        let shutdown = begin_shutdown(connections).await;
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(poll(watched.as_mut(), &second).is_ready());
        end(watched, shutdown).await;
    }

    #[tokio::test]
    async fn a_connection_first_polled_after_shutdown_began_drains_at_once() {
        let connections = Connections::new();
        let mut watched = Box::pin(connections.watcher().watch(Fake::default()));
        let shutdown = begin_shutdown(connections).await;
        assert!(!shutdown.is_finished());
        assert!(poll(watched.as_mut(), &Arc::new(Task::default())).is_ready());
        end(watched, shutdown).await;
    }

    #[tokio::test]
    async fn an_unused_watcher_does_not_hold_shutdown() {
        let connections = Connections::new();
        drop(connections.watcher());
        connections.shutdown().await;
    }
}
