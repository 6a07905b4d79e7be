//! One conformance suite for the `SplitStore` adapters: SQLite in a temp
//! file, PostgreSQL on the harness's private server (a fresh database per
//! test). Both share the gateway's database with the key store.

use chrono::{DateTime, Utc};
use gateway::splits::{SplitStore, StoredSplit};
use std::sync::Arc;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn split(route: &str, basis_points: u32, when: &str, by: &str) -> StoredSplit {
    StoredSplit {
        route: route.to_string(),
        baseline_pool: "stable".into(),
        canary_pool: "canary".into(),
        basis_points,
        updated_at: at(when),
        updated_by: by.to_string(),
    }
}

async fn saved_splits_load_back_by_route(store: Arc<dyn SplitStore>) {
    assert!(store.load().await.expect("empty").is_empty());
    let links = split(
        "/api/links",
        3_750,
        "2030-01-01T00:00:00.123456Z",
        "key ops",
    );
    let orders = split("orders", 0, "2030-01-01T00:00:01Z", "canary: rollback");
    store.save(&orders).await.expect("save");
    store.save(&links).await.expect("save");
    assert_eq!(store.load().await.expect("load"), [links, orders]);
}

async fn a_second_save_replaces_the_row(store: Arc<dyn SplitStore>) {
    store
        .save(&split("links", 500, "2030-01-01T00:00:00Z", "first"))
        .await
        .expect("save");
    let mut second = split("links", 10_000, "2030-01-01T00:01:00Z", "second");
    second.canary_pool = "links-v2".into();
    store.save(&second).await.expect("save again");
    assert_eq!(store.load().await.expect("load"), [second]);
}

async fn a_share_above_100_percent_is_refused_by_the_table(store: Arc<dyn SplitStore>) {
    let result = store
        .save(&split("links", 10_001, "2030-01-01T00:00:00Z", "bug"))
        .await;
    assert!(result.is_err(), "stored 100.01%");
    assert!(store.load().await.expect("load").is_empty());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                    let pool = gateway::database::open(&url, &Default::default()).await.expect("sqlite");
                    super::$case(gateway::splits::on(pool)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let url = testkit::postgres().create_database();
                    let pool = gateway::database::open(&url, &Default::default()).await.expect("postgres");
                    super::$case(gateway::splits::on(pool)).await;
                }
            )*
        }
    };
}

conformance!(
    saved_splits_load_back_by_route,
    a_second_save_replaces_the_row,
    a_share_above_100_percent_is_refused_by_the_table,
);
