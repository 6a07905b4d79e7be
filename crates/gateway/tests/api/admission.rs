//! API keys at the door: 401 missing/malformed/unknown/revoked, 403 wrong
//! scope, the key's own rate, and the key never passed upstream.

use crate::helpers::*;
use gateway::keys::{
    ApiKey, KeyHash, KeyName, KeyStore, NewKey, Scopes, SqliteKeyStore, StoreError, StoredKey,
};
use gateway::RouteConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn store() -> (Arc<dyn KeyStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    (
        Arc::new(
            SqliteKeyStore::connect(&url, &Default::default())
                .await
                .unwrap(),
        ),
        dir,
    )
}

async fn new_key(
    store: &Arc<dyn KeyStore>,
    name: &str,
    scopes: &str,
    rate: Option<&str>,
) -> ApiKey {
    let key = ApiKey::generate();
    let new = NewKey {
        name: KeyName::parse(name).unwrap(),
        scopes: Scopes::parse(scopes).unwrap(),
        rate: rate.map(|r| r.parse().unwrap()),
    };
    store.create(&key, &new, chrono::Utc::now()).await.unwrap();
    key
}

async fn gateway_with_keys(a: &Upstream, store: &Arc<dyn KeyStore>) -> TestGateway {
    gateway_with_key_cache(a, store, Duration::from_secs(5)).await
}

async fn gateway_with_key_cache(
    a: &Upstream,
    store: &Arc<dyn KeyStore>,
    ttl: Duration,
) -> TestGateway {
    let mut write = RouteConfig::new("/links", "a");
    write.scope = Some("links:write".into());
    let mut cfg = config(
        &[("a", &[a])],
        vec![write, RouteConfig::new("/public", "a")],
    );
    cfg.key_cache_ttl = ttl;
    spawn_gateway_with(
        cfg,
        Deps {
            keys: Some(store.clone()),
            ..Deps::default()
        },
    )
    .await
}

async fn problem_type(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (
        status,
        json(response).await["type"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn keys_and_scopes_are_enforced_as_problems() {
    let a = Upstream::start("a").await;
    let (store, _dir) = store().await;
    let writer = new_key(&store, "writer", "links:write", None).await;
    let reader = new_key(&store, "reader", "links:read", None).await;
    let gw = gateway_with_keys(&a, &store).await;
    let http = client();

    let missing = http.get(gw.url("/links")).send().await.unwrap();
    assert_eq!(
        problem_type(missing).await,
        (401, "/problems/api-key-missing".into())
    );
    let malformed = http
        .get(gw.url("/links"))
        .header("x-api-key", "rlk_123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(malformed).await,
        (401, "/problems/api-key-malformed".into())
    );
    let bearer_garbage = http
        .get(gw.url("/links"))
        .bearer_auth("rlk_not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(bearer_garbage).await,
        (401, "/problems/api-key-malformed".into())
    );
    let unknown = http
        .get(gw.url("/links"))
        .header("x-api-key", ApiKey::generate().reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(unknown).await,
        (401, "/problems/api-key-rejected".into())
    );
    let wrong_scope = http
        .get(gw.url("/links"))
        .bearer_auth(reader.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(wrong_scope).await,
        (403, "/problems/api-key-scope".into())
    );
    assert_eq!(a.hits(), 0);

    let ok = http
        .get(gw.url("/links"))
        .bearer_auth(writer.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echo = json(ok).await;
    assert_eq!(echo["headers"]["x-api-key-name"], "writer");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the key stays at the gateway"
    );
    let public = http.get(gw.url("/public")).send().await.unwrap();
    assert_eq!(
        public.status(),
        200,
        "anonymous is fine where no scope is asked"
    );
    let spoofed = http
        .get(gw.url("/public"))
        .header("x-api-key-name", "admin")
        .send()
        .await
        .unwrap();
    assert!(
        json(spoofed).await["headers"]
            .get("x-api-key-name")
            .is_none(),
        "a client cannot claim a key name"
    );
    // An upstream's own bearer token is not ours: passed through.
    let jwt = http
        .get(gw.url("/public"))
        .bearer_auth("eyJ.upstream.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(jwt).await["headers"]["authorization"],
        "Bearer eyJ.upstream.jwt"
    );

    assert!(store
        .revoke(&KeyName::parse("writer").unwrap(), chrono::Utc::now())
        .await
        .unwrap());
    // The gateway trusts a found key for `key_cache_ttl` (5 s).
    gw.clock.advance(chrono::Duration::seconds(5));
    let revoked = http
        .get(gw.url("/links"))
        .bearer_auth(writer.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(revoked).await,
        (401, "/problems/api-key-rejected".into())
    );
}

#[tokio::test]
async fn a_key_has_its_own_rate_and_headers() {
    let a = Upstream::start("a").await;
    let (store, _dir) = store().await;
    let key = new_key(&store, "ci", "links:write", Some("2/min")).await;
    let gw = gateway_with_keys(&a, &store).await;
    let http = client();
    for remaining in [1, 0] {
        let response = http
            .get(gw.url("/links"))
            .bearer_auth(key.reveal())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
        let state = response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            state.starts_with(&format!("\"key\";r={remaining};")),
            "{state}"
        );
    }
    let refused = http
        .get(gw.url("/links"))
        .bearer_auth(key.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(
        problem_type(refused).await,
        (429, "/problems/rate-limited".into())
    );
    // Anonymous traffic from the same address has its own (here: no) limit.
    assert_eq!(
        http.get(gw.url("/public")).send().await.unwrap().status(),
        200
    );
}

/// A key store that counts lookups, to see what the gateway's cache saves.
struct CountingStore {
    inner: Arc<dyn KeyStore>,
    finds: AtomicU64,
}

#[async_trait::async_trait]
impl KeyStore for CountingStore {
    async fn create(
        &self,
        key: &ApiKey,
        new: &NewKey,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<StoredKey, StoreError> {
        self.inner.create(key, new, now).await
    }
    async fn find(&self, hash: &KeyHash) -> Result<Option<StoredKey>, StoreError> {
        self.finds.fetch_add(1, Ordering::AcqRel);
        self.inner.find(hash).await
    }
    async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.list().await
    }
    async fn revoke(
        &self,
        name: &KeyName,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.revoke(name, now).await
    }
    fn pool(&self) -> kit::storage::Pool {
        self.inner.pool()
    }
}

async fn counting_store() -> (Arc<CountingStore>, tempfile::TempDir) {
    let (inner, dir) = store().await;
    let counting = CountingStore {
        inner,
        finds: AtomicU64::new(0),
    };
    (Arc::new(counting), dir)
}

async fn status_with_key(gw: &TestGateway, key: &ApiKey) -> (u16, String) {
    let response = client()
        .get(gw.url("/links"))
        .bearer_auth(key.reveal())
        .send()
        .await
        .unwrap();
    if response.status() == 200 {
        return (200, String::new());
    }
    problem_type(response).await
}

#[tokio::test]
async fn a_hot_key_is_looked_up_once_per_ttl_and_revocation_lands_within_it() {
    let a = Upstream::start("a").await;
    let (counting, _dir) = counting_store().await;
    let store: Arc<dyn KeyStore> = counting.clone();
    let key = new_key(&store, "hot", "links:write", None).await;
    let gw = gateway_with_keys(&a, &store).await;
    for _ in 0..10 {
        assert_eq!(status_with_key(&gw, &key).await.0, 200);
    }
    assert_eq!(counting.finds.load(Ordering::Acquire), 1, "one lookup");

    // Unknown keys are asked for every time and never take a cache slot.
    let unknown = ApiKey::generate();
    for _ in 0..10 {
        assert_eq!(
            status_with_key(&gw, &unknown).await,
            (401, "/problems/api-key-rejected".into())
        );
    }
    assert_eq!(counting.finds.load(Ordering::Acquire), 11);

    assert!(store
        .revoke(&KeyName::parse("hot").unwrap(), chrono::Utc::now())
        .await
        .unwrap());
    gw.clock.advance(chrono::Duration::milliseconds(4_999));
    assert_eq!(
        status_with_key(&gw, &key).await.0,
        200,
        "still trusted within the TTL"
    );
    gw.clock.advance(chrono::Duration::milliseconds(1));
    assert_eq!(
        status_with_key(&gw, &key).await,
        (401, "/problems/api-key-rejected".into()),
        "revoked once the TTL has passed"
    );
}

#[tokio::test]
async fn a_zero_key_cache_ttl_asks_the_store_every_time() {
    let a = Upstream::start("a").await;
    let (counting, _dir) = counting_store().await;
    let store: Arc<dyn KeyStore> = counting.clone();
    let key = new_key(&store, "cold", "links:write", None).await;
    let gw = gateway_with_key_cache(&a, &store, Duration::ZERO).await;
    for _ in 0..3 {
        assert_eq!(status_with_key(&gw, &key).await.0, 200);
    }
    assert_eq!(counting.finds.load(Ordering::Acquire), 3);
    assert!(store
        .revoke(&KeyName::parse("cold").unwrap(), chrono::Utc::now())
        .await
        .unwrap());
    assert_eq!(status_with_key(&gw, &key).await.0, 401, "at once");
}

#[tokio::test]
async fn a_prefix_listed_plain_and_scoped_asks_for_the_key() {
    let a = Upstream::start("a").await;
    let (store, _dir) = store().await;
    let admin = new_key(&store, "ops", "canary:admin", None).await;
    // A module that declares its prefix both ways (the plain route first,
    // as the registry adds them): the scoped one must win the tie.
    let mut scoped = RouteConfig::new("/canary/v1", "a");
    scoped.scope = Some("canary:admin".into());
    let cfg = config(
        &[("a", &[&a])],
        vec![RouteConfig::new("/canary/v1", "a"), scoped],
    );
    let gw = spawn_gateway_with(
        cfg,
        Deps {
            keys: Some(store.clone()),
            ..Deps::default()
        },
    )
    .await;
    let http = client();
    let anonymous = http.get(gw.url("/canary/v1/runs")).send().await.unwrap();
    assert_eq!(
        problem_type(anonymous).await,
        (401, "/problems/api-key-missing".into())
    );
    let keyed = http
        .get(gw.url("/canary/v1/runs"))
        .bearer_auth(admin.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status().as_u16(), 200);
}
