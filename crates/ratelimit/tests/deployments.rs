//! The URL names the deployment, and a server in another mode is a
//! startup error naming both (never a pool error later): a cluster URL at
//! a standalone server and the reverse, a sentinel URL without a master
//! name, with a name the sentinels do not know, or at a data node.

use chrono::{TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{LimiterError, RedisLimiter, RedisSettings};
use std::sync::Arc;
use testkit::redis::{RedisCluster, RedisSentinels, RedisServer};

/// What `connect` refused the URL with; panics if it was accepted.
async fn refusal(url: String) -> String {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    match RedisLimiter::connect(RedisSettings::new(url.clone()), Arc::new(clock)).await {
        Err(LimiterError::Config(message)) => message,
        Err(other) => panic!("{url}: not a configuration error: {other}"),
        Ok(_) => panic!("{url} was accepted"),
    }
}

#[tokio::test]
async fn a_cluster_url_at_a_standalone_server_is_a_startup_error() {
    let server = RedisServer::start();
    let message = refusal(format!("redis+cluster://127.0.0.1:{}", server.port())).await;
    assert_eq!(
        message,
        format!(
            "RELIABLE_REDIS_URL is a cluster URL (redis+cluster://) but 127.0.0.1:{} \
             has cluster_enabled:0",
            server.port()
        )
    );
}

#[tokio::test]
async fn a_standalone_url_at_a_cluster_node_is_a_startup_error() {
    let cluster = RedisCluster::start();
    let message = refusal(format!("redis://127.0.0.1:{}/", cluster.port(0))).await;
    assert!(
        message.starts_with(&format!(
            "RELIABLE_REDIS_URL is a standalone URL (redis://) but 127.0.0.1:{} has \
             cluster_enabled:1; use redis+cluster://",
            cluster.port(0)
        )),
        "{message}"
    );
    // The right form of the same server works.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let limiter = RedisLimiter::connect(RedisSettings::new(cluster.url()), Arc::new(clock))
        .await
        .expect("a cluster URL at the cluster");
    assert!(limiter.is_up());
}

#[tokio::test]
async fn sentinel_urls_that_cannot_find_a_master_are_startup_errors() {
    let sentinels = RedisSentinels::start();
    let port = sentinels.sentinel_ports()[0];

    let message = refusal(format!("redis+sentinel://127.0.0.1:{port}")).await;
    assert!(
        message.starts_with("RELIABLE_REDIS_URL is a sentinel URL without a master name"),
        "{message}"
    );

    let message = refusal(format!("redis+sentinel://127.0.0.1:{port}/nosuch")).await;
    assert_eq!(
        message,
        format!(
            "RELIABLE_REDIS_URL names master `nosuch`, which the sentinel at 127.0.0.1:{port} \
             does not monitor (it monitors: reliable)"
        )
    );

    // A sentinel URL at a data node, and a standalone URL at a sentinel.
    let data = sentinels.port(0);
    let message = refusal(format!("redis+sentinel://127.0.0.1:{data}/reliable")).await;
    assert_eq!(
        message,
        format!(
            "RELIABLE_REDIS_URL is a sentinel URL (redis+sentinel://) but 127.0.0.1:{data} \
             is a data node, not a Sentinel (cluster_enabled:0)"
        )
    );
    let message = refusal(format!("redis://127.0.0.1:{port}/")).await;
    assert!(
        message.starts_with(&format!(
            "RELIABLE_REDIS_URL is a standalone URL (redis://) but 127.0.0.1:{port} is a Sentinel"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_standalone_url_at_a_replica_is_a_startup_error() {
    let sentinels = RedisSentinels::start();
    let replica = sentinels.port(1);
    let message = refusal(format!("redis://127.0.0.1:{replica}/")).await;
    assert!(
        message.starts_with(&format!(
            "RELIABLE_REDIS_URL is a standalone URL (redis://) but 127.0.0.1:{replica} is a \
             replica (ROLE: slave of 127.0.0.1:{})",
            sentinels.port(0)
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_cluster_url_whose_nodes_are_all_down_starts_down_not_failed() {
    // Unreachable is an outage, not a configuration error: the limiter
    // starts down (fail open or closed decides) and connects later.
    let port = testkit::free_port();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let limiter = RedisLimiter::connect(
        RedisSettings::new(format!("redis+cluster://127.0.0.1:{port}")),
        Arc::new(clock),
    )
    .await
    .expect("starts down");
    assert!(!limiter.is_up());
}
