//! The runner: a probe checks at once and then on its interval (paused
//! tokio time), files each result under the injected clock's time (a
//! manual clock), stores it in its UTC day, and its tasks stop on
//! shutdown.

mod support;

use chrono::{TimeZone, Utc};
use kit::tasks::Supervisor;
use kit::{Clock, ManualClock};
use probe::config::{Check, ProbeSpec, TcpCheck};
use probe::store::{day_of, ProbeStore};
use std::sync::Arc;
use std::time::Duration;

/// Polls `done` (yielding between tries) until it holds.
async fn until<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    for _ in 0..2_000 {
        if done().await {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never met");
}

fn refused(interval: Duration) -> ProbeSpec {
    ProbeSpec {
        name: "db".to_string(),
        component: "Database".to_string(),
        interval,
        timeout: Duration::from_secs(1),
        check: Check::Tcp(TcpCheck {
            address: format!("127.0.0.1:{}", support::refused_port()),
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn checks_run_at_once_then_on_their_interval_at_the_clocks_time() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 23, 59, 0).unwrap());
    let tasks = Supervisor::new().for_module("probe");
    let spec = refused(Duration::from_secs(10));
    let results = probe::runner::start(&[spec], None, Arc::new(clock.clone()), &tasks).unwrap();
    assert_eq!(
        results.probes(),
        &[("db".to_string(), "Database".to_string())]
    );
    let first = clock.now();
    until(|| async { results.latest().contains_key("db") }).await;
    let latest = results.latest();
    assert_eq!(latest["db"].at, first);
    assert!(!latest["db"].outcome.success);
    assert_eq!(latest["db"].component, "Database");

    clock.advance(chrono::Duration::seconds(120));
    tokio::time::advance(Duration::from_secs(10)).await;
    until(|| async { results.latest()["db"].at == clock.now() }).await;
    assert_eq!(day_of(clock.now()), day_of(first) + 1);
    tasks.shutdown().await;
}

#[tokio::test]
async fn results_are_stored_under_the_clocks_day() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("probes.db").display());
    let store = ProbeStore::open(&url, &Default::default()).await.unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap());
    let tasks = Supervisor::new().for_module("probe");
    // A long interval: only the first, immediate check runs here.
    let spec = refused(Duration::from_secs(3600));
    let results = probe::runner::start(
        &[spec],
        Some(store.clone()),
        Arc::new(clock.clone()),
        &tasks,
    )
    .unwrap();
    let day = day_of(clock.now());
    until(|| async { !store.days_since(day).await.unwrap().is_empty() }).await;
    let days = store.days_since(0).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(
        (days[0].day, days[0].checks, days[0].successes),
        (day, 1, 0)
    );
    assert_eq!(days[0].component, "Database");
    assert!(!results.latest()["db"].outcome.success);
    tasks.shutdown().await;
}
