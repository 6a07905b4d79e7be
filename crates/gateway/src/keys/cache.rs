//! Keys found in the store, remembered for a short time so a hot key costs
//! no database round trip per request.
//!
//! The price is staleness: a key revoked in the store (by `reliable keys
//! revoke`, possibly in another process) is still accepted by a replica
//! that found it less than `ttl` ago. Nothing else invalidates an entry,
//! so `gateway.key_cache_ttl` is the bound on how late a revocation
//! lands. Only keys the store found are remembered: an unknown key (all an
//! attacker can send) is asked for every time and takes no memory, and
//! the number of entries is bounded besides. Expiry is judged on the
//! injected clock, so tests move time instead of sleeping.

use super::{ApiKey, KeyHash, KeyName, KeyStore, NewKey, StoreError, StoredKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::Pool;
use kit::Clock;
use std::sync::Arc;
use std::time::Duration;

/// More keys than any deployment has; beyond it the least used go.
const CAPACITY: u64 = 10_000;

/// A [`KeyStore`] that answers `find` from memory while an entry is young.
pub struct CachedKeyStore {
    store: Arc<dyn KeyStore>,
    ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
    found: moka::sync::Cache<KeyHash, Arc<(StoredKey, DateTime<Utc>)>>,
}

impl CachedKeyStore {
    pub fn new(store: Arc<dyn KeyStore>, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            clock,
            found: moka::sync::Cache::new(CAPACITY),
        }
    }
}

#[async_trait]
impl KeyStore for CachedKeyStore {
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, StoreError> {
        self.store.create(key, new, now).await
    }

    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, StoreError> {
        let now = self.clock.now();
        if let Some(entry) = self.found.get(hash) {
            let (key, found_at) = &*entry;
            if now.signed_duration_since(*found_at) < self.ttl {
                return Ok(Some(key.clone()));
            }
        }
        let found = self.store.find(hash).await?;
        match &found {
            Some(key) => self
                .found
                .insert(hash.clone(), Arc::new((key.clone(), now))),
            None => self.found.invalidate(hash),
        }
        Ok(found)
    }

    async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.store.list().await
    }

    async fn revoke(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked = self.store.revoke(name, now).await?;
        // Entries are by hash, not name; revocations are rare.
        self.found.invalidate_all();
        Ok(revoked)
    }

    fn pool(&self) -> Pool {
        self.store.pool()
    }
}
