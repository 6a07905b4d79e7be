//! Taking a backup: snapshot every module's store into a staging
//! directory, write the manifest, verify it by re-reading every file, then
//! rename it into place (see `archive`).

use crate::archive::Staging;
use crate::manifest::{FileEntry, Manifest, FORMAT};
use crate::{checksum, postgres, sqlite, BackupError, Store};
use chrono::Utc;
use kit::storage::Schema;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a finished backup holds and what it took.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// From the first snapshot to the verified, renamed backup.
    pub elapsed: Duration,
}

impl BackupReport {
    /// Megabytes (10^6 bytes) of data files per second.
    pub fn mb_per_second(&self) -> f64 {
        self.manifest.bytes() as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Rows per second.
    pub fn rows_per_second(&self) -> f64 {
        self.manifest.rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Backs up every module of `schemas` that has a store in `store` to
/// `to`: a directory, or one tar file when `to` ends in `.tar`. `to` must
/// not exist. `created_by` names the program in the manifest.
pub async fn backup(
    store: &Store,
    schemas: &[&Schema],
    to: &Path,
    created_by: &str,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let tar = to.extension().is_some_and(|e| e == "tar");
    let staging = Staging::next_to(to)?;
    let dir = staging.path().to_path_buf();
    let (modules, pg_snapshot, files) = match store {
        Store::Sqlite { data_dir } => {
            if !data_dir.is_dir() {
                return Err(BackupError::Missing(data_dir.clone()));
            }
            let mut modules = Vec::new();
            let mut files = Vec::new();
            for schema in schemas {
                let name = format!("{}.db", schema.module);
                if let Some(module) = sqlite::snapshot(data_dir, schema, &dir.join(&name)).await? {
                    modules.push(module);
                    files.push(name);
                }
            }
            (modules, None, files)
        }
        Store::Postgres { url } => {
            let (modules, snapshot) = postgres::snapshot(url, schemas, &dir).await?;
            let files = modules
                .iter()
                .flat_map(|m| {
                    m.tables
                        .iter()
                        .map(move |t| format!("{}/{}.copy", m.module, t.name))
                })
                .collect();
            (modules, Some(snapshot), files)
        }
    };
    if modules.is_empty() {
        return Err(BackupError::Empty(store.describe()));
    }
    let mut entries = Vec::with_capacity(files.len());
    for path in files {
        let (bytes, sha256) = checksum::file(&dir.join(&path))?;
        entries.push(FileEntry {
            path,
            bytes,
            sha256,
        });
    }
    let snapshot_at = modules
        .iter()
        .map(|m| m.snapshot_at)
        .min()
        .unwrap_or_else(Utc::now);
    let manifest = Manifest {
        format: FORMAT,
        engine: store.engine(),
        created_by: created_by.to_string(),
        snapshot_at,
        finished_at: Utc::now(),
        pg_snapshot,
        modules,
        files: entries,
    };
    manifest.write(&dir)?;
    sync_dir(&dir)?;
    // Verified on write: every file read back against the manifest.
    let verified = crate::verify(&dir)?;
    staging.commit(to, &verified, tar)?;
    Ok(BackupReport {
        path: to.to_path_buf(),
        manifest: verified,
        elapsed: started.elapsed(),
    })
}

/// Flushes every file in `dir` (and the directory) to disk before the
/// rename makes the backup visible.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(BackupError::io("reading", &current))? {
            let path = entry.map_err(BackupError::io("reading", &current))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(BackupError::io("syncing", &path))?;
            }
        }
        std::fs::File::open(&current)
            .and_then(|f| f.sync_all())
            .map_err(BackupError::io("syncing", &current))?;
    }
    Ok(())
}
