//! API keys: the domain types and the storage port with its two adapters.
//! The tables live in the gateway's database ([`crate::database`]).
//!
//! [`KeyStore`] is all the gateway knows about key persistence; SQLite
//! backs `reliable up`, PostgreSQL `reliable serve`, with one SQL text
//! (`store.rs`) and one conformance suite (`tests/keys_conformance.rs`).
//! Only hashes are stored; a key is shown once, by `reliable keys create`.
//! [`CachedKeyStore`] keeps found keys for `gateway.key_cache_ttl`.

mod cache;
mod domain;
mod store;

pub use cache::CachedKeyStore;
pub use domain::{ApiKey, KeyError, KeyHash, KeyName, Scope, Scopes, KEY_PREFIX};
pub use kit::storage::StoreError;
pub use store::{PostgresKeyStore, SqliteKeyStore};

use crate::database::SCHEMA;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::time::from_micros;
use kit::storage::{Pool, PoolConfig};
use ratelimit::Quota;
use std::sync::Arc;

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
    /// Stores `key`'s hash under `new.name`; [`StoreError::Conflict`] if used.
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, StoreError>;
    /// The key with this hash, revoked or not.
    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, StoreError>;
    /// All keys, by id.
    async fn list(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Revokes the named key; false if there is no such key (or it was
    /// already revoked).
    async fn revoke(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// The pool, for readiness ([`kit::storage::DatabaseReady`]).
    fn pool(&self) -> Pool;
}

/// Opens the store named by `url` (`sqlite:PATH` or `postgres://...`),
/// sized by `pool`, and applies its migrations.
pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Arc<dyn KeyStore>, StoreError> {
    Ok(on(crate::database::open(url, pool).await?))
}

/// The store on the gateway's open database (see [`crate::database`]).
pub fn on(pool: Pool) -> Arc<dyn KeyStore> {
    match pool {
        Pool::Sqlite(pool) => Arc::new(SqliteKeyStore::new(pool)),
        Pool::Postgres(pool) => Arc::new(PostgresKeyStore::new(pool)),
    }
}

/// A row with adapter-neutral types (times as stored, microseconds).
pub(crate) struct RawKey {
    pub id: i64,
    pub name: String,
    pub display_prefix: String,
    pub scopes: String,
    pub rate: Option<String>,
    pub created_us: i64,
    pub revoked_us: Option<i64>,
}

impl TryFrom<RawKey> for StoredKey {
    type Error = StoreError;

    fn try_from(raw: RawKey) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of key {}", raw.id));
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
            created_at: from_micros(raw.created_us)?,
            revoked_at: raw.revoked_us.map(from_micros).transpose()?,
        })
    }
}
