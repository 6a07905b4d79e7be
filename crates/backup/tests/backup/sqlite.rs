//! SQLite: a backup of a data dir while it is open, restored into an empty
//! one, as a directory and as a tar file.

use crate::support::{count, open_module, run, schemas, seed, sqlite_url, ITEMS, OTHER};
use backup::{Engine, RestoreOptions, Store};
use kit::storage::Pool;

#[tokio::test]
async fn a_data_dir_round_trips_through_a_directory_backup() {
    let live = tempfile::tempdir().expect("tempdir");
    let items = open_module(&sqlite_url(live.path(), &ITEMS), &ITEMS).await;
    let other = open_module(&sqlite_url(live.path(), &OTHER), &OTHER).await;
    seed(&items, 30).await;
    seed(&other, 3).await;
    let out = tempfile::tempdir().expect("tempdir");
    let to = out.path().join("b1");
    let store = Store::Sqlite {
        data_dir: live.path().to_path_buf(),
    };

    // Taken while the pools are open (WAL mode, as the platform runs).
    let report = backup::backup(&store, &schemas(), &to, "test")
        .await
        .expect("backup");

    let manifest = &report.manifest;
    assert_eq!(manifest.engine, Engine::Sqlite);
    assert_eq!(manifest.modules.len(), 2);
    let module = &manifest.modules[0];
    assert_eq!(
        (module.module.as_str(), module.schema_version),
        ("items", 2)
    );
    let rows: Vec<(&str, u64)> = module
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    assert_eq!(rows, [("events", 30), ("items", 30), ("tags", 60)]);
    assert!(to.join("manifest.json").is_file());
    assert!(to.join("items.db").is_file());
    // No staging directory is left next to it.
    let names: Vec<_> = std::fs::read_dir(out.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["b1"]);

    let target = tempfile::tempdir().expect("tempdir");
    let restored = Store::Sqlite {
        data_dir: target.path().join("data"),
    };
    backup::restore(&to, &restored, &schemas(), &RestoreOptions::default())
        .await
        .expect("restore");

    let url = sqlite_url(&target.path().join("data"), &ITEMS);
    let pool = open_module(&url, &ITEMS).await;
    assert_eq!(count(&pool, "items").await, 30);
    assert_eq!(count(&pool, "tags").await, 60);
    // The next id continues after the restored ones.
    run(
        &pool,
        "INSERT INTO items (name) VALUES ($1)",
        &[Some("new".into())],
    )
    .await;
    let Pool::Sqlite(p) = &pool else {
        unreachable!()
    };
    let id: i64 = sqlx::query_scalar("SELECT id FROM items WHERE name = 'new'")
        .fetch_one(p)
        .await
        .expect("id");
    assert_eq!(id, 31);
}

#[tokio::test]
async fn a_tar_backup_is_one_file_and_restores_the_same_rows() {
    let live = tempfile::tempdir().expect("tempdir");
    let items = open_module(&sqlite_url(live.path(), &ITEMS), &ITEMS).await;
    seed(&items, 10).await;
    let out = tempfile::tempdir().expect("tempdir");
    let to = out.path().join("b.tar");
    let store = Store::Sqlite {
        data_dir: live.path().to_path_buf(),
    };

    let report = backup::backup(&store, &schemas(), &to, "test")
        .await
        .expect("backup");

    assert!(to.is_file());
    assert_eq!(
        report.manifest.modules.len(),
        1,
        "no other.db: not backed up"
    );
    let verified = backup::verify(&to).expect("verify");
    assert_eq!(verified, report.manifest);
    let target = tempfile::tempdir().expect("tempdir");
    let restored = Store::Sqlite {
        data_dir: target.path().to_path_buf(),
    };
    let done = backup::restore(&to, &restored, &schemas(), &RestoreOptions::default())
        .await
        .expect("restore");
    assert_eq!(done.manifest.rows(), 40);
    let pool = open_module(&sqlite_url(target.path(), &ITEMS), &ITEMS).await;
    assert_eq!(count(&pool, "events").await, 10);
}
