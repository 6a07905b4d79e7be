//! Active health checks: every `interval`, probe each endpoint of each
//! pool; a failed probe, or none within `timeout`, takes the endpoint out
//! of its pool until a probe passes.
//!
//! Complements the breaker (passive): the breaker reacts to live traffic,
//! the check finds a dead endpoint before traffic does and brings an
//! endpoint back without risking a client request on it. What a probe is
//! (`GET /readyz`, a gRPC health call, a `PING`) is the caller's.

use crate::pool::{Endpoint, Pool};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often to probe and how long a probe may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSchedule {
    /// Zero turns active checks off.
    pub interval: Duration,
    pub timeout: Duration,
}

/// Probes every endpoint of `pools` each `schedule.interval` until
/// `shutdown`; returns at once when the interval is zero. `probe` answers
/// whether the endpoint is healthy.
pub async fn run<T, F, Fut>(
    pools: &[Arc<Pool<T>>],
    schedule: HealthSchedule,
    probe: F,
    shutdown: kit::CancellationToken,
) where
    F: Fn(Arc<Endpoint<T>>) -> Fut,
    Fut: Future<Output = bool>,
{
    if schedule.interval.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(schedule.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let checks = pools
            .iter()
            .flat_map(|p| p.endpoints.iter())
            .map(|endpoint| {
                let probe = probe(endpoint.clone());
                async move {
                    let healthy = tokio::time::timeout(schedule.timeout, probe)
                        .await
                        .unwrap_or(false);
                    endpoint.set_healthy(healthy);
                }
            });
        // Concurrently: one slow endpoint must not delay the others.
        futures::future::join_all(checks).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Breaker;
    use crate::pool::PoolMetrics;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_slow_probe_ejects_and_a_passing_one_readmits() {
        let pool = Arc::new(Pool::new(
            "p",
            [(0, "fast"), (1, "slow")],
            Arc::new(kit::SystemClock),
            || Breaker::new(1, Duration::from_secs(1)),
            PoolMetrics {
                breaker_state: "test_breaker",
                endpoint_healthy: "test_healthy",
                pool_label: "test_pool",
            },
        ));
        let fast_ok = Arc::new(AtomicBool::new(false));
        let shutdown = kit::CancellationToken::new();
        let schedule = HealthSchedule {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
        };
        let probe = |endpoint: Arc<Endpoint<i32>>| {
            let fast_ok = fast_ok.clone();
            async move {
                if endpoint.target == 1 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                fast_ok.load(Ordering::Acquire)
            }
        };
        let observe = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(!pool.endpoints[0].is_healthy(), "failed probe ejects");
            assert!(!pool.endpoints[1].is_healthy(), "slow probe ejects");
            fast_ok.store(true, Ordering::Release);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(pool.endpoints[0].is_healthy(), "passing probe readmits");
            assert!(!pool.endpoints[1].is_healthy());
            shutdown.cancel();
        };
        // Returns only because the checks stop on shutdown.
        let pools = [pool.clone()];
        tokio::join!(run(&pools, schedule, probe, shutdown.clone()), observe);
    }
}
