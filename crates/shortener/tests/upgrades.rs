//! Upgrading a store written by an older release, on real databases:
//! build the old layout the old way (the old release's migrations, through
//! sqlx's migrator, with a row written as that release wrote it), open it
//! with this release, and read the link back.
//!
//! - PostgreSQL: the shortener lived in `public` with `TIMESTAMPTZ` times
//!   and one `visits` table; now it lives in schema `shortener` with Unix
//!   microseconds and `visits` partitioned by day.
//! - SQLite: times were Unix milliseconds; now microseconds.
//!
//! Also: replicas opening one database at once (fresh or old) all succeed.

use chrono::{DateTime, Utc};
use kit::storage::PoolConfig;
use shortener::domain::{NewLink, RedirectStatus, Slug, Tags, TargetUrl, Visit};
use shortener::storage::{connect, LinkStore, SqliteStore};
use sqlx::migrate::Migrator;
use sqlx::Connection;
use std::path::Path;
use std::sync::Arc;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

/// The migrator of a release that had the first `count` migrations of
/// `engine`: the same files, so the same checksums in the history.
async fn old_release(engine: &str, count: usize, dir: &Path) -> Migrator {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut files: Vec<_> = std::fs::read_dir(&source)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let target = dir.join(engine);
    std::fs::create_dir_all(&target).expect("dir");
    for file in files.iter().take(count) {
        let name = file.file_name().expect("name");
        std::fs::copy(file, target.join(name)).expect("copy");
    }
    Migrator::new(target).await.expect("old migrator")
}

/// What the old PostgreSQL release wrote: a link, two tags, two visits.
const OLD_POSTGRES_ROWS: &str = "
    INSERT INTO links (slug, url, redirect_status, created_at, updated_at, expires_at, max_visits, visit_count)
    VALUES ('old', 'https://old.example/', 301, '2030-01-01T00:00:00.123456Z',
            '2030-01-02T00:00:00Z', '2031-01-01T00:00:00Z', 10, 2);
    INSERT INTO link_tags (link_id, tag) SELECT id, 'legacy' FROM links WHERE slug = 'old';
    INSERT INTO link_tags (link_id, tag) SELECT id, 'v1' FROM links WHERE slug = 'old';
    INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
    SELECT id, '2030-01-03T10:00:00Z', 'r.example', '192.0.2.0', 'curl/8', false FROM links WHERE slug = 'old';
    INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
    SELECT id, '2030-01-04T10:00:00Z', NULL, NULL, 'bot', true FROM links WHERE slug = 'old';
";

async fn old_postgres_layout(url: &str) {
    let dir = tempfile::tempdir().expect("dir");
    // The old release: migrations 0001 only, default search_path (`public`).
    let migrator = old_release("postgres", 1, dir.path()).await;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    migrator.run(&mut conn).await.expect("old migrations");
    sqlx::raw_sql(OLD_POSTGRES_ROWS)
        .execute(&mut conn)
        .await
        .expect("old rows");
    conn.close().await.expect("close");
}

async fn assert_old_link_is_read(store: &Arc<dyn LinkStore>) {
    let link = store
        .find(&slug("old"))
        .await
        .expect("find")
        .expect("the old link survived the upgrade");
    assert_eq!(link.url.as_str(), "https://old.example/");
    assert_eq!(link.redirect_status, RedirectStatus::MovedPermanently);
    assert_eq!(link.created_at, at("2030-01-01T00:00:00.123456Z"));
    assert_eq!(link.updated_at, at("2030-01-02T00:00:00Z"));
    assert_eq!(link.expires_at, Some(at("2031-01-01T00:00:00Z")));
    assert_eq!((link.max_visits, link.visit_count), (Some(10), 2));
    let tags: Vec<&str> = link.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["legacy", "v1"]);
    let summary = store
        .visit_summary(link.id, at("2030-01-01T00:00:00Z"), 5)
        .await
        .expect("summary");
    assert_eq!((summary.total, summary.bots), (2, 1));
    let days: Vec<String> = summary.per_day.iter().map(|d| d.date.to_string()).collect();
    assert_eq!(days, ["2030-01-03", "2030-01-04"]);
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

#[tokio::test]
async fn an_upgraded_postgres_replica_finds_links_written_in_public() {
    let url = testkit::postgres().create_database();
    old_postgres_layout(&url).await;

    let store = connect(&url, &PoolConfig::default())
        .await
        .expect("upgrade");
    assert_old_link_is_read(&store).await;

    // The id sequence moved with its table: new links do not collide.
    let new = store
        .create(&slug("new"), &new_link("https://new.example/"), Utc::now())
        .await
        .expect("create after upgrade");
    let old = store.find(&slug("old")).await.expect("find").expect("old");
    assert!(new.id > old.id);
    // Visits keep going in, with ids after the old ones.
    let visit = Visit {
        link_id: new.id,
        at: at("2030-01-05T00:00:00Z"),
        referrer_host: None,
        client_ip: None,
        user_agent: None,
        is_bot: true,
        counted: false,
    };
    store.record_visits(&[visit]).await.expect("visit");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM shortener.visits ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("ids");
    assert_eq!(ids.len(), 3);
    assert!(ids[2] > ids[1]);

    // Nothing of the shortener is left in `public`, and the history moved.
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert!(left.is_empty(), "left in public: {left:?}");
    let history: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM shortener._sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("history");
    assert_eq!(history, [1, 2, 3]);

    // Visits became a table partitioned by day; the old rows moved into
    // the partitions of their days; the new one, whose day has no
    // partition yet (no maintenance ran here), is in the default one.
    let placed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM shortener.visits GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("placement");
    assert_eq!(
        placed,
        [
            ("shortener.visits_default".to_string(), 1),
            ("shortener.visits_p20300103".to_string(), 1),
            ("shortener.visits_p20300104".to_string(), 1)
        ]
    );
    let kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = 'shortener.visits'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .expect("relkind");
    assert_eq!(kind, "p");

    // A second start finds everything in place.
    drop(store);
    let again = connect(&url, &PoolConfig::default()).await.expect("reopen");
    assert_old_link_is_read(&again).await;
}

#[tokio::test]
async fn replicas_upgrading_one_postgres_database_at_once_all_succeed() {
    let url = testkit::postgres().create_database();
    old_postgres_layout(&url).await;
    let small = PoolConfig::with_max_connections(2);
    let opens = (0..4).map(|_| connect(&url, &small));
    let stores = futures::future::join_all(opens).await;
    for store in stores {
        let store = store.expect("every replica opens");
        assert_old_link_is_read(&store).await;
    }
}

#[tokio::test]
async fn replicas_opening_one_fresh_postgres_database_at_once_all_succeed() {
    let url = testkit::postgres().create_database();
    let small = PoolConfig::with_max_connections(2);
    let opens = (0..6).map(|_| connect(&url, &small));
    let stores = futures::future::join_all(opens).await;
    let stores: Vec<_> = stores
        .into_iter()
        .map(|s| s.expect("every replica opens"))
        .collect();
    stores[0]
        .create(&slug("one"), &new_link("https://one.example/"), Utc::now())
        .await
        .expect("create");
    for store in &stores {
        assert!(store.find(&slug("one")).await.expect("find").is_some());
    }
}

#[tokio::test]
async fn an_upgraded_sqlite_file_keeps_its_links_with_times_in_microseconds() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("shortener.db").display());
    {
        // The old release: migrations 0001 and 0002, times in milliseconds.
        let migrator = old_release("sqlite", 2, dir.path()).await;
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("sqlite");
        migrator.run(&mut conn).await.expect("old migrations");
        let ms = |s: &str| at(s).timestamp_millis();
        sqlx::query(
            "INSERT INTO links (slug, url, redirect_status, created_at, updated_at, expires_at, max_visits, visit_count)
             VALUES ('old', 'https://old.example/', 301, $1, $2, $3, 10, 2)",
        )
        .bind(ms("2030-01-01T00:00:00.123Z"))
        .bind(ms("2030-01-02T00:00:00Z"))
        .bind(ms("2031-01-01T00:00:00Z"))
        .execute(&mut conn)
        .await
        .expect("link");
        sqlx::raw_sql(
            "INSERT INTO link_tags (link_id, tag) SELECT id, 'legacy' FROM links;
             INSERT INTO link_tags (link_id, tag) SELECT id, 'v1' FROM links;",
        )
        .execute(&mut conn)
        .await
        .expect("tags");
        for (when, referrer, bot) in [
            ("2030-01-03T10:00:00Z", Some("r.example"), false),
            ("2030-01-04T10:00:00Z", None, true),
        ] {
            sqlx::query(
                "INSERT INTO visits (link_id, visited_at, nonce, referrer_host, is_bot)
                 SELECT id, $1, $2, $3, $4 FROM links",
            )
            .bind(ms(when))
            .bind(rand_nonce(when))
            .bind(referrer)
            .bind(bot)
            .execute(&mut conn)
            .await
            .expect("visit");
        }
        conn.close().await.expect("close");
    }

    let store: Arc<dyn LinkStore> = Arc::new(
        SqliteStore::connect(&url, &PoolConfig::default())
            .await
            .expect("upgrade"),
    );
    let link = store.find(&slug("old")).await.expect("find").expect("kept");
    assert_eq!(link.created_at, at("2030-01-01T00:00:00.123Z"));
    assert_eq!(link.expires_at, Some(at("2031-01-01T00:00:00Z")));
    let tags: Vec<&str> = link.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["legacy", "v1"]);
    let summary = store
        .visit_summary(link.id, at("2030-01-01T00:00:00Z"), 5)
        .await
        .expect("summary");
    assert_eq!((summary.total, summary.bots), (2, 1));
    let days: Vec<String> = summary.per_day.iter().map(|d| d.date.to_string()).collect();
    assert_eq!(days, ["2030-01-03", "2030-01-04"]);
    // The cascade trigger was recreated around the rebuild.
    assert!(store.delete(&slug("old")).await.expect("delete"));
    let summary = store
        .visit_summary(link.id, at("2030-01-01T00:00:00Z"), 5)
        .await
        .expect("summary");
    assert_eq!(summary.total, 0);
}

/// A distinct nonce per visit (the clustered key's tiebreaker).
fn rand_nonce(when: &str) -> i64 {
    at(when).timestamp()
}
