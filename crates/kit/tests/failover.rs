//! kit::storage through a PostgreSQL failover and with a read replica, on
//! real servers (`testkit::PgCluster`: a primary and a streaming standby):
//!
//! - a transaction cut by a crash is unavailable (503 with Retry-After),
//!   never a 500, and never half-applied; the pool reconnects after;
//! - a standby refusing a write (25006) is unavailable too;
//! - a failover through a repointed endpoint loses no acknowledged commit
//!   with a synchronous standby, and the same pool works on the new
//!   primary;
//! - the read replica's lag is measured, past the bound reads go back to
//!   the primary (counted), and a read URL naming a primary works.

use axum::http::StatusCode;
use kit::storage::{
    open_postgres, PoolConfig, ReadReplica, ReplicaRole, ReplicaSettings, Route, Schema, StoreError,
};
use kit::CancellationToken;
use sqlx::PgPool;
use std::time::Duration;
use testkit::{PgCluster, PgServer};

static ITEMS: Schema = Schema {
    module: "items",
    sqlite: &kit::storage::migrate!("./tests/storage_migrations/sqlite"),
    postgres: &kit::storage::migrate!("./tests/storage_migrations/postgres"),
    legacy_public_tables: &[],
};

const LIMIT: Duration = Duration::from_secs(30);

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn insert(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO items (name, created_us) VALUES ($1, 1)")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM items")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// A small pool that gives up quickly, so a dead server shows at once.
fn pool_config() -> PoolConfig {
    PoolConfig {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(2),
        ..PoolConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_by_a_crash_is_a_retryable_503_and_rolled_back() {
    let server = blocking(PgServer::start_durable).expect("start PostgreSQL");
    let url = server.url_of("postgres");
    let pool = open_postgres(&url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO items (name, created_us) VALUES ('cut', 1)")
        .execute(&mut *tx)
        .await
        .expect("insert inside the transaction");
    // The server crashes (immediate stop) and comes back while the
    // transaction is open: its connection is gone.
    blocking(|| server.restart()).expect("restart");
    let cut = StoreError::from(tx.commit().await.expect_err("the commit cannot succeed"));
    assert!(cut.is_unavailable(), "{cut:?}");
    let problem = cut.to_problem("the item database");
    assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = axum::response::IntoResponse::into_response(problem);
    assert_eq!(response.headers()["retry-after"], "1");
    // The same pool drops its dead connections and reconnects.
    testkit::eventually("the pool to reconnect", LIMIT, async || {
        insert(&pool, "after").await.ok()
    })
    .await;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM items ORDER BY name")
        .fetch_all(&pool)
        .await
        .expect("names");
    assert_eq!(names, ["after"], "the cut transaction left nothing behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_standby_is_unavailable_not_a_bug() {
    let cluster = blocking(PgCluster::start).expect("cluster");
    let standby = PgPool::connect(&PgCluster::url(cluster.standby_port(), "postgres"))
        .await
        .expect("connect to the standby");
    let refused = sqlx::query("CREATE TABLE t (id int)")
        .execute(&standby)
        .await
        .expect_err("a standby is read-only");
    let error = StoreError::from(refused);
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_through_a_repointed_endpoint_keeps_every_acknowledged_commit() {
    let cluster = blocking(PgCluster::start).expect("cluster");
    blocking(|| cluster.set_synchronous(true)).expect("synchronous");
    let rw = testkit::fault_proxy(format!("127.0.0.1:{}", cluster.primary_port())).await;
    let url = PgCluster::url(rw.addr().port(), "postgres");
    let pool = open_postgres(&url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    let mut acknowledged = 0;
    for i in 0..50 {
        insert(&pool, &format!("before-{i}")).await.expect("insert");
        acknowledged += 1;
    }
    blocking(|| cluster.kill_primary()).expect("kill the primary");
    let down = insert(&pool, "during").await.expect_err("no primary");
    assert!(down.is_unavailable(), "{down:?}");
    blocking(|| cluster.promote_standby()).expect("promote");
    rw.set_upstream(format!("127.0.0.1:{}", cluster.standby_port()))
        .await;
    testkit::eventually("writes on the new primary", LIMIT, async || {
        insert(&pool, "after").await.ok()
    })
    .await;
    // Every acknowledged commit is on the new primary (the "during" insert
    // was never acknowledged and never applied).
    assert_eq!(count(&pool).await, acknowledged + 1);
}

fn settings() -> ReplicaSettings {
    ReplicaSettings {
        max_lag: Duration::from_millis(500),
        check_interval: Duration::from_millis(50),
    }
}

/// A replica on `url` measured against `primary`, its monitor running.
fn monitored(url: &str, primary: &PgPool, stop: &CancellationToken) -> ReadReplica {
    let replica = ReadReplica::open(url, &pool_config(), "items", settings()).expect("replica");
    tokio::spawn(replica.clone().monitor(primary.clone(), stop.clone()));
    replica
}

fn lag_fallbacks() -> f64 {
    kit::metrics::render()
        .lines()
        .find(|l| l.starts_with("items_read_replica_fallbacks_total{reason=\"lag\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_back_to_the_primary_while_the_replica_lags_past_the_bound() {
    kit::metrics::install();
    let cluster = blocking(PgCluster::start).expect("cluster");
    let primary_url = blocking(|| cluster.create_database("lagged")).expect("database");
    let primary = open_postgres(&primary_url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    let stop = CancellationToken::new();
    let replica = monitored(
        &PgCluster::url(cluster.standby_port(), "lagged"),
        &primary,
        &stop,
    );
    testkit::eventually("the replica within its bound", LIMIT, async || {
        (replica.route() == Route::Replica).then_some(())
    })
    .await;
    assert_eq!(replica.role(), ReplicaRole::Standby);

    blocking(|| cluster.pause_replay()).expect("pause replay");
    let before = lag_fallbacks();
    insert(&primary, "unseen").await.expect("insert");
    // Writes keep coming; the replica replays none of them.
    let lag = testkit::eventually("the lag past the bound", LIMIT, async || {
        insert(&primary, &format!("w-{}", rand_name())).await.ok()?;
        (replica.route() == Route::Primary).then(|| replica.lag())
    })
    .await;
    assert!(lag.is_some_and(|l| l > settings().max_lag), "{lag:?}");
    assert!(lag_fallbacks() > before, "the fallback is counted");

    blocking(|| cluster.resume_replay()).expect("resume replay");
    testkit::eventually("the replica back within its bound", LIMIT, async || {
        (replica.route() == Route::Replica).then_some(())
    })
    .await;
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE name = 'unseen'")
        .fetch_one(replica.pool())
        .await
        .expect("read the replica");
    assert_eq!(seen, 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_primary_is_down_reads_go_to_the_replica_whatever_its_lag() {
    let cluster = blocking(PgCluster::start).expect("cluster");
    let primary_url = blocking(|| cluster.create_database("orphaned")).expect("database");
    let primary = open_postgres(&primary_url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    let stop = CancellationToken::new();
    let replica = monitored(
        &PgCluster::url(cluster.standby_port(), "orphaned"),
        &primary,
        &stop,
    );
    // Measured once (the database is on the standby) before it lags.
    testkit::eventually("the replica within its bound", LIMIT, async || {
        (replica.route() == Route::Replica).then_some(())
    })
    .await;
    blocking(|| cluster.pause_replay()).expect("pause replay");
    testkit::eventually("the lag past the bound", LIMIT, async || {
        insert(&primary, &format!("w-{}", rand_name())).await.ok()?;
        (replica.route() == Route::Primary).then_some(())
    })
    .await;
    // The primary dies: nothing can change any more, and the replica's
    // copy, however old, is the only one.
    blocking(|| cluster.kill_primary()).expect("kill the primary");
    testkit::eventually("reads on the replica again", LIMIT, async || {
        (replica.route() == Route::Replica).then_some(())
    })
    .await;
    assert!(
        replica.lag().is_some_and(|l| l > settings().max_lag),
        "{:?}",
        replica.lag()
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_url_that_names_the_primary_works_with_no_lag() {
    let url = testkit::postgres().create_database();
    let primary = open_postgres(&url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    insert(&primary, "one").await.expect("insert");
    let stop = CancellationToken::new();
    let replica = monitored(&url, &primary, &stop);
    testkit::eventually("the read URL measured", LIMIT, async || {
        (replica.role() != ReplicaRole::Unknown).then_some(())
    })
    .await;
    assert_eq!(replica.role(), ReplicaRole::Primary);
    assert_eq!(replica.lag(), Some(Duration::ZERO));
    assert_eq!(replica.route(), Route::Replica);
    assert_eq!(count(replica.pool()).await, 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_not_measured_yet_gets_no_reads() {
    let url = testkit::postgres().create_database();
    let primary = open_postgres(&url, &pool_config(), &ITEMS)
        .await
        .expect("open");
    let stop = CancellationToken::new();
    let nobody = format!("postgres://postgres@127.0.0.1:{}/x", testkit::free_port());
    let replica = monitored(&nobody, &primary, &stop);
    assert_eq!(replica.route(), Route::Primary, "not measured yet");
    assert_eq!(replica.lag(), None);
    stop.cancel();
}

fn rand_name() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
