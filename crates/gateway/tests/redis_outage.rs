//! Redis stopped mid-test: no request fails, the degraded metric turns
//! on, and decisions go back to Redis when it returns. Its own test binary
//! because `ratelimit_degraded` is one process-wide gauge that any other
//! test building a limiter would reset.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use gateway::RouteConfig;
use helpers::*;
use ratelimit::{GlobalLimiter, LocalLimiter, RateLimiter, RedisLimiter, RedisSettings, WhenDown};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

#[tokio::test]
async fn losing_redis_fails_open_with_the_degraded_metric_then_recovers() {
    let redis = RedisServer::start();
    let a = Upstream::start("a").await;
    let clock = clock();
    let redis_limiter = RedisLimiter::connect(settings(&redis), Arc::new(clock.clone()))
        .await
        .expect("connect");
    let global = Arc::new(GlobalLimiter::new(
        redis_limiter,
        LocalLimiter::new(Arc::new(clock.clone())),
        WhenDown::FailOpen,
    ));
    let limiter: Arc<dyn RateLimiter> = global.clone();
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.anon_rate = Some("100000/min".into());
    let gw = spawn_gateway_with(
        cfg,
        Deps {
            limiter: Some(limiter),
            clock: clock.clone(),
            ..Deps::default()
        },
    )
    .await;
    let http = client();
    let send = |n: usize| {
        let (http, url) = (http.clone(), gw.url("/"));
        async move {
            for _ in 0..n {
                let response = http.get(&url).send().await.expect("no request fails");
                assert_eq!(response.status(), 200);
                assert!(response.headers().contains_key("ratelimit"));
            }
        }
    };
    send(20).await;
    assert!(!global.is_degraded());
    redis.stop();
    send(50).await;
    assert!(global.is_degraded());
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("ratelimit_degraded 1"),
        "degraded metric on"
    );
    redis.start_again().expect("redis back");
    let http2 = http.clone();
    let url = gw.url("/");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while global.is_degraded() {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        assert_eq!(http2.get(&url).send().await.unwrap().status(), 200);
        // Reconnecting is driven by requests once the backoff has passed
        // on the limiter's clock.
        clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    send(10).await;
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("ratelimit_degraded 0"),
        "degraded metric off"
    );
}

fn settings(server: &RedisServer) -> RedisSettings {
    let mut settings = RedisSettings::new(server.url());
    settings.key_prefix = format!("gwoutage{}:", std::process::id());
    settings.reconnect_backoff = Duration::from_millis(20);
    settings
}
