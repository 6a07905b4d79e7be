//! One run of the drill, step by step, with the clock running from the
//! destruction of the store to the verified, serving platform.

use super::platform::{url_of, Platform};
use super::probes::{self, Outbox};
use super::report::{BackupFigures, DrReport, OutboxCheck};
use super::writer::Writers;
use super::{seed, DrDrill, DrEngine};
use backup::{RestoreOptions, Store};
use chrono::Utc;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Why the drill could not run (a failed check is a report with
/// `passed: false`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    #[error("the drill destroys its database, so it needs an empty one: {0} already holds tables")]
    NotEmpty(String),
}

impl DrError {
    pub(super) fn setup(what: &str, error: impl Display) -> Self {
        Self::Setup(format!("{what}: {error}"))
    }
}

/// How long the relay may take to publish what the backup left unpublished.
const DRAIN_WAIT: Duration = Duration::from_secs(30);
/// Writes the writers must have acknowledged before the backup starts, and
/// again after it, so both sides of the snapshot point are exercised.
const WRITES_AROUND_BACKUP: usize = 10;

pub async fn run(drill: &DrDrill) -> Result<DrReport, DrError> {
    let work = match &drill.engine {
        DrEngine::Sqlite {
            parent: Some(parent),
        } => tempfile::tempdir_in(parent),
        _ => tempfile::tempdir(),
    }
    .map_err(|e| DrError::setup("creating a work directory", e))?;
    let store = match &drill.engine {
        DrEngine::Sqlite { .. } => {
            let data_dir = work.path().join("data");
            std::fs::create_dir(&data_dir)
                .map_err(|e| DrError::setup("creating the data dir", e))?;
            Store::Sqlite { data_dir }
        }
        DrEngine::Postgres { url } => {
            refuse_occupied(url, drill).await?;
            Store::Postgres { url: url.clone() }
        }
    };
    let links_url = url_of(&store, shortener::SERVICE);
    let orders_url = url_of(&store, orders::SERVICE);

    let started = Instant::now();
    seed::seed(&links_url, &orders_url, drill.links, drill.orders).await?;
    let seed_seconds = started.elapsed().as_secs_f64();

    // Serving, and written to, while it is backed up.
    let platform = Platform::start(&store).await?;
    let writers = Writers::start(&platform.base, drill.write_rate);
    wait_for_writes(&writers, WRITES_AROUND_BACKUP).await?;
    let to = work.path().join("backup");
    let backed_up = backup::backup(&store, &drill.schemas, &to, &drill.created_by).await;
    let after = writers.acked() + WRITES_AROUND_BACKUP;
    let waited = wait_for_writes(&writers, after).await;
    let (acks, write_errors) = writers.stop().await;
    platform.stop().await;
    let backed_up = backed_up?;
    waited?;
    let manifest = &backed_up.manifest;
    let snapshot_of = |module: &str| {
        manifest
            .modules
            .iter()
            .find(|m| m.module == module)
            .map(|m| m.snapshot_at)
            .unwrap_or(manifest.snapshot_at)
    };

    // The disaster: the clock starts.
    let destroyed_at = Instant::now();
    destroy(&store, drill).await?;
    let destroy_seconds = destroyed_at.elapsed().as_secs_f64();
    let restore = backup::restore(&to, &store, &drill.schemas, &RestoreOptions::default()).await?;
    let outbox = Outbox::open(&orders_url).await?;
    let unpublished_at_restore = outbox.unpublished().await?;
    let starting = Instant::now();
    let start_time = Utc::now();
    let platform = Platform::start(&store).await?;
    let start_seconds = starting.elapsed().as_secs_f64();
    let verifying = Instant::now();
    let read = probes::read(&platform.base, drill.links, drill.orders, drill.probes).await;
    let drained = outbox.drained(DRAIN_WAIT).await?;
    let published_after_restore = outbox.published_since(start_time).await?;
    let verify_seconds = verifying.elapsed().as_secs_f64();
    let rto_seconds = destroyed_at.elapsed().as_secs_f64();
    // The clock stops; the exact RPO accounting is not part of recovery.
    let mut writes = probes::account(
        &platform.base,
        &acks,
        snapshot_of(shortener::SERVICE),
        snapshot_of(orders::SERVICE),
    )
    .await;
    writes.write_errors = write_errors;
    platform.stop().await;
    outbox.close().await;

    let outbox = OutboxCheck {
        unpublished_at_restore,
        published_after_restore,
        replayed: (published_after_restore - unpublished_at_restore).max(0),
        drained,
    };
    let mut failures = Vec::new();
    if read.links_ok < read.links_checked {
        failures.push(format!(
            "{} of {} probed links did not redirect to their URL",
            read.links_checked - read.links_ok,
            read.links_checked
        ));
    }
    if read.orders_ok < read.orders_checked {
        failures.push(format!(
            "{} of {} probed orders were not readable",
            read.orders_checked - read.orders_ok,
            read.orders_checked
        ));
    }
    if !outbox.drained {
        failures.push(format!("the outbox was not drained within {DRAIN_WAIT:?}"));
    }
    if outbox.replayed > 0 {
        failures.push(format!(
            "{} published events were published again",
            outbox.replayed
        ));
    }
    if writes.missing_before_snapshot > 0 {
        failures.push(format!(
            "{} writes acknowledged before the snapshot are missing",
            writes.missing_before_snapshot
        ));
    }
    if writes.unreadable > 0 {
        failures.push(format!(
            "{} acknowledged writes could not be read back",
            writes.unreadable
        ));
    }
    Ok(DrReport {
        engine: store.engine().to_string(),
        links: drill.links,
        orders: drill.orders,
        seed_seconds,
        backup: BackupFigures {
            seconds: backed_up.elapsed.as_secs_f64(),
            bytes: manifest.bytes(),
            rows: manifest.rows(),
            modules: manifest.modules.len(),
            mb_per_second: backed_up.mb_per_second(),
            rows_per_second: backed_up.rows_per_second(),
            snapshot_at: manifest.snapshot_at.to_rfc3339(),
        },
        destroy_seconds,
        restore_seconds: restore.elapsed.as_secs_f64(),
        start_seconds,
        verify_seconds,
        rto_seconds,
        probes: read,
        outbox,
        writes,
        passed: failures.is_empty(),
        failures,
    })
}

/// Waits (bounded) until the writers have `count` acknowledged writes.
async fn wait_for_writes(writers: &Writers, count: usize) -> Result<(), DrError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while writers.acked() < count {
        if tokio::time::Instant::now() >= deadline {
            return Err(DrError::Setup(format!(
                "the writers had {} of {count} writes acknowledged after 30 s",
                writers.acked()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The disaster: the data dir, or every module schema, gone.
async fn destroy(store: &Store, drill: &DrDrill) -> Result<(), DrError> {
    match store {
        Store::Sqlite { data_dir } => std::fs::remove_dir_all(data_dir)
            .map_err(|e| DrError::setup("removing the data dir", e)),
        Store::Postgres { url } => {
            let mut conn = connect(url).await?;
            for schema in &drill.schemas {
                sqlx::query(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    schema.module
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| DrError::setup("dropping the module schemas", e))?;
            }
            Ok(())
        }
    }
}

/// A database where any module schema holds a table is not the drill's.
async fn refuse_occupied(url: &str, drill: &DrDrill) -> Result<(), DrError> {
    let mut conn = connect(url).await?;
    let names: Vec<&str> = drill.schemas.iter().map(|s| s.module).collect();
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .bind(&names)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| DrError::setup("looking at the database", e))?;
    if found.is_empty() {
        Ok(())
    } else {
        Err(DrError::NotEmpty(format!("schema {}", found.join(", "))))
    }
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, DrError> {
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .map_err(|e| DrError::setup("connecting to PostgreSQL", e))
}
