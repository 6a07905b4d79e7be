//! Canary splits changed at runtime: the share takes effect on the next
//! request (the pin header still wins), survives a restart on the same
//! database, and reaches another replica on its next refresh.

use crate::helpers::*;
use gateway::keys::{ApiKey, KeyName, KeyStore, NewKey, Scopes};
use gateway::splits::SplitStore;
use gateway::{GatewayConfig, RouteConfig};
use kit::storage::Pool;
use serde_json::{json, Value};
use std::sync::Arc;

/// The gateway's database in a temporary directory.
pub struct Database {
    pub url: String,
    pub pool: Pool,
    _dir: tempfile::TempDir,
}

impl Database {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        Self {
            pool: Self::open(&url).await,
            url,
            _dir: dir,
        }
    }

    /// Another process's pool on the same file.
    pub async fn open(url: &str) -> Pool {
        gateway::database::open(url, &Default::default())
            .await
            .expect("open")
    }

    pub fn keys(&self) -> Arc<dyn KeyStore> {
        gateway::keys::on(self.pool.clone())
    }

    pub fn splits(&self) -> Arc<dyn SplitStore> {
        gateway::splits::on(self.pool.clone())
    }

    pub async fn key(&self, name: &str, scopes: &str) -> ApiKey {
        let key = ApiKey::generate();
        let new = NewKey {
            name: KeyName::parse(name).expect("name"),
            scopes: Scopes::parse(scopes).expect("scopes"),
            rate: None,
        };
        self.keys()
            .create(&key, &new, chrono::Utc::now())
            .await
            .expect("create key");
        key
    }

    pub fn deps(&self) -> Deps {
        Deps {
            keys: Some(self.keys()),
            splits: Some(self.splits()),
            ..Deps::default()
        }
    }
}

/// A route `name` on `/` from pool `stable` with canary pool `canary` at
/// `percent`, plus a route without a canary; the admin API on the public
/// listener.
pub fn canary_config(
    stable: &Upstream,
    canary: &Upstream,
    name: &str,
    percent: u8,
) -> GatewayConfig {
    let mut route = RouteConfig::new("/", "stable");
    route.name = Some(name.to_string());
    route.canary_pool = Some("canary".into());
    route.canary_percent = percent;
    let mut plain = RouteConfig::new("/plain", "stable");
    plain.name = Some(format!("{name}-plain"));
    let mut cfg = config(
        &[("stable", &[stable]), ("canary", &[canary])],
        vec![route, plain],
    );
    cfg.admin_on_public = true;
    cfg
}

pub fn split_url(base: &str, route: &str) -> String {
    format!("{base}/admin/v1/routes/{route}/split")
}

/// `PUT` of `body` to the split of `route`; status and JSON answer.
pub async fn put_split(base: &str, route: &str, key: &ApiKey, body: Value) -> (u16, Value) {
    let response = client()
        .put(split_url(base, route))
        .header("x-api-key", key.reveal())
        .json(&body)
        .send()
        .await
        .expect("put");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn get_split(base: &str, route: &str, key: &ApiKey) -> (u16, Value) {
    let response = client()
        .get(split_url(base, route))
        .header("x-api-key", key.reveal())
        .send()
        .await
        .expect("get");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Which pool served each of `n` requests to `/` (pinned by `pin`).
async fn served_by(gw: &TestGateway, n: usize, pin: Option<&str>) -> (usize, usize) {
    let http = client();
    let (mut stable, mut canary) = (0, 0);
    for _ in 0..n {
        let mut request = http.get(gw.url("/"));
        if let Some(pin) = pin {
            request = request.header("x-canary", pin);
        }
        let response = request.send().await.expect("request");
        match response.headers()["x-gateway-pool"].to_str().expect("pool") {
            "stable" => stable += 1,
            "canary" => canary += 1,
            other => panic!("served by {other}"),
        }
    }
    (stable, canary)
}

fn base(gw: &TestGateway) -> String {
    format!("http://{}", gw.addr)
}

#[tokio::test]
async fn a_changed_share_takes_effect_and_the_pin_header_still_wins() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let gw = spawn_gateway_with(canary_config(&stable, &canary, "effect", 20), db.deps()).await;

    let (status, state) = put_split(&base(&gw), "effect", &admin, json!({"percent": 0})).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["percent"], 0.0);
    assert_eq!(state["baseline"], "stable");
    assert_eq!(state["canary"], "canary");
    assert_eq!(state["updated_by"], "key ops");
    assert_eq!(served_by(&gw, 40, None).await, (40, 0), "at 0% none");
    assert_eq!(served_by(&gw, 5, Some("always")).await, (0, 5), "pinned");

    let (status, state) = put_split(
        &base(&gw),
        "effect",
        &admin,
        json!({"percent": 100, "reason": "promote"}),
    )
    .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["updated_by"], "key ops: promote");
    assert_eq!(served_by(&gw, 40, None).await, (0, 40), "at 100% all");
    assert_eq!(served_by(&gw, 5, Some("never")).await, (5, 0), "pinned");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("gateway_split_changes_total{gateway_route=\"effect\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_canary_weight_percent{gateway_route=\"effect\"} 100"),
        "{metrics}"
    );
    // The same share set again is no change.
    put_split(&base(&gw), "effect", &admin, json!({"percent": 100})).await;
    assert!(gw
        .metrics()
        .await
        .contains("gateway_split_changes_total{gateway_route=\"effect\"} 2"));
}

#[tokio::test]
async fn a_restart_on_the_same_database_keeps_the_canary_share() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let first = spawn_gateway_with(canary_config(&stable, &canary, "restart", 10), db.deps()).await;
    let (status, _) = put_split(&base(&first), "restart", &admin, json!({"percent": 37.5})).await;
    assert_eq!(status, 200);
    drop(first);

    let pool = Database::open(&db.url).await;
    let deps = Deps {
        keys: Some(gateway::keys::on(pool.clone())),
        splits: Some(gateway::splits::on(pool)),
        ..Deps::default()
    };
    let again = spawn_gateway_with(canary_config(&stable, &canary, "restart", 10), deps).await;
    let (status, state) = get_split(&base(&again), "restart", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(state["percent"], 37.5, "the stored share, not the config's");
    assert_eq!(state["updated_by"], "key ops");
    assert!(state["updated_at"].is_string(), "{state}");

    // A route pointed at other pools since ignores the stale share.
    let mut promoted = canary_config(&stable, &canary, "restart", 10);
    promoted.routes[0].pool = "canary".into();
    promoted.routes[0].canary_pool = Some("stable".into());
    let reconfigured = spawn_gateway_with(promoted, db.deps()).await;
    let (_, state) = get_split(&base(&reconfigured), "restart", &admin).await;
    assert_eq!(state["percent"], 10.0, "{state}");
    assert!(state["updated_by"].is_null(), "{state}");
}

#[tokio::test]
async fn replicas_on_one_database_converge_on_their_next_refresh() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let a = spawn_gateway_with(canary_config(&stable, &canary, "replicas", 0), db.deps()).await;
    let b = spawn_gateway_with(canary_config(&stable, &canary, "replicas", 0), db.deps()).await;

    let (status, _) = put_split(&base(&a), "replicas", &admin, json!({"percent": 100})).await;
    assert_eq!(status, 200);
    assert_eq!(
        served_by(&b, 10, None).await,
        (10, 0),
        "b has not read it yet"
    );
    assert_eq!(b.gateway.refresh_splits().await.expect("refresh"), 1);
    assert_eq!(served_by(&b, 10, None).await, (0, 10), "b follows a");
    let (_, state) = get_split(&base(&b), "replicas", &admin).await;
    assert_eq!(state["updated_by"], "key ops");
    // Nothing new: nothing applied; a's own change is not applied twice.
    assert_eq!(b.gateway.refresh_splits().await.expect("refresh"), 0);
    assert_eq!(a.gateway.refresh_splits().await.expect("refresh"), 0);

    // Through the port, as an in-process canary controller does.
    use kit::traffic::TrafficSplits;
    let rolled_back = b
        .gateway
        .set("replicas", 0.0, "canary: rollback")
        .await
        .expect("set");
    assert_eq!(rolled_back.percent, 0.0);
    assert_eq!(a.gateway.refresh_splits().await.expect("refresh"), 1);
    assert_eq!(served_by(&a, 10, None).await, (10, 0));
    let listed = a.gateway.list().await.expect("list");
    assert_eq!(listed.len(), 1, "only canary routes: {listed:?}");
    assert_eq!(listed[0].updated_by.as_deref(), Some("canary: rollback"));
}

#[tokio::test]
async fn without_a_database_a_share_changes_in_memory() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let gw = spawn_gateway(canary_config(&stable, &canary, "memory", 0)).await;
    use kit::traffic::TrafficSplits;
    let state = gw.gateway.set("memory", 100.0, "test").await.expect("set");
    assert_eq!(state.percent, 100.0);
    assert_eq!(served_by(&gw, 10, None).await, (0, 10));
    assert_eq!(gw.gateway.refresh_splits().await.expect("no store"), 0);
}

#[tokio::test]
async fn each_change_is_recorded_on_the_change_timeline_with_who_asked() {
    use kit::changes::{ChangeKind, ChangeRecorder, MemoryChangeLog};
    use kit::traffic::TrafficSplits;
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let gw = spawn_gateway_with(canary_config(&stable, &canary, "web", 20), db.deps()).await;
    let log = MemoryChangeLog::new(10);
    gw.gateway.record_changes(ChangeRecorder(log.clone()));
    let base = format!("http://{}", gw.addr);

    let (status, _) = put_split(
        &base,
        "web",
        &admin,
        json!({"percent": 35, "reason": "more"}),
    )
    .await;
    assert_eq!(status, 200);
    // The same share again is not a change.
    put_split(&base, "web", &admin, json!({"percent": 35})).await;
    gw.gateway
        .set("web", 50.0, "canary web step 3: 50%")
        .await
        .expect("controller step");

    let events: Vec<_> = log.snapshot().into_iter().map(|c| c.event).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let by_key = &events[0];
    assert_eq!(by_key.kind, ChangeKind::SplitChanged);
    assert_eq!(by_key.service, "gateway");
    assert_eq!(by_key.actor, "key:ops");
    assert_eq!(by_key.subject, "web");
    assert_eq!(by_key.at, kit::Clock::now(&gw.clock));
    assert!(
        by_key.summary.starts_with("canary share 20% -> 35%"),
        "{}",
        by_key.summary
    );
    assert!(
        by_key.summary.contains("key ops: more"),
        "{}",
        by_key.summary
    );
    assert!(!by_key.summary.contains(admin.reveal()));
    let by_controller = &events[1];
    assert_eq!(by_controller.actor, "canary:web");
    assert!(by_controller.summary.starts_with("canary share 35% -> 50%"));
}
