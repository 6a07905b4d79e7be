//! One conformance suite for every `KeyStore` adapter: SQLite in a temp
//! file, PostgreSQL on the harness's private server (a fresh database per
//! test, which also proves the `gateway` schema coexists with others).

use chrono::{DateTime, Utc};
use gateway::keys::{
    ApiKey, KeyName, KeyStore, NewKey, PostgresKeyStore, Scope, Scopes, SqliteKeyStore, StoreError,
};
use std::sync::Arc;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn new_key(name: &str, scopes: &str, rate: Option<&str>) -> NewKey {
    NewKey {
        name: KeyName::parse(name).expect("name"),
        scopes: Scopes::parse(scopes).expect("scopes"),
        rate: rate.map(|r| r.parse().expect("quota")),
    }
}

async fn create_then_find_by_hash_round_trips(store: Arc<dyn KeyStore>) {
    let key = ApiKey::generate();
    let now = at("2030-01-01T00:00:00.123Z");
    let created = store
        .create(
            &key,
            &new_key("ci", "links:write,orders:write", Some("100/s,burst=200")),
            now,
        )
        .await
        .expect("create");
    assert_eq!(created.name.as_str(), "ci");
    assert_eq!(created.created_at, now);
    assert_eq!(created.display_prefix, key.display_prefix());
    assert!(created
        .scopes
        .contains(&Scope::parse("orders:write").expect("scope")));
    let rate = created.rate.expect("rate");
    assert_eq!((rate.rate(), rate.burst()), (100, 200));
    let found = store
        .find(&key.hash())
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(found, created);
    assert!(store
        .find(&ApiKey::generate().hash())
        .await
        .expect("find")
        .is_none());
}

async fn names_are_unique(store: Arc<dyn KeyStore>) {
    let now = at("2030-01-01T00:00:00Z");
    store
        .create(&ApiKey::generate(), &new_key("ci", "", None), now)
        .await
        .expect("first");
    let second = store
        .create(&ApiKey::generate(), &new_key("ci", "", None), now)
        .await;
    assert!(matches!(second, Err(StoreError::Conflict(what)) if what == "a key named `ci`"));
}

async fn the_secret_is_never_stored(store: Arc<dyn KeyStore>) {
    let key = ApiKey::generate();
    let stored = store
        .create(&key, &new_key("ci", "a", None), at("2030-01-01T00:00:00Z"))
        .await
        .expect("create");
    let everything = format!("{stored:?}{:?}", store.list().await.expect("list"));
    assert!(!everything.contains(&key.reveal()[12..]));
}

async fn revoke_marks_once_and_list_shows_it(store: Arc<dyn KeyStore>) {
    let now = at("2030-01-01T00:00:00Z");
    let key = ApiKey::generate();
    store
        .create(&key, &new_key("a", "x", None), now)
        .await
        .expect("a");
    store
        .create(&ApiKey::generate(), &new_key("b", "x", None), now)
        .await
        .expect("b");
    let name = KeyName::parse("a").expect("name");
    let later = at("2030-01-02T00:00:00Z");
    assert!(store.revoke(&name, later).await.expect("revoke"));
    assert!(
        !store.revoke(&name, later).await.expect("again"),
        "already revoked"
    );
    assert!(!store
        .revoke(&KeyName::parse("nobody").expect("name"), later)
        .await
        .expect("none"));
    let found = store
        .find(&key.hash())
        .await
        .expect("find")
        .expect("still there");
    assert_eq!(found.revoked_at, Some(later));
    let listed = store.list().await.expect("list");
    let names: Vec<_> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(listed[1].revoked_at.is_none());
    store.pool().ping().await.expect("ping");
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                    let store = std::sync::Arc::new(super::SqliteKeyStore::connect(&url, &Default::default()).await.expect("sqlite"));
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let url = testkit::postgres().create_database();
                    let store = std::sync::Arc::new(super::PostgresKeyStore::connect(&url, &Default::default()).await.expect("postgres"));
                    super::$case(store).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_find_by_hash_round_trips,
    names_are_unique,
    the_secret_is_never_stored,
    revoke_marks_once_and_list_shows_it,
);

#[tokio::test]
async fn postgres_reconnects_to_a_migrated_schema() {
    let url = testkit::postgres().create_database();
    PostgresKeyStore::connect(&url, &Default::default())
        .await
        .expect("first");
    let again = PostgresKeyStore::connect(&url, &Default::default())
        .await
        .expect("second start migrates nothing");
    again.pool().ping().await.expect("ping");
}
