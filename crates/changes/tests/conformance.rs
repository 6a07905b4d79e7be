//! The change store's conformance suite, run on SQLite and PostgreSQL:
//! filters, pages, bounds, text limits, a full queue, a database that went
//! away, and the flush on shutdown.

use changes::{ChangeStore, ChangesConfig, WriterOptions};
use chrono::{DateTime, Duration, TimeZone, Utc};
use kit::changes::{
    ChangeEvent, ChangeFeed, ChangeKind, ChangeLog, ChangeQuery, MAX_NAME_CHARS, MAX_PAGE,
    MAX_SUMMARY_CHARS,
};
use kit::tasks::{Supervisor, TaskSpawner};
use kit::ManualClock;
use std::sync::Arc;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn event(minute: i64, kind: ChangeKind, service: &str) -> ChangeEvent {
    ChangeEvent::new(
        start() + Duration::minutes(minute),
        kind,
        service,
        "cli:alice",
        format!("subject-{minute}"),
        format!("change at minute {minute}"),
    )
}

struct Fixture {
    store: ChangeStore,
    clock: ManualClock,
    tasks: TaskSpawner,
}

async fn open(url: &str, config: ChangesConfig, options: WriterOptions) -> Fixture {
    let clock = ManualClock::new(start());
    let tasks = Supervisor::new().for_module("changes");
    let store = ChangeStore::open_with(url, &config, Arc::new(clock.clone()), &tasks, options)
        .await
        .expect("open the change store");
    Fixture {
        store,
        clock,
        tasks,
    }
}

async fn open_default(url: &str) -> Fixture {
    open(url, ChangesConfig::default(), WriterOptions::default()).await
}

fn query(limit: usize) -> ChangeQuery {
    ChangeQuery {
        limit,
        ..Default::default()
    }
}

fn ids(changes: &[kit::changes::StoredChange]) -> Vec<i64> {
    changes.iter().map(|c| c.id).collect()
}

async fn records_round_trip_newest_first_with_filters(url: String) {
    let f = open_default(&url).await;
    f.store.record(event(0, ChangeKind::KeyCreated, "gateway"));
    f.store
        .record(event(10, ChangeKind::SplitChanged, "gateway"));
    f.store
        .record(event(20, ChangeKind::ModelLoaded, "inference"));
    f.store
        .record(event(30, ChangeKind::SplitChanged, "gateway"));
    f.store.flush().await;

    let all = f.store.list(&query(10)).await.expect("list");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].event, event(30, ChangeKind::SplitChanged, "gateway"));
    assert_eq!(all[3].event, event(0, ChangeKind::KeyCreated, "gateway"));
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let splits = ChangeQuery {
        kinds: vec![ChangeKind::SplitChanged],
        ..query(10)
    };
    let found = f.store.list(&splits).await.expect("kinds");
    assert_eq!(ids(&found), vec![all[0].id, all[2].id]);

    let two_kinds = ChangeQuery {
        kinds: vec![ChangeKind::KeyCreated, ChangeKind::ModelLoaded],
        ..query(10)
    };
    let found = f.store.list(&two_kinds).await.expect("kinds");
    assert_eq!(ids(&found), vec![all[1].id, all[3].id]);

    let inference = ChangeQuery {
        service: Some("inference".into()),
        ..query(10)
    };
    let found = f.store.list(&inference).await.expect("service");
    assert_eq!(ids(&found), vec![all[1].id]);

    // since is inclusive, until exclusive.
    let window = ChangeQuery {
        since: Some(start() + Duration::minutes(10)),
        until: Some(start() + Duration::minutes(30)),
        ..query(10)
    };
    let found = f.store.list(&window).await.expect("window");
    assert_eq!(ids(&found), vec![all[1].id, all[2].id]);

    let none = ChangeQuery {
        service: Some("orders".into()),
        ..query(10)
    };
    assert!(f.store.list(&none).await.expect("none").is_empty());
    f.tasks.shutdown().await;
}

async fn pages_by_id_and_caps_the_limit(url: String) {
    let f = open_default(&url).await;
    let many: Vec<_> = (0..MAX_PAGE as i64 + 5)
        .map(|m| event(m, ChangeKind::CanaryStep, "canary"))
        .collect();
    f.store.append(&many).await.expect("append");

    let capped = f.store.list(&query(MAX_PAGE * 10)).await.expect("capped");
    assert_eq!(capped.len(), MAX_PAGE);
    // A zero limit still returns one (the adapters agree with the memory log).
    assert_eq!(f.store.list(&query(0)).await.expect("zero").len(), 1);

    let first = f.store.list(&query(2)).await.expect("page 1");
    let second = f
        .store
        .list(&ChangeQuery {
            before_id: Some(first[1].id),
            ..query(2)
        })
        .await
        .expect("page 2");
    assert_eq!(second.len(), 2);
    assert!(second[0].id < first[1].id);
    assert_eq!(second[0].event.at, first[1].event.at - Duration::minutes(1));

    // Walking every page visits every event once.
    let mut seen = 0;
    let mut before = None;
    loop {
        let page = f
            .store
            .list(&ChangeQuery {
                before_id: before,
                ..query(200)
            })
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen += page.len();
    }
    assert_eq!(seen, many.len());
    f.tasks.shutdown().await;
}

async fn texts_are_stored_within_their_bounds(url: String) {
    let f = open_default(&url).await;
    let long = "é\"'<b>;".repeat(MAX_SUMMARY_CHARS);
    f.store.record(ChangeEvent::new(
        start(),
        ChangeKind::Incident,
        long.clone(),
        long.clone(),
        long.clone(),
        long.clone(),
    ));
    f.store.flush().await;
    let stored = f.store.list(&query(1)).await.expect("list");
    let event = &stored[0].event;
    assert_eq!(event.summary.chars().count(), MAX_SUMMARY_CHARS);
    for name in [&event.service, &event.actor, &event.subject] {
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(long.starts_with(name.as_str()));
    }
    f.tasks.shutdown().await;
}

async fn keeps_at_most_max_events(url: String) {
    let config = ChangesConfig {
        max_events: 5,
        ..ChangesConfig::default()
    };
    let f = open(&url, config, WriterOptions::default()).await;
    for minute in 0..8 {
        f.store
            .record(event(minute, ChangeKind::ConfigReload, "platform"));
    }
    f.store.flush().await;
    assert_eq!(f.store.count().await.expect("count"), 5);
    let kept = f.store.list(&query(10)).await.expect("list");
    assert_eq!(kept[0].event.at, start() + Duration::minutes(7));
    assert_eq!(kept[4].event.at, start() + Duration::minutes(3));
    f.tasks.shutdown().await;
}

async fn prunes_by_age_on_the_clock(url: String) {
    let config = ChangesConfig {
        max_age: std::time::Duration::from_secs(24 * 3600),
        ..ChangesConfig::default()
    };
    let f = open(&url, config, WriterOptions::default()).await;
    f.store
        .record(event(-2 * 24 * 60, ChangeKind::Drill, "drill"));
    f.store.record(event(0, ChangeKind::Drill, "drill"));
    f.store.flush().await;
    // Pruned at start, not again before `prune_every` passes on the clock.
    assert_eq!(f.store.count().await.expect("count"), 2);

    f.clock.advance(Duration::minutes(2));
    f.store.flush().await;
    let kept = f.store.list(&query(10)).await.expect("list");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].event.at, start());

    // A day later the other one ages out too.
    f.clock.advance(Duration::hours(24));
    f.store.flush().await;
    assert_eq!(f.store.count().await.expect("count"), 0);
    f.tasks.shutdown().await;
}

async fn a_full_queue_drops_and_counts(url: String) {
    let options = WriterOptions {
        queue_capacity: 2,
        ..WriterOptions::default()
    };
    let f = open(&url, ChangesConfig::default(), options).await;
    // On this single-threaded runtime the writer cannot run before the
    // next await: two fit in the queue, three are dropped, none blocks.
    for minute in 0..5 {
        f.store
            .record(event(minute, ChangeKind::SplitChanged, "gateway"));
    }
    assert_eq!(f.store.dropped(), 3);
    f.store.flush().await;
    assert_eq!(f.store.count().await.expect("count"), 2);
    f.tasks.shutdown().await;
}

async fn a_lost_database_drops_and_counts(url: String) {
    let f = open_default(&url).await;
    f.store.record(event(0, ChangeKind::KeyRevoked, "gateway"));
    f.store.flush().await;
    assert_eq!(f.store.dropped(), 0);
    f.store.pool().close().await;
    f.store.record(event(1, ChangeKind::KeyRevoked, "gateway"));
    f.store.record(event(2, ChangeKind::KeyRevoked, "gateway"));
    f.store.flush().await;
    assert_eq!(f.store.dropped(), 2);
    assert!(f.store.list(&query(1)).await.is_err());
    f.tasks.shutdown().await;
}

async fn shutdown_writes_what_is_queued(url: String) {
    let f = open_default(&url).await;
    for minute in 0..3 {
        f.store
            .record(event(minute, ChangeKind::ModelUnloaded, "inference"));
    }
    f.tasks.shutdown().await;
    assert_eq!(f.store.count().await.expect("count"), 3);
    // After shutdown nothing is queued any more: dropped and counted.
    f.store
        .record(event(9, ChangeKind::ModelUnloaded, "inference"));
    assert_eq!(f.store.dropped(), 1);
    f.store.flush().await;
    assert_eq!(f.store.count().await.expect("count"), 3);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("dir");
                    super::$name(changes::database_url(None, dir.path())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(testkit::postgres().create_database()).await;
                }
            )*
        }
    };
}

conformance!(
    records_round_trip_newest_first_with_filters,
    pages_by_id_and_caps_the_limit,
    texts_are_stored_within_their_bounds,
    keeps_at_most_max_events,
    prunes_by_age_on_the_clock,
    a_full_queue_drops_and_counts,
    a_lost_database_drops_and_counts,
    shutdown_writes_what_is_queued,
);
