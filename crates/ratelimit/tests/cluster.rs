//! The Redis adapter on a 3-master Redis Cluster (with 3 replicas): one
//! limit across replicas for keys spread over every master, token
//! budgets, a slot moved while decisions go on (`ASK` then `MOVED`, no
//! decision lost), `NOSCRIPT` on live connections, and a master killed
//! (fail open while its slots have no master, global again after its
//! replica's promotion). Time is a manual clock; the servers are real.

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{
    BudgetWindow, GlobalLimiter, LocalLimiter, Quota, RateLimiter, RedisLimiter, RedisSettings,
    WhenDown,
};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::{cli, RedisCluster};

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
}

fn settings(cluster: &RedisCluster) -> RedisSettings {
    let mut settings = RedisSettings::new(cluster.url());
    settings.reconnect_backoff = Duration::from_millis(20);
    settings.decision_timeout = Duration::from_secs(2);
    settings
}

async fn limiter(settings: &RedisSettings, clock: &ManualClock) -> RedisLimiter {
    RedisLimiter::connect(settings.clone(), Arc::new(clock.clone()))
        .await
        .expect("connect")
}

async fn allowed(limiter: &dyn RateLimiter, key: &str, quota: &Quota, n: u32) -> u32 {
    let mut count = 0;
    for _ in 0..n {
        let decision = limiter.check(key, quota).await.expect("decision");
        count += u32::from(decision.allowed);
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_one_limit_per_key_on_every_master() {
    let cluster = RedisCluster::start();
    let clock = clock();
    let settings = settings(&cluster);
    let replicas = [
        limiter(&settings, &clock).await,
        limiter(&settings, &clock).await,
        limiter(&settings, &clock).await,
    ];
    let quota: Quota = "10/s,burst=10".parse().unwrap();
    // 30 keys land on all three masters.
    let keys: Vec<String> = (0..30).map(|i| format!("client-{i}")).collect();
    let masters: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| {
            let slot = cluster.slot_of(&format!("reliable:rl:{{{k}}}")).unwrap();
            cluster.master_of(slot).unwrap()
        })
        .collect();
    assert_eq!(masters.len(), 3, "the keys cover every master");
    for key in &keys {
        let mut total = 0;
        for replica in &replicas {
            total += allowed(replica, key, &quota, 10).await;
        }
        assert_eq!(total, 10, "{key}: one burst across three replicas");
    }
}

#[tokio::test]
async fn budgets_and_refunds_work_unchanged_in_a_cluster() {
    let cluster = RedisCluster::start();
    let clock = clock();
    let limiter = limiter(&settings(&cluster), &clock).await;
    let quota: Quota = "100/min,burst=100".parse().unwrap();
    // Weighted GCRA and its refund, as the LLM gateway spends tokens.
    assert!(limiter.check_n("tenant", &quota, 80).await.unwrap().allowed);
    assert!(!limiter.check_n("tenant", &quota, 30).await.unwrap().allowed);
    limiter.refund("tenant", &quota, 50).await.unwrap();
    assert!(limiter.check_n("tenant", &quota, 30).await.unwrap().allowed);
    // A daily budget: reserve, settle, refuse past the limit.
    let first = limiter
        .reserve("tenant", BudgetWindow::Day, 1000, 600)
        .await
        .unwrap();
    assert!(first.allowed);
    assert!(
        !limiter
            .reserve("tenant", BudgetWindow::Day, 1000, 600)
            .await
            .unwrap()
            .allowed
    );
    limiter
        .settle("tenant", BudgetWindow::Day, first.window_id, -300)
        .await
        .unwrap();
    let second = limiter
        .reserve("tenant", BudgetWindow::Day, 1000, 600)
        .await
        .unwrap();
    assert!(second.allowed);
    assert_eq!(second.used, 900);
    // The GCRA state and the budget counter of one key share its slot.
    let gcra = cluster.slot_of("reliable:rl:{tenant}").unwrap();
    let budget = cluster
        .slot_of(&format!(
            "reliable:rl:budget:day:{}:{{tenant}}",
            first.window_id
        ))
        .unwrap();
    assert_eq!(gcra, budget);
    let port = cluster.port(cluster.master_of(gcra).unwrap());
    let keys = cli(port, &["cluster", "getkeysinslot", &gcra.to_string(), "10"]).unwrap();
    assert_eq!(keys.lines().count(), 2, "{keys}");
}

#[tokio::test]
async fn decisions_follow_a_slot_move_and_none_is_lost() {
    let cluster = RedisCluster::start();
    let clock = clock();
    let limiter = limiter(&settings(&cluster), &clock).await;
    // The clock stands still: exactly the burst is allowed, however the
    // attempts are spread over the move, if every decision landed once.
    let quota: Quota = "1/min,burst=50".parse().unwrap();
    let slot = cluster.slot_of("reliable:rl:{moving}").unwrap();
    let from = cluster.master_of(slot).unwrap();
    let to = (from + 1) % 3;
    let mut total = allowed(&limiter, "moving", &quota, 10).await;
    let moving = cluster.begin_move(slot, to).unwrap();
    total += allowed(&limiter, "moving", &quota, 10).await; // still on the old owner
    assert_eq!(moving.migrate_keys().unwrap(), 1);
    total += allowed(&limiter, "moving", &quota, 10).await; // ASK to the new owner
    moving.finish().unwrap();
    total += allowed(&limiter, "moving", &quota, 30).await; // MOVED, then the new owner
    assert_eq!(total, 50, "every decision counted once across the move");
    assert_eq!(cluster.master_of(slot).unwrap(), to);
    assert!(limiter.is_up(), "no outage was declared");
}

#[tokio::test]
async fn noscript_on_live_connections_is_handled() {
    let cluster = RedisCluster::start();
    let clock = clock();
    let limiter = limiter(&settings(&cluster), &clock).await;
    let quota: Quota = "1/min,burst=5".parse().unwrap();
    assert_eq!(allowed(&limiter, "flushed", &quota, 2).await, 2);
    for master in 0..3 {
        cli(cluster.port(master), &["script", "flush"]).unwrap();
    }
    assert_eq!(allowed(&limiter, "flushed", &quota, 5).await, 3);
    assert!(limiter.is_up(), "NOSCRIPT is not an outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_open_then_its_replica_takes_the_limit_back() {
    let cluster = RedisCluster::start();
    let clock = clock();
    let mut settings = settings(&cluster);
    settings.decision_timeout = Duration::from_millis(200);
    let redis = limiter(&settings, &clock).await;
    let limiter = GlobalLimiter::new(
        redis,
        LocalLimiter::new(Arc::new(clock.clone())),
        WhenDown::FailOpen,
    );
    let quota: Quota = "1/min,burst=5".parse().unwrap();
    assert_eq!(allowed(&limiter, "victim", &quota, 3).await, 3);
    let slot = cluster.slot_of("reliable:rl:{victim}").unwrap();
    let master = cluster.master_of(slot).unwrap();
    // Replicated before the kill, so the state survives the failover.
    cli(cluster.port(master), &["wait", "1", "2000"]).unwrap();
    cluster.kill(master);

    // No decision fails while the slot has no master: they are local.
    testkit::eventually(
        "the limiter to fail open",
        Duration::from_secs(10),
        async || {
            limiter
                .check("victim", &quota)
                .await
                .expect("fail open never errs");
            limiter.is_degraded().then_some(())
        },
    )
    .await;
    let promoted = tokio::task::spawn_blocking(move || {
        let promoted = cluster.wait_promoted(master, slot).unwrap();
        (cluster, promoted)
    })
    .await
    .unwrap();
    let (cluster, promoted) = promoted;
    assert_eq!(promoted, master + 3, "its replica took over");

    // Global again: decisions drive reconnects on the limiter's clock.
    testkit::eventually(
        "decisions from Redis again",
        Duration::from_secs(30),
        async || {
            limiter
                .check("other", &quota)
                .await
                .expect("fail open never errs");
            clock.advance(ChronoDuration::milliseconds(100));
            (!limiter.is_degraded()).then_some(())
        },
    )
    .await;
    // The key's state came through the failover: 3 of 5 were spent.
    clock.set(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(allowed(&limiter, "victim", &quota, 5).await, 2);
    drop(cluster);
}
