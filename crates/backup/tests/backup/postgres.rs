//! PostgreSQL: every module schema copied in one transaction, restored in
//! one transaction with its sequences moved past the restored ids.

use crate::support::{count, open_module, run, schemas, seed, ITEMS, OTHER};
use backup::{BackupError, Engine, RestoreOptions, Store};
use kit::storage::Pool;

#[tokio::test]
async fn a_database_round_trips_and_its_sequences_continue() {
    let url = testkit::postgres().create_database();
    let items = open_module(&url, &ITEMS).await;
    let other = open_module(&url, &OTHER).await;
    seed(&items, 25).await;
    seed(&other, 2).await;
    let out = tempfile::tempdir().expect("tempdir");
    let to = out.path().join("pg");
    let store = Store::Postgres { url: url.clone() };

    let report = backup::backup(&store, &schemas(), &to, "test")
        .await
        .expect("backup");

    let manifest = &report.manifest;
    assert_eq!(manifest.engine, Engine::Postgres);
    assert!(manifest.pg_snapshot.is_some());
    let tables: Vec<(&str, u64)> = manifest.modules[0]
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    // Restore order: items before tags (tags reference items).
    let position = |n: &str| tables.iter().position(|(t, _)| *t == n);
    assert!(position("items") < position("tags"), "{tables:?}");
    assert!(tables.contains(&("tags", 50)));
    assert!(to.join("items/items.copy").is_file());

    let target = testkit::postgres().create_database();
    let restored = Store::Postgres {
        url: target.clone(),
    };
    backup::restore(&to, &restored, &schemas(), &RestoreOptions::default())
        .await
        .expect("restore");

    let pool = open_module(&target, &ITEMS).await;
    assert_eq!(count(&pool, "items").await, 25);
    assert_eq!(count(&pool, "tags").await, 50);
    run(
        &pool,
        "INSERT INTO items (name) VALUES ($1)",
        &[Some("new".into())],
    )
    .await;
    run(
        &pool,
        "INSERT INTO events (payload) VALUES ($1)",
        &[Some("{}".into())],
    )
    .await;
    let Pool::Postgres(p) = &pool else {
        unreachable!()
    };
    let id: i64 = sqlx::query_scalar("SELECT id FROM items WHERE name = 'new'")
        .fetch_one(p)
        .await
        .expect("id");
    assert_eq!(id, 26);
    let other = open_module(&target, &OTHER).await;
    assert_eq!(count(&other, "items").await, 2);

    // A second restore into the same database needs --force.
    let again = backup::restore(&to, &restored, &schemas(), &RestoreOptions::default()).await;
    assert!(
        matches!(again, Err(BackupError::NotEmpty { .. })),
        "{again:?}"
    );
    pool.close().await;
    other.close().await;
    backup::restore(&to, &restored, &schemas(), &RestoreOptions { force: true })
        .await
        .expect("forced restore");
    let pool = open_module(&target, &ITEMS).await;
    assert_eq!(count(&pool, "items").await, 25, "the new row is gone");
}

#[tokio::test]
async fn a_tampered_copy_file_is_refused_and_the_database_stays_empty() {
    let url = testkit::postgres().create_database();
    let items = open_module(&url, &ITEMS).await;
    seed(&items, 5).await;
    let out = tempfile::tempdir().expect("tempdir");
    let to = out.path().join("pg");
    backup::backup(&Store::Postgres { url }, &schemas(), &to, "test")
        .await
        .expect("backup");
    let file = to.join("items/items.copy");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("item-3", "item-9")).expect("tamper");

    let target = testkit::postgres().create_database();
    let result = backup::restore(
        &to,
        &Store::Postgres {
            url: target.clone(),
        },
        &schemas(),
        &RestoreOptions::default(),
    )
    .await;

    let error = result.expect_err("tampered");
    assert!(matches!(error, BackupError::Damaged { .. }), "{error}");
    assert!(error.to_string().contains("items/items.copy"), "{error}");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&target)
        .await
        .expect("connect");
    let schemas: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname IN ('items', 'other')")
            .fetch_one(&mut conn)
            .await
            .expect("schemas");
    assert_eq!(schemas, 0, "nothing restored");
}
