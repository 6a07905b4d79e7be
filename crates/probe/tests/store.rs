//! The probes store, one suite run on SQLite and on PostgreSQL (testkit):
//! daily aggregates, 90-day pruning on a manual clock, incident notes.

use chrono::{TimeZone, Utc};
use kit::storage::PoolConfig;
use probe::incident::{IncidentStatus, IncidentUpdate, NewIncident};
use probe::store::{day_of, ProbeStore, RETENTION_DAYS};
use std::time::Duration;

async fn suite(store: ProbeStore) {
    let clock = kit::ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 0).unwrap());
    use kit::Clock;
    let first_day = day_of(clock.now());
    // Two checks on day one (one failed), one just after midnight.
    store
        .record("web", "Web", clock.now(), true, Duration::from_millis(10))
        .await
        .unwrap();
    store
        .record("web", "Web", clock.now(), false, Duration::from_millis(30))
        .await
        .unwrap();
    clock.advance(chrono::Duration::minutes(2));
    store
        .record("web", "Web", clock.now(), true, Duration::from_millis(5))
        .await
        .unwrap();
    let days = store.days_since(first_day).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(
        (days[0].day, days[0].checks, days[0].successes),
        (first_day, 2, 1)
    );
    assert_eq!(days[0].duration, Duration::from_millis(40));
    assert_eq!(
        (days[1].day, days[1].checks, days[1].successes),
        (first_day + 1, 1, 1)
    );

    // 90 days on, day one is past retention and pruned; day two is kept.
    clock.advance(chrono::Duration::days(RETENTION_DAYS - 1));
    assert_eq!(store.prune(clock.now()).await.unwrap(), 1);
    let days = store.days_since(0).await.unwrap();
    assert_eq!(
        days.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![first_day + 1]
    );
    assert_eq!(store.prune(clock.now()).await.unwrap(), 0);

    // Incidents: created, listed newest first, updated.
    let a = store
        .create_incident(
            &NewIncident::parse("Web", "Slow pages", Some("Looking"), None).unwrap(),
            "cli:ops",
            clock.now(),
        )
        .await
        .unwrap();
    clock.advance(chrono::Duration::seconds(60));
    let b = store
        .create_incident(
            &NewIncident::parse("Web", "<b>Down</b>", None, Some("identified")).unwrap(),
            "key:ops",
            clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, IncidentStatus::Investigating);
    assert_eq!(b.title, "<b>Down</b>");
    let listed = store.incidents(10).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
    assert_eq!(listed[1], a);
    clock.advance(chrono::Duration::seconds(60));
    let update = IncidentUpdate::parse(None, None, Some("resolved")).unwrap();
    let resolved = store
        .update_incident(a.id, &update, clock.now())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert_eq!(resolved.title, "Slow pages");
    assert_eq!(resolved.body, "Looking");
    assert_eq!(resolved.author, "cli:ops");
    assert_eq!(resolved.updated_at, clock.now());
    assert!(store
        .update_incident(9_999, &update, clock.now())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("probes.db").display());
    suite(
        ProbeStore::open(&url, &PoolConfig::default())
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres() {
    let url = testkit::postgres().create_database();
    suite(
        ProbeStore::open(&url, &PoolConfig::default())
            .await
            .unwrap(),
    )
    .await;
}
