//! `manifest.json`: what a backup holds, written last (inside the
//! temporary directory, before the rename) and read first.
//!
//! A restore trusts nothing else: every file it copies must be listed here
//! with its size and sha256, and every table's row count and content
//! checksum is compared again after the restore.

use crate::{BackupError, Store};
use chrono::{DateTime, Utc};
use kit::storage::Schema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The file name inside a backup.
pub const FILE: &str = "manifest.json";
/// The manifest format this binary writes and reads.
pub const FORMAT: u32 = 1;

/// The database engine a backup was taken from (and can be restored to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// The whole backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    pub engine: Engine,
    /// The program that wrote it, e.g. `reliable 0.1.0`.
    pub created_by: String,
    /// The snapshot point: every write committed before it is in the
    /// backup. On SQLite, the earliest of the modules' own points.
    pub snapshot_at: DateTime<Utc>,
    /// When the backup was complete and verified.
    pub finished_at: DateTime<Utc>,
    /// PostgreSQL: `pg_current_snapshot()` of the one transaction every
    /// table was copied in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_snapshot: Option<String>,
    pub modules: Vec<ModuleBackup>,
    /// Every data file, relative to the backup's root.
    pub files: Vec<FileEntry>,
}

/// One module's store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleBackup {
    pub module: String,
    /// The highest migration applied to the store when it was backed up.
    pub schema_version: i64,
    /// This module's snapshot point (SQLite: its `VACUUM INTO`).
    pub snapshot_at: DateTime<Utc>,
    /// In restore order (tables referenced by foreign keys first).
    pub tables: Vec<TableBackup>,
}

/// One table of a module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableBackup {
    pub name: String,
    pub rows: u64,
    /// sha256 over the rows in primary-key order, in the engine's own
    /// text form (SQLite `quote()`, PostgreSQL `COPY` text): the same
    /// query over the restored store gives the same value.
    pub content_sha256: String,
}

/// One data file of the backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative, `/`-separated: `shortener.db`, `orders/outbox.copy`.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`; a missing or unreadable one means `dir`
    /// is not a backup.
    pub fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(FILE);
        let not_a_backup = |why: String| BackupError::NotABackup {
            path: dir.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| not_a_backup(format!("cannot read {FILE}: {e}")))?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|e| not_a_backup(format!("{FILE}: {e}")))?;
        if manifest.format != FORMAT {
            return Err(not_a_backup(format!(
                "{FILE}: format {} (this binary reads format {FORMAT})",
                manifest.format
            )));
        }
        for file in &manifest.files {
            let safe = !file.path.is_empty()
                && !file.path.starts_with('/')
                && file.path.split('/').all(|p| !p.is_empty() && p != "..");
            if !safe {
                return Err(not_a_backup(format!(
                    "{FILE}: file path `{}` leaves the backup",
                    file.path
                )));
            }
        }
        Ok(manifest)
    }

    /// Writes it to `<dir>/manifest.json`.
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| BackupError::Io {
            what: "encoding",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, text).map_err(BackupError::io("writing", &path))
    }

    /// Every module is known to `schemas` and none is newer than this
    /// binary's migrations, and the engine matches `target`.
    pub fn check_compatible(&self, schemas: &[&Schema], target: &Store) -> Result<(), BackupError> {
        if self.engine != target.engine() {
            return Err(BackupError::EngineMismatch {
                backup: self.engine,
                target: target.engine(),
            });
        }
        for module in &self.modules {
            let schema = schemas
                .iter()
                .find(|s| s.module == module.module)
                .ok_or_else(|| BackupError::UnknownModule(module.module.clone()))?;
            let known = crate::known_version(schema, self.engine);
            if module.schema_version > known {
                return Err(BackupError::TooNew {
                    module: module.module.clone(),
                    backup: module.schema_version,
                    known,
                });
            }
        }
        Ok(())
    }

    /// Rows over every table.
    pub fn rows(&self) -> u64 {
        self.modules
            .iter()
            .flat_map(|m| &m.tables)
            .map(|t| t.rows)
            .sum()
    }

    /// Bytes over every data file.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}
