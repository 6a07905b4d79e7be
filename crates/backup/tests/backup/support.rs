//! Two test modules with the shapes the platform's stores have: a
//! foreign key, a composite key, serial and identity columns, and more
//! than one migration.

use kit::storage::{open, Pool, PoolConfig, Schema};

pub static ITEMS: Schema = Schema {
    module: "items",
    sqlite: &kit::storage::migrate!("./tests/migrations/sqlite"),
    postgres: &kit::storage::migrate!("./tests/migrations/postgres"),
    legacy_public_tables: &[],
};

pub static OTHER: Schema = Schema {
    module: "other",
    sqlite: &kit::storage::migrate!("./tests/migrations/sqlite"),
    postgres: &kit::storage::migrate!("./tests/migrations/postgres"),
    legacy_public_tables: &[],
};

pub fn schemas() -> Vec<&'static Schema> {
    vec![&ITEMS, &OTHER]
}

pub fn sqlite_url(dir: &std::path::Path, schema: &Schema) -> String {
    format!(
        "sqlite://{}",
        dir.join(format!("{}.db", schema.module)).display()
    )
}

/// `n` items with two tags each and one event each; some notes are NULL or
/// carry characters that need quoting.
pub async fn seed(pool: &Pool, n: i64) {
    for i in 0..n {
        let note = match i % 3 {
            0 => None,
            1 => Some(format!("it's \"{i}\"\nline\ttab\\")),
            _ => Some(format!("plain {i}")),
        };
        run(
            pool,
            "INSERT INTO items (name, note) VALUES ($1, $2)",
            &[Some(format!("item-{i}")), note],
        )
        .await;
        for tag in ["a", "b"] {
            run(
                pool,
                "INSERT INTO tags (item_id, tag) SELECT id, $2 FROM items WHERE name = $1",
                &[Some(format!("item-{i}")), Some(tag.to_string())],
            )
            .await;
        }
        run(
            pool,
            "INSERT INTO events (payload) VALUES ($1)",
            &[Some(format!("{{\"n\":{i}}}"))],
        )
        .await;
    }
}

pub async fn run(pool: &Pool, sql: &str, binds: &[Option<String>]) {
    match pool {
        Pool::Sqlite(p) => {
            let sql = sql.replace('$', "?");
            let mut q = sqlx::query(&sql);
            for b in binds {
                q = q.bind(b.clone());
            }
            q.execute(p).await.expect(&sql);
        }
        Pool::Postgres(p) => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.clone());
            }
            q.execute(p).await.expect(sql);
        }
    }
}

pub async fn count(pool: &Pool, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match pool {
        Pool::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await.expect(&sql),
        Pool::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await.expect(&sql),
    }
}

pub async fn open_module(url: &str, schema: &Schema) -> Pool {
    open(url, &PoolConfig::default(), schema)
        .await
        .expect("open the store")
}

/// The `.db` files in `dir` (a restore target that must stay empty).
pub fn db_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".db"))
                .collect()
        })
        .unwrap_or_default()
}
