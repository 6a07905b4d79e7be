//! Two replicas on one PostgreSQL database: a change made through one is
//! never served stale from the other's cache (LISTEN/NOTIFY invalidation).
//! The default cache TTL is 5 minutes, so without the notification these
//! tests would see the stale link until their deadline.

use crate::helpers::{spawn_postgres_replica, TestApp};
use serde_json::json;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

async fn location(app: &TestApp, path: &str) -> Option<String> {
    let response = app.get(path).await;
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Asks `app` until `path` redirects to `expected` (or answers without a
/// `Location` when `expected` is `None`); each try is a real request, so
/// this waits on the condition, not on the clock.
async fn until_location(app: &TestApp, path: &str, expected: Option<&str>) {
    let started = Instant::now();
    while location(app, path).await.as_deref() != expected {
        assert!(
            started.elapsed() < DEADLINE,
            "{path} never became {expected:?} on the other replica"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_change_on_one_replica_invalidates_the_others_cache() {
    let db_url = testkit::postgres().create_database();
    let a = spawn_postgres_replica(&db_url).await;
    let b = spawn_postgres_replica(&db_url).await;

    // Until a probe change is seen, `a`'s listener may not be connected yet.
    a.create(json!({"url": "https://probe.example/0", "slug": "probe"}))
        .await;
    for round in 1.. {
        location(&a, "/probe").await;
        let next = format!("https://probe.example/{round}");
        b.patch("/api/v1/links/probe", &json!({"url": next})).await;
        let started = Instant::now();
        let mut seen = false;
        while started.elapsed() < Duration::from_millis(500) {
            if location(&a, "/probe").await.as_deref() == Some(next.as_str()) {
                seen = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        if seen {
            break;
        }
        assert!(round < 20, "replica a never saw a change");
    }

    a.create(json!({"url": "https://before.example/", "slug": "shared"}))
        .await;
    for _ in 0..3 {
        assert_eq!(
            location(&a, "/shared").await.as_deref(),
            Some("https://before.example/")
        );
    }
    b.patch(
        "/api/v1/links/shared",
        &json!({"url": "https://after.example/"}),
    )
    .await;
    until_location(&a, "/shared", Some("https://after.example/")).await;

    assert_eq!(b.delete("/api/v1/links/shared").await.status(), 204);
    until_location(&a, "/shared", None).await;
    assert_eq!(a.get("/shared").await.status(), 404);
}
