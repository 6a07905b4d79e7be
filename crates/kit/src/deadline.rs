//! A deadline on a future that costs nothing while the future does not
//! wait.
//!
//! `tokio::time::timeout_at` makes its `Sleep` up front, and making one
//! looks up the runtime's handle (a thread-local and a reference count,
//! undone on drop) whether or not the timer is ever registered. On the
//! request path most bounded steps are done when first polled (an API key
//! found in the cache, an empty body, a redirect answered from the cache),
//! so [`by`] polls the future first and makes the sleep only once the
//! future has to wait (issue 18: two up-front sleeps cost the gateway
//! about 600 instructions a request).
//!
//! The deadline is on Tokio's clock ([`tokio::time::Instant`]), so tests
//! on a paused clock see it as they see any other timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// The bounded future ran past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deadline passed")]
pub struct Elapsed;

/// `inner`, or [`Elapsed`] if it is not done by `deadline`.
pub fn by<F: Future>(deadline: Instant, inner: F) -> Deadline<F> {
    Deadline {
        inner,
        sleep: None,
        deadline,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`by`].
    pub struct Deadline<F> {
        #[pin]
        inner: F,
        // Made the first time `inner` has to wait.
        #[pin]
        sleep: Option<Sleep>,
        deadline: Instant,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(done) = this.inner.poll(cx) {
            return Poll::Ready(Ok(done));
        }
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => sleep.poll(cx).map(|()| Err(Elapsed)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_is_answered_and_makes_no_sleep() {
        let bounded = by(Instant::now() + Duration::from_secs(1), async { 7 });
        let mut bounded = std::pin::pin!(bounded);
        let answer = std::future::poll_fn(|cx| bounded.as_mut().poll(cx)).await;
        assert_eq!(answer, Ok(7));
        assert!(
            bounded.sleep.is_none(),
            "a sleep was made for a ready future"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_waits_past_the_deadline_elapses_at_it() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        let answer = by(deadline, tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(answer, Err(Elapsed));
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_waits_less_than_the_deadline_is_answered() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = by(deadline, async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            "done"
        })
        .await;
        assert_eq!(answer, Ok("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_past_still_lets_a_ready_future_answer() {
        let deadline = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(by(deadline, async { 1 }).await, Ok(1));
        assert_eq!(
            by(deadline, std::future::pending::<()>()).await,
            Err(Elapsed)
        );
    }
}
