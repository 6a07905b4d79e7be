//! kit::storage against real databases: replicas opening one fresh
//! PostgreSQL database at once, schemas kept apart, conflicts and
//! unavailability classified once.

use kit::health::ReadinessCheck;
use kit::storage::{
    open, open_postgres, open_sqlite, time, DatabaseReady, Pool, PoolConfig, Schema, StoreError,
};
use sqlx::migrate::Migrator;
use sqlx::Row;

static ITEMS: Schema = Schema {
    module: "items",
    sqlite: &kit::storage::migrate!("./tests/storage_migrations/sqlite"),
    postgres: &kit::storage::migrate!("./tests/storage_migrations/postgres"),
    legacy_public_tables: &[],
};

static OTHER: Schema = Schema {
    module: "other_items",
    sqlite: &kit::storage::migrate!("./tests/storage_migrations/sqlite"),
    postgres: &kit::storage::migrate!("./tests/storage_migrations/postgres"),
    legacy_public_tables: &[],
};

#[tokio::test]
async fn replicas_opening_one_fresh_database_at_once_all_succeed() {
    let url = testkit::postgres().create_database();
    let config = PoolConfig::with_max_connections(2);
    let opens = (0..8).map(|i| {
        let url = url.clone();
        let config = config.clone();
        // Two modules at once too: they share the migrator's lock.
        let schema = if i % 2 == 0 { &ITEMS } else { &OTHER };
        async move { open_postgres(&url, &config, schema).await }
    });
    let pools = futures::future::join_all(opens).await;
    for pool in &pools {
        assert!(pool.is_ok(), "{:?}", pool.as_ref().err());
    }
    let pool = pools.into_iter().next().expect("one").expect("pool");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("history");
    assert_eq!(applied, 1, "migrated once");
}

#[tokio::test]
async fn each_module_has_its_own_schema_on_postgres() {
    let url = testkit::postgres().create_database();
    let config = PoolConfig::default();
    let items = open_postgres(&url, &config, &ITEMS).await.expect("items");
    let other = open_postgres(&url, &config, &OTHER).await.expect("other");
    sqlx::query("INSERT INTO items (name, created_us) VALUES ('a', 1)")
        .execute(&items)
        .await
        .expect("insert");
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
        .fetch_one(&other)
        .await
        .expect("count");
    assert_eq!(seen, 0, "same table name, another schema");
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'items' ORDER BY 1",
    )
    .fetch_all(&items)
    .await
    .expect("schemas");
    assert_eq!(schemas, ["items", "other_items"]);
}

#[tokio::test]
async fn a_taken_unique_key_is_a_conflict_on_both_engines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("items.db").display());
    let pg_url = testkit::postgres().create_database();
    let config = PoolConfig::default();
    for url in [sqlite_url, pg_url] {
        let pool = open(&url, &config, &ITEMS).await.expect("open");
        for attempt in 0..2 {
            let inserted = match &pool {
                Pool::Sqlite(p) => {
                    sqlx::query("INSERT INTO items (name, created_us) VALUES ($1, $2)")
                        .bind("a")
                        .bind(time::to_micros(chrono::Utc::now()))
                        .execute(p)
                        .await
                        .map(|_| ())
                }
                Pool::Postgres(p) => {
                    sqlx::query("INSERT INTO items (name, created_us) VALUES ($1, $2)")
                        .bind("a")
                        .bind(time::to_micros(chrono::Utc::now()))
                        .execute(p)
                        .await
                        .map(|_| ())
                }
            };
            let result =
                inserted.map_err(|e| StoreError::conflict_if_unique(e, || "item `a`".into()));
            match attempt {
                0 => assert!(result.is_ok(), "{url}: {result:?}"),
                _ => assert!(
                    matches!(&result, Err(StoreError::Conflict(what)) if what == "item `a`"),
                    "{url}: {result:?}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn readiness_fails_once_the_pool_is_closed_and_the_error_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("items.db").display());
    let pool = Pool::from(
        open_sqlite(&url, &PoolConfig::default(), &ITEMS)
            .await
            .expect("open"),
    );
    let ready = DatabaseReady::new("items", pool.clone());
    assert_eq!(ready.name(), "items-database");
    assert!(ready.check().await.is_ok());
    pool.close().await;
    assert!(ready.check().await.is_err());
    let error = pool.ping().await.expect_err("closed");
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable() {
    // Port 1 on loopback: connection refused.
    let config = PoolConfig {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..PoolConfig::default()
    };
    let error = open_postgres("postgres://nobody@127.0.0.1:1/none", &config, &ITEMS)
        .await
        .expect_err("refused");
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn a_sqlite_open_migrates_a_fresh_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("items.db").display());
    let pool = open_sqlite(&url, &PoolConfig::default(), &ITEMS)
        .await
        .expect("open");
    let again = open_sqlite(&url, &PoolConfig::default(), &ITEMS)
        .await
        .expect("reopen");
    let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(&again)
        .await
        .expect("history");
    assert_eq!(row.get::<i64, _>("n"), 1);
    drop(pool);
    let _: &Migrator = ITEMS.sqlite;
}
