//! `reliable changes list`: the change timeline from the command line,
//! read straight from the store the platform writes (the SQLite file
//! `changes.db` under the data dir, or the `changes` schema of
//! `RELIABLE_DATABASE_URL`), so it works whether or not the platform runs.

use clap::{Args, Subcommand};
use kit::changes::{ChangeFeed, ChangeKind, ChangeQuery, StoredChange, MAX_PAGE};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ChangesArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    store: crate::settings::StoreFlags,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// What changed, newest first: config reloads, keys, models, canaries,
    /// splits, drills, incidents.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only changes within this long before now, e.g. `6h`, `30m`, `7d`.
    #[arg(long)]
    since: Option<String>,
    /// Only this kind (repeat for several): config_reload, key_created,
    /// key_revoked, model_loaded, model_unloaded, canary_step,
    /// canary_rollback, canary_promoted, split_changed, drill, incident.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only this service's changes (`gateway`, `inference`, `platform`...).
    #[arg(long)]
    service: Option<String>,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// JSON (an array of events) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The query a `list` asks for, checked before anything is opened.
fn query_of(args: &ListArgs, now: chrono::DateTime<chrono::Utc>) -> Result<ChangeQuery, String> {
    let since = match &args.since {
        None => None,
        Some(text) => {
            let span = humantime::parse_duration(text)
                .map_err(|e| format!("--since `{text}`: {e} (e.g. 6h, 30m, 7d)"))?;
            let span = chrono::Duration::from_std(span)
                .map_err(|_| format!("--since `{text}`: too long"))?;
            Some(
                now.checked_sub_signed(span)
                    .ok_or(format!("--since `{text}`: too long"))?,
            )
        }
    };
    let kinds = args
        .kinds
        .iter()
        .map(|k| {
            ChangeKind::parse(k).ok_or_else(|| {
                let known: Vec<_> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("--kind `{k}`: not one of {}", known.join(", "))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(1..=MAX_PAGE).contains(&args.limit) {
        return Err(format!(
            "--limit: between 1 and {MAX_PAGE}, got {}",
            args.limit
        ));
    }
    Ok(ChangeQuery {
        since,
        until: None,
        kinds,
        service: args.service.clone(),
        before_id: None,
        limit: args.limit,
    })
}

pub fn run(args: ChangesArgs) -> ExitCode {
    let Action::List(list) = &args.action;
    let query = match query_of(list, chrono::Utc::now()) {
        Ok(query) => query,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match args.store.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(read(&config, &query)) {
        Ok(changes) => {
            if list.json {
                match serde_json::to_string_pretty(&changes) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", table(&changes));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store the platform writes and reads one page.
async fn read(
    config: &crate::settings::Config,
    query: &ChangeQuery,
) -> anyhow::Result<Vec<StoredChange>> {
    let store = open(config).await?;
    let tasks = store.1;
    let changes = store.0.list(query).await;
    tasks.shutdown().await;
    Ok(changes?)
}

/// The platform's change store as configured, with its writer on a
/// spawner of its own (stop it with `shutdown` before exiting, which
/// writes anything recorded).
pub async fn open(
    config: &crate::settings::Config,
) -> anyhow::Result<(changes::ChangeStore, kit::tasks::TaskSpawner)> {
    use anyhow::Context as _;
    let configured = config.shared_database_url();
    if configured.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    let tasks = kit::tasks::Supervisor::new().for_module("changes");
    let store = changes::ChangeStore::open(
        &changes::database_url(configured, &config.data_dir),
        &config.changes,
        Arc::new(kit::SystemClock),
        &tasks,
    )
    .await
    .context("opening the change store")?;
    Ok((store, tasks))
}

/// Writes what a CLI command changed to the platform's change store. The
/// change is done either way: a store that cannot be written only warns.
pub async fn record(config: &crate::settings::Config, change: kit::changes::ChangeEvent) {
    let written = async {
        let (store, tasks) = open(config).await?;
        let appended = store.append(std::slice::from_ref(&change)).await;
        tasks.shutdown().await;
        appended.map_err(anyhow::Error::new)
    };
    if let Err(e) = written.await {
        eprintln!("warning: the change was made but not recorded on the change timeline: {e:#}");
    }
}

/// Who runs this command, as the timeline names a CLI user.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{user}")
}

fn table(changes: &[StoredChange]) -> String {
    let mut out = format!(
        "{:<20} {:<16} {:<10} {:<20} {:<24} summary\n",
        "time (UTC)", "kind", "service", "actor", "subject"
    );
    for c in changes {
        let e = &c.event;
        out.push_str(&format!(
            "{:<20} {:<16} {:<10} {:<20} {:<24} {}\n",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.kind.as_str(),
            one_line(&e.service),
            one_line(&e.actor),
            one_line(&e.subject),
            one_line(&e.summary),
        ));
    }
    if changes.is_empty() {
        out.push_str("(no changes)\n");
    }
    out
}

/// A stored text on one table line: control characters (a newline in a
/// summary, a terminal escape) shown as spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(since: Option<&str>, kinds: &[&str], limit: usize) -> ListArgs {
        ListArgs {
            since: since.map(str::to_string),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            service: None,
            limit,
            json: false,
        }
    }

    #[test]
    fn queries_are_checked_before_anything_opens() {
        let now = chrono::Utc::now();
        let q = query_of(&args(Some("6h"), &["drill", "key_created"], 10), now).expect("ok");
        assert_eq!(q.since, Some(now - chrono::Duration::hours(6)));
        assert_eq!(q.kinds, vec![ChangeKind::Drill, ChangeKind::KeyCreated]);
        for (bad, needle) in [
            (args(Some("soon"), &[], 10), "--since"),
            (args(None, &["KeyCreated"], 10), "--kind"),
            (args(None, &[], 0), "--limit"),
            (args(None, &[], MAX_PAGE + 1), "--limit"),
        ] {
            let error = query_of(&bad, now).expect_err("refused");
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn control_characters_do_not_break_the_table() {
        assert_eq!(one_line("a\nb\u{1b}[31m"), "a b [31m");
    }
}
