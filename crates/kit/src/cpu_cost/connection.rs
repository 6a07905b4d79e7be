//! The connection's own CPU, charged to the request it serves.
//!
//! The observe layer measures the handler's polls. The rest of a request's
//! CPU is spent by its connection's task around them: hyper reading and
//! parsing the head, moving the body into the handler's channel, encoding
//! and writing the response, the observe layer's own bookkeeping. That
//! part is not the same for every route (a 40 KB JSON body costs far more
//! to read than a GET line), so splitting it by request count under-charges
//! the body-heavy routes (docs/operations/cost.md, "Attribution, checked").
//!
//! HTTP/1.1 serves one request at a time per connection, so the
//! connection's CPU from the end of one response to the end of the next
//! belongs to the next one. [`MeteredConnection`] times the connection
//! task's polls on the thread's CPU clock, less the request polls measured
//! inside them, and when a response ends charges what it gathered to the
//! route that request was charged to.
//!
//! The sampling decision is the connection's, made when the previous
//! response ended (or the connection opened), before the next request's
//! bytes are read. The observe layer follows it: a request polled inside a
//! measured connection poll is measured at its scale ([`super::sample`]),
//! one polled inside an unmeasured poll is not. The handler's share and
//! the connection's share so come from the same requests, and the clock
//! is read only for them: around the connection's polls, not again around
//! the handler's inside them (the two go to the same route), but around
//! an in-process module's request inside it, which goes to its own.
//!
//! The same two signals (a head arrived, a response ended) tell the
//! server's head timeout whether the connection is waiting for a client
//! ([`ConnectionMeter::activity`]), so a keep-alive request costs no timer
//! of its own.

use super::{measure_poll, tick, CONNECTION_MEASURING, IN_CONNECTION, LAST_CHARGED};
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// What a connection's task and the requests it serves share: created once
/// per connection, cloned into its service.
#[derive(Clone, Default)]
pub struct ConnectionMeter {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The scale of the request being served (0: not measured), written by
    /// the connection, read by the request's wrapper.
    scale: AtomicU32,
    /// A response ended (its body was written or dropped).
    ended: AtomicBool,
    /// The counter the measured request was charged to.
    charge_to: Mutex<Option<Arc<AtomicU64>>>,
    /// Request heads handed to the service.
    heads: AtomicU64,
    /// Responses ended (body written to the end or dropped).
    responses_ended: AtomicU64,
}

/// What a connection has done so far, read by the server's head timeout
/// ([`crate::server`]): cheap counters the requests bump, no clock.
#[derive(Clone)]
pub(crate) struct Activity {
    shared: Arc<Shared>,
}

impl Activity {
    /// Request heads received so far.
    pub(crate) fn heads(&self) -> u64 {
        self.shared.heads.load(Ordering::Relaxed)
    }

    /// Whether a request is being served: its head arrived and its
    /// response has not ended.
    pub(crate) fn serving(&self) -> bool {
        self.shared.responses_ended.load(Ordering::Relaxed) < self.heads()
    }
}

impl ConnectionMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps the connection's future; `every` as `http.cost_sample_every`.
    pub fn connection<F: Future>(&self, every: u32, connection: F) -> MeteredConnection<F> {
        let scale = tick(every).unwrap_or(0);
        self.shared.scale.store(scale, Ordering::Relaxed);
        MeteredConnection {
            inner: connection,
            shared: self.shared.clone(),
            every,
            scale,
            pending_nanos: 0,
        }
    }

    /// Wraps one request's response future (the service's), so the
    /// connection learns where the request was charged and when its
    /// response has been written.
    pub fn request<F>(&self, response: F) -> MeteredResponse<F> {
        self.shared.heads.fetch_add(1, Ordering::Relaxed);
        MeteredResponse {
            inner: response,
            shared: Some(self.shared.clone()),
        }
    }

    /// The connection's activity, for its head timeout.
    pub(crate) fn activity(&self) -> Activity {
        Activity {
            shared: self.shared.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's future whose polls, for the sampled requests, are
    /// charged to the route of the request they served.
    pub struct MeteredConnection<F> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
        every: u32,
        scale: u32,
        pending_nanos: u64,
    }
}

impl<F: Future> Future for MeteredConnection<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = if *this.scale == 0 {
            // Requests started here are not measured: the connection
            // decided so for the request it is serving.
            let outer = IN_CONNECTION.with(|c| c.replace(true));
            let polled = inner.poll(cx);
            IN_CONNECTION.with(|c| c.set(outer));
            polled
        } else {
            LAST_CHARGED.with(|c| c.take());
            let outer = CONNECTION_MEASURING.with(|c| c.replace(true));
            let (polled, own) = measure_poll(*this.scale, || inner.poll(cx));
            CONNECTION_MEASURING.with(|c| c.set(outer));
            *this.pending_nanos = this.pending_nanos.saturating_add(own);
            polled
        };
        if this.shared.ended.swap(false, Ordering::Relaxed) {
            if *this.scale != 0 {
                let target = this
                    .shared
                    .charge_to
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(counter) = target {
                    let scaled = this.pending_nanos.saturating_mul(u64::from(*this.scale));
                    counter.fetch_add(scaled, Ordering::Relaxed);
                }
                *this.pending_nanos = 0;
            }
            *this.scale = tick(*this.every).unwrap_or(0);
            this.shared.scale.store(*this.scale, Ordering::Relaxed);
        }
        // A connection that ends mid-request (the client went away) leaves
        // its last CPU to the process's shared line.
        polled
    }
}

pin_project_lite::pin_project! {
    /// One request's response future: on its response, notes the counter
    /// the request was charged to and wraps the body, whose end tells the
    /// connection the request is over.
    pub struct MeteredResponse<F> {
        #[pin]
        inner: F,
        shared: Option<Arc<Shared>>,
    }
}

impl<F, B, E> Future for MeteredResponse<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<MeteredBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.inner.poll(cx) {
            Poll::Ready(response) => response,
            Poll::Pending => return Poll::Pending,
        };
        let shared = this.shared.take();
        if let Some(shared) = &shared {
            if response.is_err() {
                // No body will end this one: the request is over now.
                shared.responses_ended.fetch_add(1, Ordering::Relaxed);
            }
            if shared.scale.load(Ordering::Relaxed) != 0 {
                // The outermost observed request finishes last, so the
                // last charge of this poll is the one the client asked for
                // (an in-process module's request finished before it).
                let charged = LAST_CHARGED.with(|c| c.take());
                *shared.charge_to.lock().unwrap_or_else(|e| e.into_inner()) = charged;
            }
        }
        Poll::Ready(response.map(|response| {
            response.map(|body| MeteredBody {
                inner: body,
                ended: shared,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that tells its connection when it is done with
    /// (written to the end, or dropped on a broken connection).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        ended: Option<Arc<Shared>>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(shared) = this.project().ended.take() {
                shared.ended.store(true, Ordering::Relaxed);
                shared.responses_ended.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
