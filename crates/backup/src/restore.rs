//! Restoring a backup into an empty data dir or database.
//!
//! Everything that can refuse runs before the target is touched: the
//! backup's checksums, the schema versions against this binary's
//! migrations, the engine, and the target's emptiness (unless `force`).
//! Then the data goes in and is verified (rows and content checksums per
//! table) before it becomes visible: on SQLite each file is copied under a
//! temporary name and checked before the renames; on PostgreSQL the whole
//! restore is one transaction.

use crate::manifest::Manifest;
use crate::{archive, postgres, sqlite, BackupError, Store};
use kit::storage::Schema;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace the modules' stores in a target that already has them.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub manifest: Manifest,
    /// From reading the backup to the verified, visible restore.
    pub elapsed: Duration,
}

/// Restores the backup at `from` (a directory or a tar file) into
/// `target`, for the modules of `schemas`.
pub async fn restore(
    from: &Path,
    target: &Store,
    schemas: &[&Schema],
    options: &RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    if !from.exists() {
        return Err(BackupError::Missing(from.to_path_buf()));
    }
    // A tar file is unpacked (and checked) in a temporary directory.
    let unpacked;
    let (dir, manifest) = if from.is_dir() {
        (from.to_path_buf(), archive::verify(from)?)
    } else {
        unpacked =
            tempfile::tempdir().map_err(BackupError::io("creating", std::env::temp_dir()))?;
        let manifest = archive::unpack(from, unpacked.path())?;
        (unpacked.path().to_path_buf(), manifest)
    };
    manifest.check_compatible(schemas, target)?;
    match target {
        Store::Sqlite { data_dir } => {
            let found: Vec<String> = schemas
                .iter()
                .map(|s| sqlite::file_of(data_dir, s.module))
                .filter(|f| f.exists())
                .map(|f| f.display().to_string())
                .collect();
            refuse_unless_forced(target, &found, options)?;
            restore_sqlite(&dir, data_dir, &manifest).await?;
        }
        Store::Postgres { url } => {
            let found = postgres::occupied(url, schemas).await?;
            let found: Vec<String> = found.into_iter().map(|s| format!("schema {s}")).collect();
            refuse_unless_forced(target, &found, options)?;
            postgres::restore(url, schemas, &manifest, &dir, options.force).await?;
        }
    }
    Ok(RestoreReport {
        manifest,
        elapsed: started.elapsed(),
    })
}

fn refuse_unless_forced(
    target: &Store,
    found: &[String],
    options: &RestoreOptions,
) -> Result<(), BackupError> {
    if found.is_empty() || options.force {
        return Ok(());
    }
    Err(BackupError::NotEmpty {
        target: target.describe(),
        found: format!("found {}", found.join(", ")),
    })
}

/// Copies each module's file into `data_dir` under a temporary name,
/// checks every copy against the manifest, then renames them all.
async fn restore_sqlite(
    dir: &Path,
    data_dir: &Path,
    manifest: &Manifest,
) -> Result<(), BackupError> {
    std::fs::create_dir_all(data_dir).map_err(BackupError::io("creating", data_dir))?;
    let staging = StagingDir::new(data_dir.join(format!(".restore-{}", std::process::id())))?;
    let mut staged = Vec::new();
    for module in &manifest.modules {
        let name = format!("{}.db", module.module);
        let copy = staging.0.join(&name);
        std::fs::copy(dir.join(&name), &copy).map_err(BackupError::io("copying to", &copy))?;
        std::fs::File::open(&copy)
            .and_then(|f| f.sync_all())
            .map_err(BackupError::io("syncing", &copy))?;
        let (version, tables) = sqlite::inspect(&copy, &module.module).await?;
        if version != module.schema_version {
            return Err(BackupError::Verify {
                module: module.module.clone(),
                table: "_sqlx_migrations".to_string(),
                why: format!(
                    "schema version {version}, the manifest says {}",
                    module.schema_version
                ),
            });
        }
        for expected in &module.tables {
            let found = tables.iter().find(|t| t.name == expected.name);
            let matches = found.is_some_and(|t| {
                t.rows == expected.rows && t.content_sha256 == expected.content_sha256
            });
            if !matches {
                return Err(BackupError::Verify {
                    module: module.module.clone(),
                    table: expected.name.clone(),
                    why: match found {
                        Some(t) => format!(
                            "{} rows (sha256 {}), the manifest says {} (sha256 {})",
                            t.rows, t.content_sha256, expected.rows, expected.content_sha256
                        ),
                        None => "missing".to_string(),
                    },
                });
            }
        }
        staged.push((copy, sqlite::file_of(data_dir, &module.module)));
    }
    for (copy, live) in staged {
        for old in sqlite::with_sidecars(&live) {
            match std::fs::remove_file(&old) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(BackupError::io("removing", &old)(e));
                }
                _ => {}
            }
        }
        std::fs::rename(&copy, &live).map_err(BackupError::io("renaming to", &live))?;
    }
    std::fs::File::open(data_dir)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io("syncing", data_dir))?;
    Ok(())
}

/// A directory removed with what is left in it when dropped.
struct StagingDir(PathBuf);

impl StagingDir {
    fn new(path: PathBuf) -> Result<Self, BackupError> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).map_err(BackupError::io("creating", &path))?;
        Ok(Self(path))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
