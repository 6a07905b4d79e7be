//! The notification store's conformance suite, on SQLite and PostgreSQL.

use bus::Event;
use chrono::{DateTime, Utc};
use notifier::storage::NotificationStore;
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00.5Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn event(id: &str) -> Event {
    Event {
        id: id.into(),
        subject: "orders.created".into(),
        key: "ord_1".into(),
        payload: "{\"a\":1}".into(),
        traceparent: None,
        occurred_at: now(),
    }
}

async fn processed_marks_are_idempotent(store: Arc<dyn NotificationStore>) {
    assert!(!store.is_processed("e").await.expect("lookup"));
    store.mark_processed("e", now()).await.expect("mark");
    store.mark_processed("e", now()).await.expect("mark twice");
    assert!(store.is_processed("e").await.expect("lookup"));
}

async fn dead_letters_round_trip_and_resolve(store: Arc<dyn NotificationStore>) {
    store
        .dead_letter(&event("d1"), 8, "webhook answered 500", now())
        .await
        .expect("dead");
    // A redelivery of the same event does not add a second dead letter.
    store
        .dead_letter(&event("d1"), 9, "again", now())
        .await
        .expect("dead again");
    store
        .dead_letter(&event("d2"), 1, "webhook answered 400", now())
        .await
        .expect("dead");
    assert!(store.is_processed("d1").await.expect("lookup"));
    let all = store.list_dead(0, 10).await.expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].event, event("d1"));
    assert_eq!(
        (all[0].attempts, all[0].last_error.as_str()),
        (8, "webhook answered 500")
    );
    let page = store.list_dead(all[0].id, 10).await.expect("page");
    assert_eq!(page.len(), 1);
    store
        .replay_failed(all[0].id, "still 500", now())
        .await
        .expect("failed");
    let found = store
        .find_dead(all[0].id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        (found.attempts, found.last_error.as_str()),
        (9, "still 500")
    );
    assert!(store.resolve_dead(all[0].id).await.expect("resolve"));
    assert!(!store.resolve_dead(all[0].id).await.expect("resolve twice"));
    assert_eq!(store.dead_count().await.expect("count"), 1);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("n.db").display());
                    super::$name(notifier::storage::connect(&url, &Default::default()).await.expect("sqlite")).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let url = testkit::postgres().create_database();
                    super::$name(notifier::storage::connect(&url, &Default::default()).await.expect("postgres")).await;
                }
            )*
        }
    };
}

conformance!(
    processed_marks_are_idempotent,
    dead_letters_round_trip_and_resolve
);
