//! The visits table on PostgreSQL: day partitions that follow the module's
//! clock (an injected `ManualClock`: days pass without waiting),
//! retention by dropping partitions, the default partition that takes
//! any date, and the `COPY` writer's rows against the statement it
//! replaced.

use chrono::{DateTime, Duration as Days, Utc};
use kit::{Clock, ManualClock};
use shortener::domain::{NewLink, RedirectStatus, Slug, Tags, TargetUrl, Visit};
use shortener::storage::{LinkStore, PostgresStore};
use shortener::{Shortener, ShortenerConfig};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn new_link() -> NewLink {
    NewLink {
        slug: None,
        url: TargetUrl::parse("https://e.example/").expect("url"),
        redirect_status: RedirectStatus::Found,
        expires_at: None,
        max_visits: None,
        tags: Tags::default(),
    }
}

fn visit(link_id: i64, when: DateTime<Utc>, user_agent: &str) -> Visit {
    Visit {
        link_id,
        at: when,
        referrer_host: None,
        client_ip: None,
        user_agent: Some(user_agent.into()),
        is_bot: false,
        counted: false,
    }
}

async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET search_path TO shortener").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .expect("pool")
}

/// The day partitions, by name (without the default one), in order.
async fn day_partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'visits'::regclass AND c.relname <> 'visits_default' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partitions")
}

/// Which partition holds each user agent's visit.
async fn placement(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query("SELECT user_agent, tableoid::regclass::text AS part FROM visits ORDER BY 1")
        .fetch_all(pool)
        .await
        .expect("placement")
        .iter()
        .map(|r| (r.get("user_agent"), r.get("part")))
        .collect()
}

fn names(first: &str, days: i64) -> Vec<String> {
    let first = at(&format!("{first}T00:00:00Z"));
    (0..days)
        .map(|d| format!("visits_p{}", (first + Days::days(d)).format("%Y%m%d")))
        .collect()
}

#[tokio::test]
async fn partitions_follow_the_clock_and_retention_drops_whole_days() {
    let url = testkit::postgres().create_database();
    let store: Arc<dyn LinkStore> = Arc::new(
        PostgresStore::connect(&url, &Default::default())
            .await
            .expect("postgres"),
    );
    let clock = ManualClock::new(at("2030-06-01T12:00:00Z"));
    let config = ShortenerConfig {
        visit_retention: Some(Duration::from_secs(3 * 86_400)),
        ..ShortenerConfig::default()
    };
    let module = Shortener::build(
        config,
        store.clone(),
        Arc::new(clock.clone()),
        "http://127.0.0.1:1",
        kit::tasks::Supervisor::new().for_module(shortener::SERVICE),
    )
    .await
    .expect("module");
    let db = pool(&url).await;

    // Yesterday, today and a week ahead, whoever ran the round first (the
    // module's own task also runs one at start).
    module.maintain_visits().await.expect("maintain");
    assert_eq!(day_partitions(&db).await, names("2030-05-31", 9));
    let again = module.maintain_visits().await.expect("maintain");
    assert!(again.created.is_empty() && again.dropped.is_empty());

    let link = store
        .create(&Slug::parse("p").expect("slug"), &new_link(), clock.now())
        .await
        .expect("link");
    let batch = [
        visit(link.id, at("2030-06-01T12:00:00Z"), "today"),
        visit(link.id, at("2030-06-02T00:00:00Z"), "tomorrow"),
        // No partition for these dates: the default one takes them.
        visit(link.id, at("1990-01-01T00:00:00Z"), "past"),
        visit(link.id, at("2030-06-20T08:00:00Z"), "future"),
    ];
    store.record_visits(&batch).await.expect("visits");
    assert_eq!(
        placement(&db).await,
        [
            ("future".into(), "visits_default".into()),
            ("past".into(), "visits_default".into()),
            ("today".into(), "visits_p20300601".into()),
            ("tomorrow".into(), "visits_p20300602".into()),
        ]
    );

    // Two weeks later: the new week's partitions exist (the future visit
    // moved out of the default partition into its day), the days before
    // the cutoff (2030-06-12T12:00) are dropped, and the default
    // partition's expired visit is deleted.
    clock.advance(Days::days(14));
    let report = module.maintain_visits().await.expect("maintain");
    assert_eq!(report.dropped.len(), 9, "{report:?}");
    assert_eq!(report.deleted, 1);
    assert_eq!(day_partitions(&db).await, names("2030-06-14", 9));
    assert_eq!(
        placement(&db).await,
        [("future".into(), "visits_p20300620".into())]
    );
    let summary = store
        .visit_summary(link.id, at("1970-01-01T00:00:00Z"), 5)
        .await
        .expect("summary");
    assert_eq!(summary.total, 1);
    // Retention removes history, not the link's all-time count.
    let stored = store
        .find(&Slug::parse("p").expect("slug"))
        .await
        .expect("find")
        .expect("link");
    assert_eq!(stored.visit_count, 4);
    module.shutdown().await;
}

#[tokio::test]
async fn without_retention_nothing_is_dropped() {
    let url = testkit::postgres().create_database();
    let store = PostgresStore::connect(&url, &Default::default())
        .await
        .expect("postgres");
    let start = at("2030-06-01T12:00:00Z");
    store.maintain_visits(start, None).await.expect("maintain");
    let later = store
        .maintain_visits(start + Days::days(400), None)
        .await
        .expect("maintain");
    assert!(later.dropped.is_empty());
    assert_eq!(later.created.len(), 9);
    assert_eq!(day_partitions(&pool(&url).await).await.len(), 18);
}

/// The `INSERT ... SELECT FROM UNNEST` the writer used before `COPY`.
const UNNEST_INSERT: &str =
    "INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bool[])";

#[tokio::test]
async fn copy_writes_the_rows_the_unnest_insert_wrote() {
    let url = testkit::postgres().create_database();
    let store = PostgresStore::connect(&url, &Default::default())
        .await
        .expect("postgres");
    let now = at("2030-06-01T12:00:00Z");
    store.maintain_visits(now, None).await.expect("maintain");
    let slug = |s: &str| Slug::parse(s).expect("slug");
    let by_copy = store.create(&slug("c"), &new_link(), now).await.expect("c");
    let by_insert = store.create(&slug("i"), &new_link(), now).await.expect("i");
    let texts = [
        None,
        Some(String::new()),
        Some("tab\there, new\nline, back\\slash, «ünïcödé» 🚀".to_string()),
    ];
    let ips = [None, Some("192.0.2.0"), Some("2001:db8::")];
    let batch: Vec<Visit> = (0..30)
        .map(|i| Visit {
            link_id: by_copy.id,
            at: now + Days::microseconds(i * 1_234_567),
            referrer_host: texts[(i % 3) as usize].clone(),
            client_ip: ips[(i % 3) as usize].map(|ip| ip.parse().expect("ip")),
            user_agent: texts[((i + 1) % 3) as usize].clone(),
            is_bot: i % 2 == 0,
            counted: i % 5 == 0,
        })
        .collect();
    store.record_visits(&batch).await.expect("copy");

    let db = pool(&url).await;
    sqlx::query(UNNEST_INSERT)
        .bind(vec![by_insert.id; batch.len()])
        .bind(
            batch
                .iter()
                .map(|v| v.at.timestamp_micros())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|v| v.referrer_host.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|v| v.client_ip.map(|ip| ip.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|v| v.user_agent.clone())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|v| v.is_bot).collect::<Vec<_>>())
        .execute(&db)
        .await
        .expect("unnest insert");

    let rows = |link: i64| {
        let db = db.clone();
        async move {
            sqlx::query(
                "SELECT visited_at, referrer_host, client_ip, user_agent, is_bot FROM visits
                 WHERE link_id = $1 ORDER BY visited_at",
            )
            .bind(link)
            .fetch_all(&db)
            .await
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r.get::<i64, _>(0),
                    r.get::<Option<String>, _>(1),
                    r.get::<Option<String>, _>(2),
                    r.get::<Option<String>, _>(3),
                    r.get::<bool, _>(4),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    let copied = rows(by_copy.id).await;
    assert_eq!(copied.len(), 30);
    assert_eq!(copied, rows(by_insert.id).await);
    let stored = store.find(&slug("c")).await.expect("find").expect("c");
    assert_eq!(stored.visit_count, 24, "visits not counted on the redirect");
}
