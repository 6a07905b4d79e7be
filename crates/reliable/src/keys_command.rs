//! `reliable keys create|list|revoke`: the gateway's API keys.
//!
//! Keys go to the same database the gateway reads: `--database-url` /
//! `RELIABLE_DATABASE_URL` (PostgreSQL, as `serve` uses), else the SQLite
//! file under the data dir (as `up` uses). `create` prints the key once,
//! on stdout alone so scripts can capture it; only its hash is stored.
//! `create` and `revoke` are recorded on the change timeline
//! (`key_created`, `key_revoked`, actor `cli:$USER`, the key's name:
//! never the key or its hash).

use clap::{Args, Subcommand};
use gateway::keys::{ApiKey, KeyName, KeyStore, NewKey, Scopes};
use kit::changes::{ChangeEvent, ChangeKind};
use ratelimit::Quota;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    store: crate::settings::StoreFlags,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create a key and print it once.
    Create {
        /// Unique name: a-z, 0-9, `-`, `_`, `.`.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. links:write,orders:write.
        #[arg(long, default_value = "")]
        scopes: String,
        /// The key's own rate, RATE/UNIT (e.g. 100/s); else the gateway's key_rate.
        #[arg(long)]
        rate: Option<String>,
        /// Burst for --rate (default: the rate).
        #[arg(long, requires = "rate")]
        burst: Option<u64>,
    },
    /// List keys (names, prefixes, scopes, rates; never the keys).
    List,
    /// Revoke a key by name; requests with it get 401 from then on.
    Revoke { name: String },
}

fn rate_of(rate: Option<&str>, burst: Option<u64>) -> Result<Option<Quota>, String> {
    let Some(rate) = rate else {
        return Ok(None);
    };
    let quota: Quota = rate.parse().map_err(|e| format!("--rate: {e}"))?;
    match burst {
        None => Ok(Some(quota)),
        Some(burst) => Quota::new(quota.rate(), quota.period(), Some(burst))
            .map(Some)
            .map_err(|e| format!("--burst: {e}")),
    }
}

pub fn run(args: KeysArgs) -> ExitCode {
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
    let url = config.gateway_keys_url(false);
    let pool = &config.gateway.database;
    match runtime.block_on(act(args.action, &url, &config.data_dir, pool)) {
        Ok(Some(change)) => {
            runtime.block_on(crate::changes_command::record(&config, change));
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Store(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Store(anyhow::Error),
}

impl From<gateway::keys::StoreError> for Failure {
    fn from(e: gateway::keys::StoreError) -> Self {
        match e {
            gateway::keys::StoreError::Conflict(_) => Failure::Usage(e.to_string()),
            other => Failure::Store(anyhow::Error::new(other)),
        }
    }
}

/// The timeline's line for a key change: its name and scopes, never the
/// key or its hash.
fn key_change(kind: ChangeKind, name: &KeyName, summary: String) -> ChangeEvent {
    ChangeEvent::new(
        chrono::Utc::now(),
        kind,
        "gateway",
        crate::changes_command::cli_actor(),
        format!("key {}", name.as_str()),
        summary,
    )
}

/// Does what `action` asks; returns the change to record, if any.
async fn act(
    action: Action,
    url: &str,
    data_dir: &std::path::Path,
    pool: &kit::storage::PoolConfig,
) -> Result<Option<ChangeEvent>, Failure> {
    // Usage errors first: a typo must not create a database.
    let new = match &action {
        Action::Create {
            name,
            scopes,
            rate,
            burst,
        } => Some(NewKey {
            name: KeyName::parse(name).map_err(|e| Failure::Usage(format!("--name: {e}")))?,
            scopes: Scopes::parse(scopes).map_err(|e| Failure::Usage(format!("--scopes: {e}")))?,
            rate: rate_of(rate.as_deref(), *burst).map_err(Failure::Usage)?,
        }),
        Action::Revoke { name } => {
            KeyName::parse(name).map_err(|e| Failure::Usage(format!("name: {e}")))?;
            None
        }
        Action::List => None,
    };
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Failure::Store(anyhow::Error::new(e).context("creating the data dir")))?;
    }
    let store: Arc<dyn KeyStore> = gateway::keys::connect(url, pool).await?;
    let now = chrono::Utc::now();
    match action {
        Action::Create { .. } => {
            let Some(new) = new else { return Ok(None) };
            let key = ApiKey::generate();
            let stored = store.create(&key, &new, now).await?;
            eprintln!(
                "created key `{}` ({}…), scopes [{}]; it is shown once, store it now:",
                stored.name.as_str(),
                stored.display_prefix,
                stored.scopes.to_stored()
            );
            println!("{}", key.reveal());
            return Ok(Some(key_change(
                ChangeKind::KeyCreated,
                &stored.name,
                format!(
                    "API key `{}` created with scopes [{}]",
                    stored.name.as_str(),
                    stored.scopes.to_stored()
                ),
            )));
        }
        Action::List => {
            println!(
                "{:<24} {:<14} {:<32} {:<20} {:<25} revoked",
                "name", "prefix", "scopes", "rate", "created"
            );
            for k in store.list().await? {
                println!(
                    "{:<24} {:<14} {:<32} {:<20} {:<25} {}",
                    k.name.as_str(),
                    k.display_prefix,
                    k.scopes.to_stored(),
                    k.rate.map_or("-".to_string(), |q| q.to_string()),
                    k.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    k.revoked_at.map_or("-".to_string(), |t| t
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
            }
        }
        Action::Revoke { name } => {
            let name = KeyName::parse(&name).map_err(|e| Failure::Usage(e.to_string()))?;
            if !store.revoke(&name, now).await? {
                return Err(Failure::Usage(format!(
                    "no active key named `{}`",
                    name.as_str()
                )));
            }
            eprintln!("revoked key `{}`", name.as_str());
            return Ok(Some(key_change(
                ChangeKind::KeyRevoked,
                &name,
                format!("API key `{}` revoked", name.as_str()),
            )));
        }
    }
    Ok(None)
}
