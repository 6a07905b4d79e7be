//! The generator's lateness floor: how late this machine wakes a thread
//! that does nothing but wait, on the same precise timer the open model's
//! dispatcher uses.
//!
//! The open model's lateness (due to sent) can never be lower than the
//! time the kernel takes to run a thread whose timer has fired. On a
//! shared 2-core machine that is not zero: a kernel thread or a neighbour
//! that does not yield holds a core for milliseconds. `scripts/bench-load`
//! runs this beside `reliable load --rate`, so the two are measured under
//! the same load, and the docs quote both.

use crate::engine::PreciseTimer;
use crate::report::Latency;
use crate::results::{new_histogram, record};
use std::time::{Duration, Instant};

/// Sleeps on the precise timer every `period` for `duration` and returns
/// how far past each deadline the thread woke. Blocking: it runs its own
/// single-threaded runtime, as each generator thread does.
pub fn wake_overshoot(duration: Duration, period: Duration) -> std::io::Result<Latency> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut timer = PreciseTimer::new()?;
        let mut overshoot = new_histogram();
        let start = Instant::now();
        let mut deadline = start;
        while deadline < start + duration {
            deadline += period;
            timer.sleep_until(deadline).await?;
            record(
                &mut overshoot,
                Instant::now().saturating_duration_since(deadline),
            );
        }
        Ok(Latency::of(&overshoot))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_measures_every_wake_up_from_its_deadline() {
        let overshoot =
            wake_overshoot(Duration::from_millis(30), Duration::from_millis(1)).expect("timer");
        assert!(overshoot.p50_us <= overshoot.p999_us && overshoot.p999_us <= overshoot.max_us);
        assert!(overshoot.mean_us >= 0.0);
    }
}
