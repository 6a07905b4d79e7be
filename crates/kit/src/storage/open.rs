//! Opening a module's database: the pool, the module's own schema or file,
//! and its migrations, safe when several replicas start at once.
//!
//! On PostgreSQL every module lives in its own schema (named after the
//! module), with its own `_sqlx_migrations`, so modules sharing one database
//! never see each other's tables or migration history. Creating the schema
//! (and adopting tables an older release left in `public`) happens in one
//! transaction under a transaction-level advisory lock: replicas starting
//! together take turns, and the loser finds the work done instead of
//! racing `CREATE SCHEMA` into a unique violation. sqlx's migrator then
//! takes its own advisory lock, so migrations run once.
//!
//! On SQLite every module has its own file (`<module>.db`, chosen by the
//! binary), opened in WAL mode so readers never wait for the writer.

use super::{PoolConfig, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use std::str::FromStr;

/// What a module keeps in its database: its name (the PostgreSQL schema,
/// the connections' `application_name`) and its migrations per engine.
pub struct Schema {
    /// The module's name, e.g. `orders`: lowercase ASCII letters, digits
    /// and `_`.
    pub module: &'static str,
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
    /// Tables an older release created in PostgreSQL's `public` schema. If
    /// the first of them is in `public` and not yet in the module's schema,
    /// they (with their indexes and sequences) and `public._sqlx_migrations`
    /// are moved into the module's schema before migrating, so an upgraded
    /// replica finds its data and its migration history. Empty for modules
    /// that always had their own schema.
    pub legacy_public_tables: &'static [&'static str],
}

/// The database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite:...` or `postgres://...` / `postgresql://...`.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// Opens (creating if missing) the SQLite file at `url` and migrates it.
pub async fn open_sqlite(
    url: &str,
    config: &PoolConfig,
    schema: &Schema,
) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(config.sqlite_busy_timeout)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(config.sqlite_max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await?;
    schema.sqlite.run(&pool).await?;
    Ok(pool)
}

/// Connects to the PostgreSQL database at `url`, prepares the module's
/// schema, and returns a pool whose connections see only that schema
/// (`search_path`), migrated.
pub async fn open_postgres(
    url: &str,
    config: &PoolConfig,
    schema: &Schema,
) -> Result<PgPool, StoreError> {
    let name = schema_name(schema.module)?;
    let options =
        PgConnectOptions::from_str(url)?.application_name(&format!("reliable-{}", schema.module));
    prepare_schema(&options, name, schema.legacy_public_tables).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // A pooled connection is pinged before it is handed out (sqlx's
        // default, kept on purpose): after a failover or a server restart
        // the dead ones are dropped and replaced by new connections, so
        // only requests already running on a cut connection fail (503).
        .test_before_acquire(true)
        .connect_with(options.options([("search_path", name)]))
        .await?;
    schema.postgres.run(&pool).await?;
    Ok(pool)
}

/// Serializes schema preparation across every replica and module on one
/// server ("rel-stor" in ASCII).
const SETUP_LOCK: i64 = 0x7265_6c2d_7374_6f72;

async fn prepare_schema(
    options: &PgConnectOptions,
    name: &str,
    legacy_tables: &[&str],
) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(options).await?;
    let prepared = async {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{name}\""))
            .execute(&mut *tx)
            .await?;
        if let Some(first) = legacy_tables.first() {
            if needs_adoption(&mut tx, name, first).await? {
                let history = ["_sqlx_migrations"];
                for table in legacy_tables.iter().chain(history.iter()) {
                    if exists(&mut tx, "public", table).await? {
                        tracing::info!(table, schema = name, "moving table out of public");
                        sqlx::query(&format!(
                            "ALTER TABLE public.\"{table}\" SET SCHEMA \"{name}\""
                        ))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok::<_, StoreError>(())
    }
    .await;
    let _ = conn.close().await;
    prepared
}

/// The legacy layout is there and the new one is not yet.
async fn needs_adoption(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, StoreError> {
    Ok(exists(conn, "public", table).await? && !exists(conn, schema, table).await?)
}

async fn exists(conn: &mut PgConnection, schema: &str, table: &str) -> Result<bool, StoreError> {
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("\"{schema}\".\"{table}\""))
        .fetch_one(conn)
        .await?;
    Ok(found.is_some())
}

/// A module name is used unquoted-safe as a schema name.
fn schema_name(module: &str) -> Result<&str, StoreError> {
    let valid = !module.is_empty()
        && module.starts_with(|c: char| c.is_ascii_lowercase())
        && module
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(module)
    } else {
        Err(StoreError::Corrupt(format!(
            "module name `{module}` is not a valid schema name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_from_urls() {
        assert_eq!(Backend::of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://h/db").ok(), Some(Backend::Postgres));
        assert_eq!(
            Backend::of("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::of("mysql://h/db"),
            Err(StoreError::UnsupportedUrl)
        ));
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(schema_name("shortener").is_ok());
        assert!(schema_name("llm_gateway2").is_ok());
        for bad in ["", "Orders", "a-b", "x\"; DROP", "1st"] {
            assert!(schema_name(bad).is_err(), "{bad}");
        }
    }
}
