use crate::helpers::spawn_app_with;
use kit::Clock;
use serde_json::json;
use shortener::ShortenerConfig;
use std::time::Duration;

#[tokio::test]
async fn graceful_shutdown_writes_every_buffered_visit() {
    // Nothing is written before shutdown: a huge batch and an hour-long interval.
    let config = ShortenerConfig {
        visit_batch_size: 100_000,
        visit_flush_interval: Duration::from_secs(3600),
        ..ShortenerConfig::default()
    };
    let mut app = spawn_app_with(config).await;
    let link = app
        .create(json!({"url": "https://e.x/", "slug": "busy"}))
        .await;
    assert_eq!(link["visit_count"], 0);
    let statuses = app.concurrent_gets("/busy", 200).await;
    assert!(statuses.iter().all(|s| *s == 302), "{statuses:?}");
    let link_id = app
        .store
        .find(&shortener::domain::Slug::parse("busy").expect("slug"))
        .await
        .expect("find")
        .expect("exists")
        .id;
    let since = app.clock.now() - chrono::Duration::days(1);
    let before = app
        .store
        .visit_summary(link_id, since, 10)
        .await
        .expect("summary");
    assert_eq!(before.total, 0, "visits must still be buffered");

    app.stop().await;

    let after = app
        .store
        .visit_summary(link_id, since, 10)
        .await
        .expect("summary");
    assert_eq!(after.total, 200);
    let stored = app
        .store
        .find(&shortener::domain::Slug::parse("busy").expect("slug"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored.visit_count, 200);
}
