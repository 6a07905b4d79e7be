//! Limits that hold across replicas (Redis), the per-replica behaviour the
//! in-process adapter gives, and Redis' loss mid-test.

use crate::helpers::*;
use gateway::RouteConfig;
use ratelimit::RedisSettings;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

const LIMIT: u64 = 200;
const SENT: u64 = 900;

pub static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

pub fn redis_settings(server: &RedisServer) -> RedisSettings {
    settings_for(server.url())
}

fn settings_for(url: String) -> RedisSettings {
    let mut settings = RedisSettings::new(url);
    settings.key_prefix = format!(
        "gwtest{}:{}:",
        std::process::id(),
        NEXT_PREFIX.fetch_add(1, Ordering::Relaxed)
    );
    settings.reconnect_backoff = Duration::from_millis(20);
    settings.decision_timeout = Duration::from_millis(500);
    settings
}

pub fn limited_config(a: &Upstream) -> gateway::GatewayConfig {
    let mut cfg = config(&[("a", &[a])], vec![RouteConfig::new("/", "a")]);
    cfg.anon_rate = Some(format!("{LIMIT}/min"));
    cfg
}

/// Sends `SENT` requests from 9 concurrent clients spread over the
/// replicas; returns how many were allowed.
async fn hammer(replicas: &[TestGateway]) -> u64 {
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/")).collect();
    let allowed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..9 {
        let (urls, allowed) = (urls.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            let http = client();
            for i in 0..SENT / 9 {
                let url = &urls[(worker + i as usize) % urls.len()];
                let response = http.get(url).send().await.expect("no request fails");
                match response.status().as_u16() {
                    200 => {
                        allowed.fetch_add(1, Ordering::AcqRel);
                    }
                    429 => assert!(response.headers().contains_key("retry-after")),
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    allowed.load(Ordering::Acquire)
}

#[tokio::test]
async fn three_replicas_on_one_redis_hold_the_global_limit() {
    let redis = RedisServer::start();
    let allowed = three_replicas_on(redis_settings(&redis)).await;
    let error = (allowed as f64 - LIMIT as f64).abs() / LIMIT as f64 * 100.0;
    println!(
        "redis, 3 replicas: {allowed} allowed of {SENT} sent, limit {LIMIT} ({error:.1}% off)"
    );
    assert!(error <= 2.0, "{allowed} allowed, limit {LIMIT}");
}

#[tokio::test]
async fn three_replicas_on_a_redis_cluster_hold_the_global_limit() {
    // 3 masters + 3 replicas; the anonymous key lives on one of them.
    let cluster = testkit::redis::RedisCluster::start();
    let allowed = three_replicas_on(settings_for(cluster.url())).await;
    let error = (allowed as f64 - LIMIT as f64).abs() / LIMIT as f64 * 100.0;
    println!(
        "redis cluster (3 masters), 3 replicas: {allowed} allowed of {SENT} sent, limit {LIMIT} ({error:.1}% off)"
    );
    assert!(error <= 2.0, "{allowed} allowed, limit {LIMIT}");
}

/// Three gateways on one limiter deployment, hammered; how many allowed.
async fn three_replicas_on(settings: RedisSettings) -> u64 {
    let a = Upstream::start("a").await;
    let clock = clock();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let limiter = gateway::limiter(
            Some(settings.clone()),
            gateway::RateLimitWhenDown::Closed,
            Arc::new(clock.clone()),
        )
        .await
        .expect("limiter");
        let deps = Deps {
            limiter: Some(limiter),
            clock: clock.clone(),
            ..Deps::default()
        };
        replicas.push(spawn_gateway_with(limited_config(&a), deps).await);
    }
    hammer(&replicas).await
}

#[tokio::test]
async fn in_process_limiters_let_each_replica_allow_the_whole_limit() {
    let a = Upstream::start("a").await;
    let clock = clock();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(
            spawn_gateway_with(
                limited_config(&a),
                Deps {
                    clock: clock.clone(),
                    ..Deps::default()
                },
            )
            .await,
        );
    }
    let allowed = hammer(&replicas).await;
    println!(
        "in-process, 3 replicas: {allowed} allowed of {SENT} sent, limit {LIMIT} (per replica)"
    );
    assert_eq!(allowed, 3 * LIMIT);
}
