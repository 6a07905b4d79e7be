//! PostgreSQL: one schema per module in one database.
//!
//! The snapshot copies every table of every module schema with
//! `COPY (SELECT * ... ORDER BY <primary key>) TO STDOUT` inside ONE
//! `REPEATABLE READ, READ ONLY` transaction, so the backup is consistent
//! across modules and needs no `pg_dump` on the machine. The `COPY` text
//! is the data file and, being in key order, its sha256 is also the
//! table's content checksum.
//!
//! The restore runs in ONE transaction: per module, create the schema, run
//! its migrations up to the backup's version, `COPY FROM` each table (in
//! foreign-key order), move the sequences past the restored ids, then run
//! the same ordered `COPY` again and compare rows and checksums. Any
//! difference rolls everything back.

use crate::checksum::Rows;
use crate::manifest::{Manifest, ModuleBackup, TableBackup};
use crate::BackupError;
use chrono::Utc;
use futures::TryStreamExt;
use kit::storage::Schema;
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use tokio::io::AsyncReadExt;

/// A snapshot of every module of `schemas` that has a schema in the
/// database: `(modules, pg_current_snapshot())`; writes
/// `<out>/<module>/<table>.copy`.
pub(crate) async fn snapshot(
    url: &str,
    schemas: &[&Schema],
    out: &Path,
) -> Result<(Vec<ModuleBackup>, String), BackupError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(BackupError::db("connecting to PostgreSQL"))?;
    let snapshot_at = Utc::now();
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(BackupError::db("starting the snapshot transaction"))?;
    let pg_snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
        .fetch_one(&mut conn)
        .await
        .map_err(BackupError::db("reading pg_current_snapshot()"))?;
    let mut modules = Vec::new();
    for schema in schemas {
        let module = schema.module;
        let Some(schema_version) = version(&mut conn, module).await? else {
            continue;
        };
        let dir = out.join(module);
        std::fs::create_dir(&dir).map_err(BackupError::io("creating", &dir))?;
        let mut tables = Vec::new();
        for name in tables_in_order(&mut conn, module).await? {
            let path = dir.join(format!("{name}.copy"));
            let file = std::fs::File::create(&path).map_err(BackupError::io("creating", &path))?;
            let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
            let (rows, content_sha256) =
                copy_out(&mut conn, module, &name, |block| file.write_all(block))
                    .await
                    .map_err(|e| e.at(&path))?;
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(BackupError::io("writing", &path))?;
            tables.push(TableBackup {
                name,
                rows,
                content_sha256,
            });
        }
        modules.push(ModuleBackup {
            module: module.to_string(),
            schema_version,
            snapshot_at,
            tables,
        });
    }
    conn.execute("COMMIT")
        .await
        .map_err(BackupError::db("ending the snapshot transaction"))?;
    let _ = conn.close().await;
    Ok((modules, pg_snapshot))
}

/// The module's schema version, or `None` when it has no schema here.
async fn version(conn: &mut PgConnection, module: &str) -> Result<Option<i64>, BackupError> {
    let history: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("\"{module}\"._sqlx_migrations"))
        .fetch_one(&mut *conn)
        .await
        .map_err(BackupError::db(format!("{module}: looking for its schema")))?;
    if history.is_none() {
        return Ok(None);
    }
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(version) FROM \"{module}\"._sqlx_migrations WHERE success"
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(BackupError::db(format!(
        "{module}: reading _sqlx_migrations"
    )))?;
    Ok(Some(version.unwrap_or(0)))
}

/// The module's tables, each after the tables its foreign keys name. A
/// partitioned table counts once, as its parent (its rows are read and
/// restored through it; the partitions are the module's to create).
async fn tables_in_order(
    conn: &mut PgConnection,
    module: &str,
) -> Result<Vec<String>, BackupError> {
    let what = || format!("{module}: listing tables");
    let mut pending: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         AND c.relname <> '_sqlx_migrations' ORDER BY c.relname",
    )
    .bind(module)
    .fetch_all(&mut *conn)
    .await
    .map_err(BackupError::db(what()))?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, r.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE k.contype = 'f' AND n.nspname = $1 AND c.oid <> r.oid",
    )
    .bind(module)
    .fetch_all(&mut *conn)
    .await
    .map_err(BackupError::db(what()))?;
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            references
                .iter()
                .filter(|(from, _)| from == t)
                .all(|(_, to)| !pending.contains(to))
        });
        // A cycle cannot be ordered; take the next one and let COPY tell.
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    Ok(ordered)
}

/// The ordered `COPY` of one table (key order, all columns without a
/// key) into `sink`; returns its rows and sha256.
async fn copy_out(
    conn: &mut PgConnection,
    module: &str,
    table: &str,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(u64, String), CopyError> {
    let what = || format!("{module}.{table}: COPY TO");
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = $1::regclass AND i.indisprimary \
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(format!("\"{module}\".\"{table}\""))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| CopyError::Db(BackupError::db(what())(e)))?;
    let order = if key.is_empty() {
        // No key: every column, so the order is still total.
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass \
             AND attnum > 0 AND NOT attisdropped",
        )
        .bind(format!("\"{module}\".\"{table}\""))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| CopyError::Db(BackupError::db(what())(e)))?;
        (1..=count.max(1))
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
    } else {
        key.iter().map(|k| format!("\"{k}\"")).collect()
    };
    let order = format!("ORDER BY {}", order.join(", "));
    let statement = format!("COPY (SELECT * FROM \"{module}\".\"{table}\" {order}) TO STDOUT");
    let mut rows = Rows::default();
    let mut stream = conn
        .copy_out_raw(&statement)
        .await
        .map_err(|e| CopyError::Db(BackupError::db(what())(e)))?;
    while let Some(block) = stream
        .try_next()
        .await
        .map_err(|e| CopyError::Db(BackupError::db(what())(e)))?
    {
        rows.copy_block(&block);
        sink(&block).map_err(CopyError::Io)?;
    }
    Ok(rows.finish())
}

enum CopyError {
    Db(BackupError),
    Io(std::io::Error),
}

impl CopyError {
    fn at(self, path: &Path) -> BackupError {
        match self {
            Self::Db(e) => e,
            Self::Io(e) => BackupError::io("writing", path)(e),
        }
    }
}

/// The module schemas of `schemas` that already hold tables in the
/// database (a restore target must have none, unless forced).
pub(crate) async fn occupied(url: &str, schemas: &[&Schema]) -> Result<Vec<String>, BackupError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(BackupError::db("connecting to PostgreSQL"))?;
    let names: Vec<&str> = schemas.iter().map(|s| s.module).collect();
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .bind(&names)
    .fetch_all(&mut conn)
    .await
    .map_err(BackupError::db("looking at the target's schemas"))?;
    let _ = conn.close().await;
    Ok(found)
}

/// Restores every module of `manifest` from `dir` in one transaction;
/// `replace` drops the modules' schemas first.
pub(crate) async fn restore(
    url: &str,
    schemas: &[&Schema],
    manifest: &Manifest,
    dir: &Path,
    replace: bool,
) -> Result<(), BackupError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(BackupError::db("connecting to PostgreSQL"))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(BackupError::db("starting the restore transaction"))?;
    for module in &manifest.modules {
        let name = module.module.as_str();
        let Some(schema) = schemas.iter().find(|s| s.module == name) else {
            return Err(BackupError::UnknownModule(name.to_string()));
        };
        if replace {
            tx.execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                .await
                .map_err(BackupError::db(format!("{name}: dropping the old schema")))?;
        }
        tx.execute(format!("CREATE SCHEMA \"{name}\"").as_str())
            .await
            .map_err(BackupError::db(format!("{name}: creating its schema")))?;
        tx.execute(format!("SET LOCAL search_path TO \"{name}\"").as_str())
            .await
            .map_err(BackupError::db(format!("{name}: search_path")))?;
        up_to(schema.postgres, module.schema_version)
            .run(&mut *tx)
            .await
            .map_err(|e| BackupError::Database {
                what: format!("{name}: migrating to version {}", module.schema_version),
                source: e.into(),
            })?;
        // Whatever the migrations inserted is in the backup too.
        if !module.tables.is_empty() {
            let tables: Vec<String> = module
                .tables
                .iter()
                .map(|t| format!("\"{name}\".\"{}\"", t.name))
                .collect();
            tx.execute(format!("TRUNCATE {}", tables.join(", ")).as_str())
                .await
                .map_err(BackupError::db(format!("{name}: emptying the new tables")))?;
        }
        for table in &module.tables {
            copy_in(
                &mut tx,
                name,
                &table.name,
                &dir.join(name).join(format!("{}.copy", table.name)),
            )
            .await?;
            fix_sequences(&mut tx, name, &table.name).await?;
        }
        for table in &module.tables {
            let (rows, sha) = copy_out(&mut tx, name, &table.name, |_| Ok(()))
                .await
                .map_err(|e| e.at(dir))?;
            if rows != table.rows || sha != table.content_sha256 {
                return Err(BackupError::Verify {
                    module: name.to_string(),
                    table: table.name.clone(),
                    why: format!(
                        "{rows} rows (sha256 {sha}), the backup has {} (sha256 {})",
                        table.rows, table.content_sha256
                    ),
                });
            }
        }
    }
    tx.commit()
        .await
        .map_err(BackupError::db("committing the restore"))?;
    let _ = conn.close().await;
    Ok(())
}

/// `migrator` without the migrations after `version`.
fn up_to(migrator: &Migrator, version: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrator
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        ),
        ignore_missing: false,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
    }
}

async fn copy_in(
    conn: &mut PgConnection,
    module: &str,
    table: &str,
    path: &Path,
) -> Result<(), BackupError> {
    let what = || format!("{module}.{table}: COPY FROM");
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(BackupError::io("reading", path))?;
    let mut copy = conn
        .copy_in_raw(&format!("COPY \"{module}\".\"{table}\" FROM STDIN"))
        .await
        .map_err(BackupError::db(what()))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .map_err(BackupError::io("reading", path))?;
        if n == 0 {
            break;
        }
        copy.send(&buffer[..n])
            .await
            .map_err(BackupError::db(what()))?;
    }
    copy.finish().await.map_err(BackupError::db(what()))?;
    Ok(())
}

/// Every sequence owned by a column of the table (serial and identity)
/// continues after the highest restored value.
async fn fix_sequences(
    conn: &mut PgConnection,
    module: &str,
    table: &str,
) -> Result<(), BackupError> {
    let qualified = format!("\"{module}\".\"{table}\"");
    let owned: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, pg_get_serial_sequence($1::text, a.attname::text) \
         FROM pg_attribute a \
         WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
         AND pg_get_serial_sequence($1::text, a.attname::text) IS NOT NULL",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await
    .map_err(BackupError::db(format!(
        "{module}.{table}: finding sequences"
    )))?;
    for (column, sequence) in owned {
        sqlx::query(&format!(
            "SELECT setval($1::text::regclass, COALESCE(MAX(\"{column}\")::bigint, 1), \
             MAX(\"{column}\") IS NOT NULL) FROM {qualified}"
        ))
        .bind(&sequence)
        .execute(&mut *conn)
        .await
        .map_err(BackupError::db(format!(
            "{module}.{table}: moving {sequence}"
        )))?;
    }
    Ok(())
}
