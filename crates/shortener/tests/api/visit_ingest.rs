//! Visits answered while PostgreSQL restarts are all written: the batch
//! writer retries a failed `COPY` batch until it commits. Each redirect
//! carries its own user agent, so a lost visit is named, not just counted.

use crate::helpers::spawn_postgres_replica_with;
use serde_json::json;
use shortener::ShortenerConfig;
use sqlx::Connection;
use std::collections::BTreeSet;
use std::time::Duration;

const VISITS: usize = 600;

#[tokio::test]
async fn a_postgres_restart_while_writing_loses_no_answered_visit() {
    // Its own server: the test kills it. Durable commits, so what the
    // server acknowledged survives the crash.
    let server = std::sync::Arc::new(testkit::PgServer::start_durable().expect("postgres"));
    let db_url = server.create_database();
    // Small batches, written continuously, so the restart lands mid-stream.
    let config = ShortenerConfig {
        visit_batch_size: 20,
        visit_flush_interval: Duration::from_millis(20),
        ..ShortenerConfig::default()
    };
    let mut app = spawn_postgres_replica_with(&db_url, config).await;
    app.create(json!({"url": "https://target.example/", "slug": "hot"}))
        .await;

    let mut answered = BTreeSet::new();
    let mut restart = None;
    for i in 0..VISITS {
        if i == VISITS / 3 {
            let server = server.clone();
            restart = Some(tokio::task::spawn_blocking(move || server.restart()));
        }
        let response = app
            .client
            .get(app.url("/hot"))
            .header("user-agent", format!("ua-{i}"))
            .send()
            .await
            .expect("request");
        // A redirect answered is a promise to record the visit. While the
        // database is down a cache miss (the cache is cleared when the
        // change listener reconnects) is a retryable 503, never a 500.
        match response.status().as_u16() {
            302 => {
                answered.insert(format!("ua-{i}"));
            }
            503 => {}
            other => panic!("redirect {i} answered {other}"),
        }
    }
    restart
        .expect("restarted")
        .await
        .expect("join")
        .expect("pg_ctl restart");
    assert!(answered.len() >= VISITS / 3, "{} answered", answered.len());
    app.flush_visits().await;

    let mut conn = sqlx::PgConnection::connect(&db_url).await.expect("connect");
    let stored: Vec<String> = sqlx::query_scalar("SELECT user_agent FROM shortener.visits")
        .fetch_all(&mut conn)
        .await
        .expect("visits");
    let distinct: BTreeSet<String> = stored.iter().cloned().collect();
    let lost: Vec<&String> = answered.difference(&distinct).collect();
    assert!(lost.is_empty(), "{} visits lost: {lost:?}", lost.len());
    // A batch is one transaction with its count: whatever was written
    // (even a batch written twice because its commit's answer was cut) is
    // counted exactly once per row.
    let count: i64 = sqlx::query_scalar("SELECT visit_count FROM shortener.links")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(count, stored.len() as i64);
    app.stop().await;
}
