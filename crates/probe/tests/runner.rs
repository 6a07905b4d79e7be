//! The runner on paused tokio time and a manual clock: a probe checks on
//! its interval, its results land in the store under the clock's UTC day
//! and in the latest results, and its tasks stop on shutdown.

mod support;

use chrono::{TimeZone, Utc};
use kit::tasks::Supervisor;
use kit::{Clock, ManualClock};
use probe::config::{Check, ProbeSpec, TcpCheck};
use probe::store::{day_of, ProbeStore};
use std::sync::Arc;
use std::time::Duration;

async fn until<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    for _ in 0..10_000 {
        if done().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never met");
}

#[tokio::test(start_paused = true)]
async fn checks_run_on_their_interval_and_file_under_the_clocks_day() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("probes.db").display());
    let store = ProbeStore::open(&url, &Default::default()).await.unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 23, 59, 0).unwrap());
    let spec = ProbeSpec {
        name: "db".to_string(),
        component: "Database".to_string(),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        check: Check::Tcp(TcpCheck {
            address: format!("127.0.0.1:{}", support::refused_port()),
        }),
    };
    let tasks = Supervisor::new().for_module("probe");
    let results =
        probe::runner::start(&[spec], Some(store.clone()), Arc::new(clock.clone()), &tasks)
            .unwrap();
    assert_eq!(results.probes(), &[("db".to_string(), "Database".to_string())]);
    let day_one = day_of(clock.now());
    let checks_on = |day: i64| {
        let store = store.clone();
        async move {
            store
                .days_since(day)
                .await
                .unwrap()
                .iter()
                .filter(|d| d.day == day)
                .map(|d| (d.checks, d.successes))
                .next()
                .unwrap_or_default()
        }
    };
    // The first check runs at once.
    until(|| async { checks_on(day_one).await.0 >= 1 }).await;
    let latest = results.latest();
    assert!(!latest["db"].outcome.success);
    assert_eq!(latest["db"].component, "Database");

    // Past midnight on the clock, the next interval's check is tomorrow's.
    clock.advance(Duration::from_secs(120));
    tokio::time::advance(Duration::from_secs(10)).await;
    until(|| async { checks_on(day_one + 1).await.0 >= 1 }).await;
    let (checks, successes) = checks_on(day_one + 1).await;
    assert_eq!(successes, 0);
    assert!(checks >= 1);
    assert_eq!(results.latest()["db"].at, clock.now());

    tasks.shutdown().await;
}
