//! The header read timeout, with one timer per connection.
//!
//! A connection waits for its client when no response is being served:
//! from when it opens (or its TLS handshake ends) and from when each
//! response ends, until the next request's head has arrived. A client that
//! trickles its headers (slowloris) or idles on a keep-alive connection
//! would hold it for ever, so a connection that has waited
//! [`super::HEADER_READ_TIMEOUT`] is dropped.
//!
//! hyper's own `header_read_timeout` does this by arming a boxed sleep and
//! a timer-wheel entry for every request head and removing it when the
//! head arrives: about 1,150 instructions a keep-alive request, 4% of a
//! redirect (docs/performance.md). [`HeadTimeout`] keeps one timer per
//! connection instead, firing every [`TICKS_PER_TIMEOUT`]th of the
//! timeout. At each tick it reads two counters the requests bump anyway
//! ([`Activity`]: heads received, a response running) and no clock in
//! between, so a request costs no timer at all.
//!
//! The price is precision: a wait is noticed at the first tick after it
//! began, so the connection is dropped between the timeout and the
//! timeout plus one tick after the wait began, never before. A response
//! that streams for longer than the timeout is never cut: it is being
//! served. One difference from hyper's: the wait starts when the response
//! body ends, not when its last bytes are flushed, so a client that stops
//! reading the tail of a response for the whole timeout is dropped too
//! (hyper would keep it for ever).

use crate::cpu_cost::connection::Activity;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The tick is the timeout over this: with 30 s, a waiting connection is
/// dropped 30 to 35 s after its wait began.
pub(crate) const TICKS_PER_TIMEOUT: u32 = 6;

/// How a guarded connection ended.
#[derive(Debug)]
pub(crate) enum Closed<T> {
    /// The connection's own future finished (the client closed, an error,
    /// or shutdown).
    Ended(T),
    /// Dropped after waiting this long for a request head.
    TimedOut { waited: Duration },
}

pin_project_lite::pin_project! {
    /// A connection future that is dropped once it has waited `limit` for
    /// a request head.
    pub(crate) struct HeadTimeout<F> {
        #[pin]
        connection: F,
        #[pin]
        tick: Sleep,
        activity: Activity,
        limit: Duration,
        every: Duration,
        // Whether `tick` holds this task's waker for its current deadline.
        armed: bool,
        // Heads received at the last tick.
        heads_seen: u64,
        // When the guard first saw the connection waiting (its open, for a
        // new one); `None` while a response is being served.
        waiting_since: Option<Instant>,
    }
}

impl<F: Future> HeadTimeout<F> {
    /// Guards `connection` from now; `activity` is its meter's.
    pub(crate) fn new(connection: F, activity: Activity, limit: Duration) -> Self {
        let every = limit / TICKS_PER_TIMEOUT;
        let now = Instant::now();
        Self {
            connection,
            tick: tokio::time::sleep_until(now + every),
            activity,
            limit,
            every,
            armed: false,
            heads_seen: 0,
            waiting_since: Some(now),
        }
    }
}

impl<F: Future> Future for HeadTimeout<F> {
    type Output = Closed<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(ended) = this.connection.poll(cx) {
            return Poll::Ready(Closed::Ended(ended));
        }
        // The hot path: the tick is registered and has not fired. Checking
        // costs a load, where polling the sleep would touch the task's
        // budget and its waker.
        if *this.armed && !this.tick.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if *this.armed {
                let now = Instant::now();
                let heads = this.activity.heads();
                if this.activity.serving() {
                    *this.waiting_since = None;
                } else if heads != *this.heads_seen || this.waiting_since.is_none() {
                    // The wait began somewhere since the last tick: count
                    // it from now, so it is never cut short.
                    *this.waiting_since = Some(now);
                } else if let Some(since) = *this.waiting_since {
                    let waited = now.saturating_duration_since(since);
                    if waited >= *this.limit {
                        return Poll::Ready(Closed::TimedOut { waited });
                    }
                }
                *this.heads_seen = heads;
                this.tick.as_mut().reset(now + *this.every);
            }
            // Registering the waker must not be refused by the task's
            // cooperative budget: a refused poll registers nothing, and
            // the hot path above would never see the tick fire.
            let registering = tokio::task::unconstrained(this.tick.as_mut());
            let fired = std::pin::pin!(registering).poll(cx).is_ready();
            *this.armed = true;
            if !fired {
                return Poll::Pending;
            }
        }
    }
}
