//! One storage conformance suite, run against every `LinkStore` adapter:
//! SQLite in a temp file and PostgreSQL on the harness's private server
//! (a fresh database per test).

use chrono::{DateTime, Utc};
use shortener::domain::{LinkPatch, NewLink, RedirectStatus, Slug, Tag, Tags, TargetUrl, Visit};
use shortener::storage::{Claim, LinkStore, ListQuery, PostgresStore, SqliteStore, StoreError};
use std::sync::Arc;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

fn new_link(url: &str) -> NewLink {
    NewLink {
        slug: None,
        url: TargetUrl::parse(url).expect("url"),
        redirect_status: RedirectStatus::Found,
        expires_at: None,
        max_visits: None,
        tags: Tags::default(),
    }
}

fn visit(link_id: i64, when: &str, referrer: Option<&str>, bot: bool, counted: bool) -> Visit {
    Visit {
        link_id,
        at: at(when),
        referrer_host: referrer.map(str::to_string),
        client_ip: Some("203.0.113.0".parse().expect("ip")),
        user_agent: Some("test".into()),
        is_bot: bot,
        counted,
    }
}

async fn create_then_find_round_trips(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00.123456Z");
    let link = NewLink {
        redirect_status: RedirectStatus::Permanent,
        expires_at: Some(at("2031-02-03T04:05:06Z")),
        max_visits: Some(42),
        tags: Tags::parse(&["b", "a"]).expect("tags"),
        ..new_link("https://example.com/path?q=1")
    };
    let created = store.create(&slug("rt"), &link, now).await.expect("create");
    let found = store
        .find(&slug("rt"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(created, found);
    assert_eq!(found.url.as_str(), "https://example.com/path?q=1");
    assert_eq!(found.redirect_status, RedirectStatus::Permanent);
    assert_eq!(found.max_visits, Some(42));
    assert_eq!(found.visit_count, 0);
    assert_eq!(
        found.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(store.find(&slug("absent")).await.expect("find").is_none());
}

async fn duplicate_slugs_are_refused(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    store
        .create(&slug("dup"), &new_link("https://a.example/"), now)
        .await
        .expect("create");
    let err = store
        .create(&slug("dup"), &new_link("https://b.example/"), now)
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::Conflict(ref what) if what == "slug `dup`"),
        "{err:?}"
    );
    let kept = store
        .find(&slug("dup"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(kept.url.as_str(), "https://a.example/");
}

async fn list_pages_in_id_order_and_filters_by_tag(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            vec!["even"]
        } else {
            vec!["odd"]
        };
        let link = NewLink {
            tags: Tags::parse(&tags).expect("tags"),
            ..new_link("https://e.example/")
        };
        store
            .create(&slug(&format!("l{i}")), &link, now)
            .await
            .expect("create");
    }
    let first = store
        .list(&ListQuery {
            tag: None,
            after_id: 0,
            limit: 2,
        })
        .await
        .expect("list");
    let names: Vec<_> = first.iter().map(|l| l.slug.to_string()).collect();
    assert_eq!(names, ["l0", "l1"]);
    let rest = store
        .list(&ListQuery {
            tag: None,
            after_id: first[1].id,
            limit: 10,
        })
        .await
        .expect("list");
    let names: Vec<_> = rest.iter().map(|l| l.slug.to_string()).collect();
    assert_eq!(names, ["l2", "l3", "l4"]);
    let even = store
        .list(&ListQuery {
            tag: Some(Tag::parse("even").expect("tag")),
            after_id: 0,
            limit: 10,
        })
        .await
        .expect("list");
    let names: Vec<_> = even.iter().map(|l| l.slug.to_string()).collect();
    assert_eq!(names, ["l0", "l2", "l4"]);
    assert!(even
        .iter()
        .all(|l| l.tags.iter().map(Tag::as_str).eq(["even"])));
}

async fn update_applies_and_clears_fields(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let link = NewLink {
        expires_at: Some(at("2031-01-01T00:00:00Z")),
        max_visits: Some(3),
        tags: Tags::parse(&["x"]).expect("tags"),
        ..new_link("https://old.example/")
    };
    store.create(&slug("up"), &link, now).await.expect("create");
    let later = at("2030-01-02T00:00:00Z");
    let patch = LinkPatch {
        url: Some(TargetUrl::parse("https://new.example/").expect("url")),
        redirect_status: Some(RedirectStatus::Temporary),
        expires_at: Some(None),
        max_visits: Some(Some(9)),
        tags: Some(Tags::parse(&["y", "z"]).expect("tags")),
    };
    let updated = store
        .update(&slug("up"), &patch, later)
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(updated.url.as_str(), "https://new.example/");
    assert_eq!(updated.redirect_status, RedirectStatus::Temporary);
    assert_eq!(updated.expires_at, None);
    assert_eq!(updated.max_visits, Some(9));
    assert_eq!(updated.updated_at, later);
    assert_eq!(
        updated.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
        ["y", "z"]
    );

    let untouched = store
        .update(&slug("up"), &LinkPatch::default(), later)
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(untouched.url, updated.url);
    assert_eq!(untouched.max_visits, Some(9));
    assert!(store
        .update(&slug("nope"), &patch, later)
        .await
        .expect("update")
        .is_none());
}

async fn delete_removes_link_tags_and_visits(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let link = NewLink {
        tags: Tags::parse(&["t"]).expect("tags"),
        ..new_link("https://e.example/")
    };
    let created = store
        .create(&slug("del"), &link, now)
        .await
        .expect("create");
    store
        .record_visits(&[visit(
            created.id,
            "2030-01-01T00:00:01Z",
            None,
            false,
            false,
        )])
        .await
        .expect("visits");
    assert!(store.delete(&slug("del")).await.expect("delete"));
    assert!(!store.delete(&slug("del")).await.expect("delete"));
    let orphans = store
        .visit_summary(created.id, at("2000-01-01T00:00:00Z"), 10)
        .await
        .expect("summary");
    assert_eq!(orphans.total, 0, "the deleted link's visits are gone");
    assert!(store.find(&slug("del")).await.expect("find").is_none());

    // The same slug again is a new link with no history.
    let again = store
        .create(&slug("del"), &link, now)
        .await
        .expect("create");
    let summary = store
        .visit_summary(again.id, at("2000-01-01T00:00:00Z"), 10)
        .await
        .expect("summary");
    assert_eq!(summary.total, 0);
    assert_eq!(again.visit_count, 0);
}

async fn claims_hold_max_visits_exactly_under_concurrency(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let limited = NewLink {
        max_visits: Some(10),
        ..new_link("https://e.example/")
    };
    let link = store
        .create(&slug("lim"), &limited, now)
        .await
        .expect("create");
    let claims = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_visit(link.id).await.expect("claim") })
    });
    let mut granted = 0;
    for claim in claims {
        match claim.await.expect("join") {
            Claim::Granted => granted += 1,
            Claim::Exhausted => {}
            Claim::Gone => panic!("link vanished"),
        }
    }
    assert_eq!(granted, 10);
    let stored = store
        .find(&slug("lim"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored.visit_count, 10);

    let open = store
        .create(&slug("open"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    assert_eq!(
        store.claim_visit(open.id).await.expect("claim"),
        Claim::Granted
    );
    assert!(store.delete(&slug("open")).await.expect("delete"));
    assert_eq!(
        store.claim_visit(open.id).await.expect("claim"),
        Claim::Gone
    );
}

async fn visits_are_counted_once_and_summarised(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let link = store
        .create(&slug("v"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    let gone = store
        .create(&slug("gone"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    assert!(store.delete(&slug("gone")).await.expect("delete"));
    let batch = vec![
        visit(
            link.id,
            "2030-01-01T10:00:00Z",
            Some("a.example"),
            false,
            false,
        ),
        visit(
            link.id,
            "2030-01-01T11:00:00Z",
            Some("a.example"),
            false,
            false,
        ),
        visit(
            link.id,
            "2030-01-01T23:59:59Z",
            Some("b.example"),
            true,
            false,
        ),
        visit(link.id, "2030-01-02T00:00:00Z", None, true, false),
        // Already counted by a claim: stored, not counted again.
        visit(link.id, "2030-01-02T01:00:00Z", None, false, true),
        // The link was deleted while the visit was buffered: skipped.
        visit(gone.id, "2030-01-02T01:00:00Z", None, false, false),
    ];
    store.record_visits(&batch).await.expect("visits");
    store.record_visits(&[]).await.expect("empty batch");
    let stored = store.find(&slug("v")).await.expect("find").expect("exists");
    assert_eq!(stored.visit_count, 4);

    let summary = store
        .visit_summary(link.id, at("2029-12-01T00:00:00Z"), 10)
        .await
        .expect("summary");
    assert_eq!(summary.total, 5);
    assert_eq!(summary.bots, 2);
    assert_eq!(summary.humans, 3);
    let days: Vec<_> = summary
        .per_day
        .iter()
        .map(|d| (d.date.to_string(), d.visits))
        .collect();
    assert_eq!(
        days,
        [("2030-01-01".to_string(), 3), ("2030-01-02".to_string(), 2)]
    );
    let referrers: Vec<_> = summary
        .top_referrers
        .iter()
        .map(|r| (r.host.clone(), r.visits))
        .collect();
    assert_eq!(
        referrers,
        [
            (None, 2),
            (Some("a.example".to_string()), 2),
            (Some("b.example".to_string()), 1)
        ]
    );

    let since_second_day = store
        .visit_summary(link.id, at("2030-01-02T00:00:00Z"), 1)
        .await
        .expect("summary");
    assert_eq!(since_second_day.total, 2);
    assert_eq!(since_second_day.top_referrers.len(), 1);
    assert!(store.pool().ping().await.is_ok());
}

/// A batch whose visits of a link were all counted by claims (a
/// `max_visits` link) changes no count, and is still checked against
/// deleted links: the existing link's visits are stored, the deleted
/// link's skipped.
async fn counted_visits_are_stored_only_for_links_that_exist(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let limited = NewLink {
        max_visits: Some(10),
        ..new_link("https://e.example/")
    };
    let kept = store
        .create(&slug("kept"), &limited, now)
        .await
        .expect("create");
    let gone = store
        .create(&slug("gone-counted"), &limited, now)
        .await
        .expect("create");
    for id in [kept.id, gone.id] {
        assert_eq!(store.claim_visit(id).await.expect("claim"), Claim::Granted);
    }
    assert!(store.delete(&slug("gone-counted")).await.expect("delete"));
    let batch = [
        visit(kept.id, "2030-01-01T10:00:00Z", None, false, true),
        visit(gone.id, "2030-01-01T10:00:00Z", None, false, true),
    ];
    store.record_visits(&batch).await.expect("visits");
    let stored = store
        .find(&slug("kept"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored.visit_count, 1, "counted once, by the claim");
    let since = at("2029-12-01T00:00:00Z");
    let summary = store
        .visit_summary(kept.id, since, 10)
        .await
        .expect("summary");
    assert_eq!(summary.total, 1);
    let orphans = store
        .visit_summary(gone.id, since, 10)
        .await
        .expect("summary");
    assert_eq!(orphans.total, 0, "the deleted link's visit is skipped");
}

async fn large_batches_are_written_whole(store: Arc<dyn LinkStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let link = store
        .create(&slug("big"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    let batch: Vec<Visit> = (0..2500)
        .map(|i| visit(link.id, "2030-01-01T10:00:00Z", None, i % 5 == 0, false))
        .collect();
    store.record_visits(&batch).await.expect("visits");
    let stored = store
        .find(&slug("big"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored.visit_count, 2500);
    let summary = store
        .visit_summary(link.id, at("2029-12-01T00:00:00Z"), 10)
        .await
        .expect("summary");
    assert_eq!((summary.total, summary.bots), (2500, 500));
}

async fn retention_removes_expired_visits_only(store: Arc<dyn LinkStore>) {
    let now = at("2030-06-10T12:00:00Z");
    let link = store
        .create(&slug("ret"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    let days = [
        "2030-05-31",
        "2030-06-05",
        "2030-06-07",
        "2030-06-09",
        "2030-06-10",
    ];
    let batch: Vec<Visit> = days
        .iter()
        .map(|d| visit(link.id, &format!("{d}T06:00:00Z"), None, false, false))
        .collect();
    store.record_visits(&batch).await.expect("visits");
    let total = || async {
        store
            .visit_summary(link.id, at("2000-01-01T00:00:00Z"), 10)
            .await
            .expect("summary")
            .total
    };

    store.maintain_visits(now, None).await.expect("keep all");
    assert_eq!(total().await, 5, "no retention keeps everything");
    // Three days: everything before 2030-06-07T12:00 goes.
    let three_days = std::time::Duration::from_secs(3 * 86_400);
    store
        .maintain_visits(now, Some(three_days))
        .await
        .expect("retention");
    assert_eq!(total().await, 2);
    let link = store.find(&slug("ret")).await.expect("find").expect("kept");
    assert_eq!(link.visit_count, 5, "the all-time count stays");
    // New visits keep arriving after a round.
    store
        .record_visits(&[visit(link.id, "2030-06-10T13:00:00Z", None, false, false)])
        .await
        .expect("visits");
    assert_eq!(total().await, 3);
}

/// SQLite only: visits are stored a block per link and batch, and
/// retention must count every visit it removes, from whole blocks and
/// from a block that straddles the cutoff (whose key stays).
#[tokio::test]
async fn sqlite_retention_counts_every_visit_it_removes_whole_blocks_and_trimmed() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::connect(&url, &Default::default())
        .await
        .expect("sqlite");
    let now = at("2030-06-10T12:00:00Z");
    let link = store
        .create(&slug("ret"), &new_link("https://e.example/"), now)
        .await
        .expect("create");
    let visit = |when: &str| visit(link.id, when, None, false, false);
    store
        .record_visits(&[visit("2030-06-01T00:00:00Z"), visit("2030-06-02T00:00:00Z")])
        .await
        .expect("a batch wholly expired");
    store
        .record_visits(&[
            visit("2030-06-09T00:00:00Z"),
            visit("2030-06-03T00:00:00Z"),
            visit("2030-06-10T00:00:00Z"),
        ])
        .await
        .expect("a batch straddling the cutoff");
    let five_days = Some(std::time::Duration::from_secs(5 * 86_400));
    let report = store
        .maintain_visits(now, five_days)
        .await
        .expect("retention");
    assert_eq!(report.deleted, 3, "two whole, one trimmed");
    let summary = store
        .visit_summary(link.id, at("2000-01-01T00:00:00Z"), 10)
        .await
        .expect("summary");
    assert_eq!(summary.total, 2);
    let again = store
        .maintain_visits(now, five_days)
        .await
        .expect("retention again");
    assert_eq!(again.deleted, 0, "nothing left to remove");
    let kit::storage::Pool::Sqlite(pool) = store.pool() else {
        panic!("a SQLite store has a SQLite pool");
    };
    let first: i64 = sqlx::query_scalar("SELECT MIN(first_at) FROM visit_blocks")
        .fetch_one(&pool)
        .await
        .expect("first_at");
    assert_eq!(
        first,
        at("2030-06-09T00:00:00Z").timestamp_micros(),
        "the trimmed block starts at its earliest kept visit"
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("t.db").display());
                    let store = std::sync::Arc::new(super::SqliteStore::connect(&url, &Default::default()).await.expect("sqlite"));
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let url = testkit::postgres().create_database();
                    let store = std::sync::Arc::new(super::PostgresStore::connect(&url, &Default::default()).await.expect("postgres"));
                    super::$case(store).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_find_round_trips,
    duplicate_slugs_are_refused,
    list_pages_in_id_order_and_filters_by_tag,
    update_applies_and_clears_fields,
    delete_removes_link_tags_and_visits,
    claims_hold_max_visits_exactly_under_concurrency,
    visits_are_counted_once_and_summarised,
    counted_visits_are_stored_only_for_links_that_exist,
    large_batches_are_written_whole,
    retention_removes_expired_visits_only,
);
