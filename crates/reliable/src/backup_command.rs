//! `reliable backup --to DIR|FILE.tar` and `reliable restore --from ...`:
//! every module's store, through the `backup` crate.
//!
//! [`stores`] is the one list of every store this binary opens; the
//! registry test below fails when a module that needs a database is added
//! without its schema here, so a backup cannot silently miss it.

use crate::settings::{Config, StoreFlags};
use backup::{BackupError, RestoreOptions, Store};
use clap::Args;
use kit::storage::Schema;
use std::path::PathBuf;
use std::process::ExitCode;

/// Every store the platform opens: the modules' (registry) and the
/// binary's own (change timeline, status page probes, alert history).
pub fn stores() -> Vec<&'static Schema> {
    vec![
        &shortener::storage::SCHEMA,
        &orders::storage::SCHEMA,
        &notifier::storage::SCHEMA,
        &llm::usage::SCHEMA,
        &canary::store::SCHEMA,
        &gateway::database::SCHEMA,
        &changes::SCHEMA,
        &PROBES,
        &crate::alert_store::SCHEMA,
    ]
}

/// The status page's store (a `const` in its crate).
static PROBES: Schema = probe::store::SCHEMA;

/// Where the configured platform keeps its stores: the PostgreSQL
/// database when one is set, else the data dir's SQLite files.
pub fn store_of(config: &Config) -> Store {
    match config.database_url() {
        Some(url) => Store::Postgres {
            url: url.to_string(),
        },
        None => Store::Sqlite {
            data_dir: config.data_dir.clone(),
        },
    }
}

/// The program as the manifest names it.
pub fn created_by() -> String {
    format!("reliable {}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    store: StoreFlags,
    /// Where to write it: a new directory, or one tar file if the name
    /// ends in `.tar`. Must not exist.
    #[arg(long, required_unless_present = "into", conflicts_with = "into")]
    to: Option<PathBuf>,
    /// Or: a tar file named after the time, `reliable-<UTC time>.tar`, in
    /// this existing directory (for scheduled jobs without a shell).
    #[arg(long)]
    into: Option<PathBuf>,
    /// Print the manifest and the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    store: StoreFlags,
    /// The backup: a directory or a `.tar` file written by `reliable backup`.
    #[arg(long)]
    from: PathBuf,
    /// Replace the stores of a target that already has them.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_backup(args: BackupArgs) -> ExitCode {
    let (config, runtime) = match setup(&args.store) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let store = store_of(&config);
    let to = match (&args.to, &args.into) {
        (Some(to), _) => to.clone(),
        (None, Some(dir)) => dir.join(format!(
            "reliable-{}.tar",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )),
        (None, None) => {
            eprintln!("error: --to or --into is required");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(backup::backup(&store, &stores(), &to, &created_by()));
    match result {
        Ok(report) => {
            if args.json {
                let json = serde_json::json!({
                    "path": report.path,
                    "seconds": report.elapsed.as_secs_f64(),
                    "bytes": report.manifest.bytes(),
                    "rows": report.manifest.rows(),
                    "mb_per_second": report.mb_per_second(),
                    "rows_per_second": report.rows_per_second(),
                    "manifest": report.manifest,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
            } else {
                let m = &report.manifest;
                println!(
                    "backup {}: {} modules, {} rows, {:.1} MB in {:.2} s ({:.1} MB/s, {:.0} rows/s), snapshot at {}",
                    report.path.display(),
                    m.modules.len(),
                    m.rows(),
                    m.bytes() as f64 / 1e6,
                    report.elapsed.as_secs_f64(),
                    report.mb_per_second(),
                    report.rows_per_second(),
                    m.snapshot_at.to_rfc3339(),
                );
                for module in &m.modules {
                    let rows: u64 = module.tables.iter().map(|t| t.rows).sum();
                    println!(
                        "  {:<10} schema version {:>2}  {:>3} tables  {:>10} rows",
                        module.module,
                        module.schema_version,
                        module.tables.len(),
                        rows
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub fn run_restore(args: RestoreArgs) -> ExitCode {
    let (config, runtime) = match setup(&args.store) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let store = store_of(&config);
    let options = RestoreOptions { force: args.force };
    let result = runtime.block_on(backup::restore(&args.from, &store, &stores(), &options));
    match result {
        Ok(report) => {
            let m = &report.manifest;
            if args.json {
                let json = serde_json::json!({
                    "from": args.from,
                    "target": store.describe(),
                    "seconds": report.elapsed.as_secs_f64(),
                    "rows": m.rows(),
                    "modules": m.modules.iter().map(|m| &m.module).collect::<Vec<_>>(),
                    "snapshot_at": m.snapshot_at,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
            } else {
                println!(
                    "restored {} modules, {} rows (snapshot of {}) into {} in {:.2} s; verified",
                    m.modules.len(),
                    m.rows(),
                    m.snapshot_at.to_rfc3339(),
                    store.describe(),
                    report.elapsed.as_secs_f64(),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn setup(flags: &StoreFlags) -> Result<(Config, tokio::runtime::Runtime), ExitCode> {
    let config = flags.load().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })?;
    Ok((config, runtime))
}

/// Exit 2 for what the operator gave (a path, a backup, a target), 1 for
/// what failed underneath (a disk, a database).
fn fail(error: &BackupError) -> ExitCode {
    eprintln!("error: {error}");
    match error {
        BackupError::Io { .. }
        | BackupError::Database { .. }
        | BackupError::Verify { .. }
        | BackupError::Damaged { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::module::Port;

    #[test]
    fn every_module_that_needs_a_database_is_backed_up() {
        let stores = stores();
        for entry in crate::registry::MODULES {
            if entry.declaration.needs.contains(&Port::Database) {
                assert!(
                    stores.iter().any(|s| s.module == entry.declaration.name),
                    "module {} needs a database but is missing from backup_command::stores()",
                    entry.declaration.name
                );
            }
        }
    }

    #[test]
    fn store_names_are_distinct_and_match_the_files_the_binary_opens() {
        let mut names: Vec<&str> = stores().iter().map(|s| s.module).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "one schema per store");
        // The stores the binary opens itself, by file name.
        for extra in ["changes", "probes", "alerts", "gateway"] {
            assert!(names.contains(&extra), "{extra}");
        }
    }
}
