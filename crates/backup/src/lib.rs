//! Backup and restore of the platform's stores, engine by engine, over the
//! same [`kit::storage::Schema`]s the modules open.
//!
//! - [`backup`]: a consistent snapshot of every module's store into a new
//!   directory (or one tar file), with a [`Manifest`]; written under a
//!   temporary name, verified by re-reading it, then renamed, so a failed
//!   backup never looks like a complete one;
//! - [`restore`]: checks the backup (checksums, schema versions against
//!   the binary's migrators, an empty target) before touching anything,
//!   then restores and verifies row counts and content checksums;
//! - [`manifest`]: the JSON that says what a backup holds;
//! - `sqlite`: `VACUUM INTO` per module file (`<data_dir>/<module>.db`);
//! - `postgres`: `COPY` of every table of every module schema in one
//!   `REPEATABLE READ, READ ONLY` transaction (consistent across modules,
//!   no `pg_dump` needed), restored with `COPY FROM` in one transaction;
//! - `archive`: the temporary name, the rename, and the tar form.
//!
//! Why a content checksum per table as well as a checksum per file: a file
//! checksum proves the backup was not damaged, but only a checksum over the
//! rows (in primary-key order) survives the restore and can prove that the
//! restored store holds what was backed up.
#![forbid(unsafe_code)]

mod archive;
mod checksum;
pub mod manifest;
mod postgres;
mod restore;
mod snapshot;
mod sqlite;

pub use archive::{verify, write_tar};
pub use manifest::{Engine, Manifest, ModuleBackup, TableBackup};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use snapshot::{backup, BackupReport};

use kit::storage::Schema;
use std::path::PathBuf;

/// Where the platform's stores are.
#[derive(Debug, Clone)]
pub enum Store {
    /// One SQLite file per module: `<data_dir>/<module>.db`.
    Sqlite { data_dir: PathBuf },
    /// One schema per module in one PostgreSQL database.
    Postgres { url: String },
}

impl Store {
    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite { .. } => Engine::Sqlite,
            Self::Postgres { .. } => Engine::Postgres,
        }
    }

    /// Where it is, for messages (a PostgreSQL URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { data_dir } => format!("data dir {}", data_dir.display()),
            Self::Postgres { url } => format!("database {}", redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The highest migration version `schema`'s migrator for `engine` knows.
pub fn known_version(schema: &Schema, engine: Engine) -> i64 {
    let migrator = match engine {
        Engine::Sqlite => schema.sqlite,
        Engine::Postgres => schema.postgres,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Why a backup or a restore did not happen. Every variant says what was
/// refused and why; nothing was left half-written or half-restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{0} already exists: a backup never overwrites anything")]
    Exists(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{path} is not a backup: {why}")]
    NotABackup { path: PathBuf, why: String },
    #[error("the backup is damaged: {file}: {why}; nothing was restored")]
    Damaged { file: String, why: String },
    #[error(
        "module {module}: the backup has schema version {backup}, this binary knows up to {known}; \
         restore it with the release that wrote it (or a newer one)"
    )]
    TooNew {
        module: String,
        backup: i64,
        known: i64,
    },
    #[error("module {0} is in the backup but unknown to this binary")]
    UnknownModule(String),
    #[error("the backup is a {backup} backup; the target is {target}")]
    EngineMismatch { backup: Engine, target: Engine },
    #[error("the target {target} is not empty ({found}); pass --force to replace it")]
    NotEmpty { target: String, found: String },
    #[error("verification after restore failed: {module}.{table}: {why}; nothing was restored")]
    Verify {
        module: String,
        table: String,
        why: String,
    },
    #[error("no module store found in {0}: nothing to back up")]
    Empty(String),
}

impl BackupError {
    fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    fn db(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let what = what.into();
        move |source| Self::Database { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/reliable"),
            "postgres://app@db:5432/reliable"
        );
        assert_eq!(redact("postgres://db/reliable"), "postgres://db/reliable");
    }
}
