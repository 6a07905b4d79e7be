//! API keys: the domain types and the storage port with its two adapters.
//!
//! [`KeyStore`] is all the gateway knows about key persistence; SQLite
//! backs `reliable up`, PostgreSQL `reliable serve`. Both carry their own
//! migrations and pass one conformance suite (`tests/keys_conformance.rs`).
//! Only hashes are stored; a key is shown once, by `reliable keys create`.
//! [`CachedKeyStore`] keeps found keys for `gateway.key_cache_ttl`.

mod cache;
mod domain;
mod postgres;
mod sqlite;

pub use cache::CachedKeyStore;
pub use domain::{ApiKey, KeyError, KeyHash, KeyName, Scope, Scopes, KEY_PREFIX};
pub use postgres::PostgresKeyStore;
pub use sqlite::SqliteKeyStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ratelimit::Quota;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("a key named `{0}` already exists")]
    NameTaken(String),
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored key is invalid: {0}")]
    Corrupt(String),
}

/// What `keys create` asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: KeyName,
    pub scopes: Scopes,
    /// The key's own rate; none means the gateway's `key_rate`.
    pub rate: Option<Quota>,
}

/// A key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub id: i64,
    pub name: KeyName,
    /// `rlk_` and the first 8 hex digits, to recognise a key in a listing.
    pub display_prefix: String,
    pub scopes: Scopes,
    pub rate: Option<Quota>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores `key`'s hash under `new.name`; [`KeyStoreError::NameTaken`] if used.
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, KeyStoreError>;
    /// The key with this hash, revoked or not.
    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, KeyStoreError>;
    /// All keys, by id.
    async fn list(&self) -> Result<Vec<StoredKey>, KeyStoreError>;
    /// Revokes the named key; false if there is no such key (or it was
    /// already revoked).
    async fn revoke(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, KeyStoreError>;
    async fn ping(&self) -> Result<(), KeyStoreError>;
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`)
/// and applies its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn KeyStore>, KeyStoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteKeyStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresKeyStore::connect(url).await?))
    } else {
        Err(KeyStoreError::UnsupportedUrl)
    }
}

/// A row with adapter-neutral types.
pub(crate) struct RawKey {
    pub id: i64,
    pub name: String,
    pub display_prefix: String,
    pub scopes: String,
    pub rate: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<RawKey> for StoredKey {
    type Error = KeyStoreError;

    fn try_from(raw: RawKey) -> Result<Self, KeyStoreError> {
        let corrupt = |what: &str| KeyStoreError::Corrupt(format!("{what} of key {}", raw.id));
        Ok(StoredKey {
            id: raw.id,
            name: KeyName::parse(&raw.name).map_err(|_| corrupt("name"))?,
            display_prefix: raw.display_prefix.clone(),
            scopes: Scopes::parse(&raw.scopes).map_err(|_| corrupt("scopes"))?,
            rate: raw
                .rate
                .as_deref()
                .map(str::parse::<Quota>)
                .transpose()
                .map_err(|_| corrupt("rate"))?,
            created_at: raw.created_at,
            revoked_at: raw.revoked_at,
        })
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// An insert's error: a taken name (the only unique column a caller
/// chooses; hashes of 256-bit keys do not collide) or the database's.
fn insert_error(e: sqlx::Error, name: &KeyName) -> KeyStoreError {
    if is_unique_violation(&e) {
        KeyStoreError::NameTaken(name.as_str().to_string())
    } else {
        e.into()
    }
}
