//! `reliable status incident add|update|list`: the status page's incident
//! notes, written straight to the probes store (the one `up` and `serve`
//! read: `RELIABLE_DATABASE_URL`'s `probes` schema, else `probes.db` under
//! the data dir). Each note created or changed is also recorded as an
//! `incident` change event, with the actor `cli:$USER`.

use clap::{Args, Subcommand};
use probe::incident::{Incident, IncidentUpdate, NewIncident};
use probe::ProbeStore;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    store: crate::settings::StoreFlags,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Incident notes on the public status page.
    #[command(subcommand)]
    Incident(IncidentAction),
}

#[derive(Debug, Subcommand)]
enum IncidentAction {
    /// Post a new note.
    Add {
        /// The public component it concerns (as on the page).
        #[arg(long)]
        component: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        body: Option<String>,
        /// investigating (default), identified, monitoring or resolved.
        #[arg(long)]
        status: Option<String>,
    },
    /// Change a note's status, title or body.
    Update {
        id: i64,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        body: Option<String>,
    },
    /// The newest notes, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub fn run(args: StatusArgs) -> ExitCode {
    let config = match args.store.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Action::Incident(action) = args.action;
    // Usage errors first: a typo must not create a database.
    let parsed = match parse(&action) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let url = crate::status_page::store_url(&config, config.database_url().is_none());
    if url.starts_with("sqlite:") {
        if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
            eprintln!("error: creating {}: {e}", config.data_dir.display());
            return ExitCode::FAILURE;
        }
    }
    match runtime.block_on(act(parsed, &url, &config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Parsed {
    Add(NewIncident),
    Update(i64, IncidentUpdate),
    List(u32),
}

fn parse(action: &IncidentAction) -> Result<Parsed, String> {
    Ok(match action {
        IncidentAction::Add {
            component,
            title,
            body,
            status,
        } => Parsed::Add(
            NewIncident::parse(component, title, body.as_deref(), status.as_deref())
                .map_err(|e| format!("--{e}"))?,
        ),
        IncidentAction::Update {
            id,
            status,
            title,
            body,
        } => Parsed::Update(
            *id,
            IncidentUpdate::parse(title.as_deref(), body.as_deref(), status.as_deref())
                .map_err(|e| format!("--{e}"))?,
        ),
        IncidentAction::List { limit } => Parsed::List((*limit).clamp(1, 1000)),
    })
}

async fn act(
    parsed: Parsed,
    url: &str,
    config: &crate::settings::Config,
) -> Result<ExitCode, String> {
    let store = ProbeStore::open(url, &kit::storage::PoolConfig::default())
        .await
        .map_err(|e| format!("opening the probes store: {e}"))?;
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".to_string())
    );
    let now = chrono::Utc::now();
    match parsed {
        Parsed::Add(new) => {
            let incident = store
                .create_incident(&new, &actor, now)
                .await
                .map_err(|e| e.to_string())?;
            crate::changes_command::record(config, incident.change_event(&actor, "opened")).await;
            print_one(&incident);
        }
        Parsed::Update(id, update) => {
            match store
                .update_incident(id, &update, now)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(incident) => {
                    crate::changes_command::record(
                        config,
                        incident.change_event(&actor, "updated"),
                    )
                    .await;
                    print_one(&incident);
                }
                None => {
                    eprintln!("error: no incident {id}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        Parsed::List(limit) => {
            println!(
                "{:<6} {:<14} {:<20} {:<22} title",
                "id", "status", "component", "updated"
            );
            for i in store.incidents(limit).await.map_err(|e| e.to_string())? {
                println!(
                    "{:<6} {:<14} {:<20} {:<22} {}",
                    i.id,
                    i.status.as_str(),
                    i.component,
                    i.updated_at.format("%Y-%m-%d %H:%M UTC"),
                    i.title
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_one(incident: &Incident) {
    println!(
        "incident {} [{}] {}: {}",
        incident.id,
        incident.status.as_str(),
        incident.component,
        incident.title
    );
}
