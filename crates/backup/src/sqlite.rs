//! SQLite: one file per module, `<data_dir>/<module>.db`.
//!
//! The snapshot is `VACUUM INTO`, which reads the live file in one read
//! transaction (WAL mode: writers carry on) and writes a compact,
//! self-contained copy. The copy is then opened read-only to record the
//! schema version, row counts and content checksums, and checked with
//! `PRAGMA quick_check`. A restore copies the file into the data dir under
//! a temporary name, checks the copy the same way, and renames it.
//!
//! Modules are snapshotted one after another, so each file is consistent
//! on its own but two modules' files are not taken at the same instant
//! (the manifest keeps each module's point).

use crate::checksum::Rows;
use crate::manifest::{ModuleBackup, TableBackup};
use crate::BackupError;
use chrono::Utc;
use futures::TryStreamExt;
use kit::storage::Schema;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The module's file in `data_dir`.
pub(crate) fn file_of(data_dir: &Path, module: &str) -> PathBuf {
    data_dir.join(format!("{module}.db"))
}

/// `VACUUM INTO <out>` of the module's live file, or `None` when the
/// module has no file (it never ran here).
pub(crate) async fn snapshot(
    data_dir: &Path,
    schema: &Schema,
    out: &Path,
) -> Result<Option<ModuleBackup>, BackupError> {
    let live = file_of(data_dir, schema.module);
    if !live.is_file() {
        return Ok(None);
    }
    let what = |step: &str| format!("{step} {}", live.display());
    let options = SqliteConnectOptions::new()
        .filename(&live)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(BackupError::db(what("opening")))?;
    let snapshot_at = Utc::now();
    let into = out.to_string_lossy().replace('\'', "''");
    let vacuumed = sqlx::query(&format!("VACUUM INTO '{into}'"))
        .execute(&pool)
        .await;
    pool.close().await;
    vacuumed.map_err(BackupError::db(what("VACUUM INTO from")))?;
    let (schema_version, tables) = inspect(out, schema.module).await?;
    Ok(Some(ModuleBackup {
        module: schema.module.to_string(),
        schema_version,
        snapshot_at,
        tables,
    }))
}

/// The schema version and every table's rows and content checksum of the
/// SQLite file at `path`, opened read-only; fails if `quick_check` does.
pub(crate) async fn inspect(
    path: &Path,
    module: &str,
) -> Result<(i64, Vec<TableBackup>), BackupError> {
    let what = |step: &str| format!("{step} {}", path.display());
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(BackupError::db(what("opening")))?;
    let result = inspect_pool(&pool, module).await;
    pool.close().await;
    result
}

async fn inspect_pool(
    pool: &SqlitePool,
    module: &str,
) -> Result<(i64, Vec<TableBackup>), BackupError> {
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(pool)
        .await
        .map_err(BackupError::db(format!("checking {module}")))?;
    if check != "ok" {
        return Err(BackupError::Verify {
            module: module.to_string(),
            table: "*".to_string(),
            why: format!("quick_check: {check}"),
        });
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(BackupError::db(format!(
                "{module}: reading _sqlx_migrations"
            )))?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(BackupError::db(format!("{module}: listing tables")))?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let (rows, content_sha256) = content(pool, module, &name).await?;
        tables.push(TableBackup {
            name,
            rows,
            content_sha256,
        });
    }
    Ok((version.unwrap_or(0), tables))
}

/// Rows and content checksum of one table: every row as the `quote()`d
/// values of its columns, in primary-key order (all columns without one).
async fn content(
    pool: &SqlitePool,
    module: &str,
    table: &str,
) -> Result<(u64, String), BackupError> {
    let what = || format!("{module}.{table}: reading");
    let columns: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")
            .bind(table)
            .fetch_all(pool)
            .await
            .map_err(BackupError::db(what()))?;
    let quoted = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let mut key: Vec<&(String, i64)> = columns.iter().filter(|(_, pk)| *pk > 0).collect();
    key.sort_by_key(|(_, pk)| *pk);
    let order: Vec<String> = if key.is_empty() {
        columns.iter().map(|(c, _)| quoted(c)).collect()
    } else {
        key.iter().map(|(c, _)| quoted(c)).collect()
    };
    let row = columns
        .iter()
        .map(|(c, _)| format!("quote({})", quoted(c)))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    let sql = format!(
        "SELECT {row} FROM {} ORDER BY {}",
        quoted(table),
        order.join(", ")
    );
    let mut hasher = Rows::default();
    let mut stream = sqlx::query_scalar::<_, String>(&sql).fetch(pool);
    while let Some(text) = stream.try_next().await.map_err(BackupError::db(what()))? {
        hasher.row(text.as_bytes());
    }
    Ok(hasher.finish())
}

/// The files SQLite keeps next to a database.
pub(crate) fn with_sidecars(file: &Path) -> [PathBuf; 3] {
    let name = file.to_string_lossy();
    [
        file.to_path_buf(),
        PathBuf::from(format!("{name}-wal")),
        PathBuf::from(format!("{name}-shm")),
    ]
}
