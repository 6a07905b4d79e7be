//! A sleep precise to tens of microseconds, inside the async runtime.
//!
//! Tokio's timer wheel has a 1 ms resolution, and its driver parks with a
//! millisecond `epoll_wait` timeout, so arrivals released by it come in
//! bursts up to a millisecond late. A dedicated OS thread that sleeps with
//! `nanosleep` is precise but then hands every arrival to the runtime
//! through a channel and a cross-thread wake-up, which costs more CPU than
//! the request itself. A Linux `timerfd` registered with the runtime's
//! epoll gets both: the kernel's high-resolution timer wakes the same
//! thread that sends the request. Elsewhere it falls back to Tokio's timer.

use std::time::Instant;

#[cfg(target_os = "linux")]
pub(crate) struct PreciseTimer {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

#[cfg(target_os = "linux")]
impl PreciseTimer {
    pub(crate) fn new() -> std::io::Result<Self> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: the `OwnedFd` is a valid, open timerfd that the `AsyncFd`
        // owns until it is dropped; nothing else can close it or make
        // `as_raw_fd` return another descriptor.
        #[allow(unsafe_code)]
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Returns at `deadline` (a few tens of microseconds after it, the
    /// kernel's timer slack), or at once if it has passed.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) -> std::io::Result<()> {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let now = Instant::now();
        if deadline <= now {
            return Ok(());
        }
        let wait = deadline - now;
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(wait.subsec_nanos()),
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut expirations).map_err(std::io::Error::from)
            }) {
                Ok(result) => {
                    // The read took every expiration and the timer is
                    // disarmed: the descriptor cannot be readable again
                    // until the next `timerfd_settime`. Forget the
                    // readiness now, or the next sleep's first read would
                    // be a wasted syscall that fails with EAGAIN.
                    ready.clear_ready();
                    return result.map(|_| ());
                }
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) struct PreciseTimer;

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    pub(crate) async fn sleep_until(&mut self, deadline: Instant) -> std::io::Result<()> {
        tokio::time::sleep_until(deadline.into()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn it_never_returns_before_the_deadline() {
        let mut timer = PreciseTimer::new().expect("timer");
        for micros in [50u64, 200, 1_500] {
            let deadline = Instant::now() + Duration::from_micros(micros);
            timer.sleep_until(deadline).await.expect("sleep");
            assert!(Instant::now() >= deadline);
        }
        // A deadline in the past returns at once, without arming anything.
        timer
            .sleep_until(Instant::now() - Duration::from_millis(1))
            .await
            .expect("past deadline");
    }
}
