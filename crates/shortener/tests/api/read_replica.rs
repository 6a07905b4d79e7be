//! Redirect look-ups from a read replica (`database_read_url`): a real
//! primary and streaming standby (`testkit::PgCluster`), the standby's
//! replay paused to make it lag on purpose.
//!
//! The staleness bound under test: once a link is deleted (or disabled)
//! on the primary, the redirect may still be served from the lagging
//! replica, but only until the measured lag passes
//! `shortener.read_replica_max_lag`; then look-ups go back to the primary
//! and the link stops redirecting while the replica is still behind.
//! Nothing stale is kept in the cache (the cache unit tests cover the
//! settle time), so after the replica catches up the link stays gone.

use crate::helpers::spawn_with_read_replica;
use serde_json::json;
use shortener::ShortenerConfig;
use std::time::Duration;
use testkit::PgCluster;

const LIMIT: Duration = Duration::from_secs(30);

fn config() -> ShortenerConfig {
    ShortenerConfig {
        read_replica_max_lag: Duration::from_millis(500),
        read_replica_check_interval: Duration::from_millis(50),
        ..ShortenerConfig::default()
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_link_stops_redirecting_once_the_replica_lags_past_the_bound() {
    let cluster = blocking(PgCluster::start).expect("cluster");
    let db_url = blocking(|| cluster.create_database("links_lag")).expect("database");
    let read_url = PgCluster::url(cluster.standby_port(), "links_lag");
    let (app, replica) = spawn_with_read_replica(&db_url, &read_url, config()).await;
    let bound = config().read_replica_max_lag;

    app.create(json!({"url": "https://example.com/a", "slug": "stale"}))
        .await;
    assert_eq!(app.get("/stale").await.status(), 302);
    blocking(|| cluster.wait_replayed()).expect("replayed");
    testkit::eventually("the replica within its bound", LIMIT, async || {
        replica.lag().filter(|lag| *lag <= bound)
    })
    .await;
    assert_eq!(app.get("/stale").await.status(), 302);

    // The replica stops replaying: it keeps the link after the delete.
    blocking(|| cluster.pause_replay()).expect("pause replay");
    // A link created now is not on the replica, and redirects at once: a
    // replica's "not found" is confirmed on the primary.
    app.create(json!({"url": "https://example.com/b", "slug": "fresh"}))
        .await;
    assert_eq!(app.get("/fresh").await.status(), 302);

    assert_eq!(app.delete("/api/v1/links/stale").await.status(), 204);
    testkit::eventually("the deleted link to stop redirecting", LIMIT, async || {
        (app.get("/stale").await.status() == 404).then_some(())
    })
    .await;
    // It stopped while the replica still has it: the look-up went back to
    // the primary because the lag passed the bound.
    let on_replica = blocking(|| {
        cluster.sql(
            cluster.standby_port(),
            "links_lag",
            "SELECT count(*) FROM shortener.links WHERE slug = 'stale'",
        )
    })
    .expect("read the replica");
    assert_eq!(on_replica, "1", "the replica is still behind");
    assert!(
        replica.lag().is_none_or(|lag| lag > bound),
        "{:?}",
        replica.lag()
    );

    // Caught up again, the replica serves look-ups, and the link stays gone.
    blocking(|| cluster.resume_replay()).expect("resume replay");
    testkit::eventually("the replica back within its bound", LIMIT, async || {
        replica.lag().filter(|lag| *lag <= bound)
    })
    .await;
    assert_eq!(app.get("/stale").await.status(), 404);
    assert_eq!(app.get("/fresh").await.status(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_url_that_names_the_primary_serves_redirects() {
    let db_url = testkit::postgres().create_database();
    let (app, replica) = spawn_with_read_replica(&db_url, &db_url, config()).await;
    app.create(json!({"url": "https://example.com/p", "slug": "onprimary"}))
        .await;
    testkit::eventually("the read URL measured", LIMIT, async || {
        (replica.role() != kit::storage::ReplicaRole::Unknown).then_some(())
    })
    .await;
    // Logged as a warning; served, with no lag.
    assert_eq!(replica.role(), kit::storage::ReplicaRole::Primary);
    assert_eq!(replica.lag(), Some(Duration::ZERO));
    assert_eq!(app.get("/onprimary").await.status(), 302);
}

#[test]
fn the_bound_and_its_interval_are_checked() {
    let zero = ShortenerConfig {
        read_replica_max_lag: Duration::ZERO,
        ..ShortenerConfig::default()
    };
    let error = zero.validate().expect_err("zero bound");
    assert!(
        error.to_string().contains("shortener.read_replica_max_lag"),
        "{error}"
    );
    let coarse = ShortenerConfig {
        read_replica_max_lag: Duration::from_secs(1),
        read_replica_check_interval: Duration::from_secs(1),
        ..ShortenerConfig::default()
    };
    let error = coarse.validate().expect_err("interval not below the bound");
    assert!(
        error
            .to_string()
            .contains("shortener.read_replica_check_interval"),
        "{error}"
    );
    assert!(ShortenerConfig::default().validate().is_ok());
}
