//! The admin API's door and bad input: keys and the `admin` scope, unknown
//! routes, routes without a canary, bad shares and bodies, a database that
//! is down, and which listener serves it.

use crate::helpers::*;
use crate::splits::{canary_config, get_split, put_split, split_url, Database};
use gateway::keys::ApiKey;
use gateway::RouteConfig;
use kit::module::{Context, Module, Ports};
use kit::traffic::SplitRegistry;
use serde_json::{json, Value};
use std::sync::Arc;

async fn problem(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("json");
    (
        status,
        body["type"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn only_a_key_with_the_admin_scope_gets_in() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let reader = db.key("reader", "links:read").await;
    let admin = db.key("ops", "admin").await;
    let gw = spawn_gateway_with(canary_config(&stable, &canary, "door", 20), db.deps()).await;
    let url = split_url(&format!("http://{}", gw.addr), "door");
    let http = client();

    let none = http.put(&url).json(&json!({"percent": 5})).send().await;
    assert_eq!(
        problem(none.expect("put")).await,
        (401, "/problems/api-key-missing".into())
    );
    let unknown = http
        .get(&url)
        .header("x-api-key", ApiKey::generate().reveal())
        .send()
        .await;
    assert_eq!(
        problem(unknown.expect("get")).await,
        (401, "/problems/api-key-rejected".into())
    );
    let list = http
        .get(gw.url("/admin/v1/routes"))
        .bearer_auth(reader.reveal())
        .send()
        .await;
    assert_eq!(
        problem(list.expect("list")).await,
        (403, "/problems/api-key-scope".into())
    );
    let (status, _) = put_split(
        &format!("http://{}", gw.addr),
        "door",
        &reader,
        json!({"percent": 5}),
    )
    .await;
    assert_eq!(status, 403);
    let (_, state) = get_split(&format!("http://{}", gw.addr), "door", &admin).await;
    assert_eq!(state["percent"], 20.0, "nothing changed: {state}");

    let list = http
        .get(gw.url("/admin/v1/routes"))
        .bearer_auth(admin.reveal())
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);
    let body: Value = list.json().await.expect("json");
    let names: Vec<&str> = body["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["door"], "only routes with a canary pool");
    assert_eq!(stable.hits() + canary.hits(), 0, "nothing was proxied");
}

#[tokio::test]
async fn bad_routes_shares_and_bodies_are_refused_naming_them() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let mut cfg = canary_config(&stable, &canary, "bad", 20);
    // A route named by its prefix, `/` included.
    let mut by_prefix = RouteConfig::new("/api/links", "stable");
    by_prefix.canary_pool = Some("canary".into());
    cfg.routes.push(by_prefix);
    let gw = spawn_gateway_with(cfg, db.deps()).await;
    let base = format!("http://{}", gw.addr);

    let (status, body) = put_split(&base, "nope", &admin, json!({"percent": 5})).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("/problems/route-not-found"))
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("`nope`"),
        "{body}"
    );
    let (status, body) = put_split(&base, "bad-plain", &admin, json!({"percent": 5})).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("/problems/route-without-canary"))
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("`bad-plain`"),
        "{body}"
    );
    let (status, _) = get_split(&base, "bad-plain", &admin).await;
    assert_eq!(status, 409);

    for (bad, kind, needle) in [
        (json!({"percent": 101}), "invalid-field", "101"),
        (json!({"percent": -1}), "invalid-field", "-1"),
        (json!({"percent": "30"}), "invalid-body", "invalid type"),
        (json!({}), "invalid-body", "percent"),
        (
            json!({"percent": 30, "weight": 1}),
            "invalid-body",
            "weight",
        ),
        (
            json!({"percent": 30, "reason": "a\nb"}),
            "invalid-field",
            "reason",
        ),
    ] {
        let (status, body) = put_split(&base, "bad", &admin, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["type"], format!("/problems/{kind}"), "{bad}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(needle),
            "{bad}: {body}"
        );
    }
    let malformed = client()
        .put(split_url(&base, "bad"))
        .header("x-api-key", admin.reveal())
        .header("content-type", "application/json")
        .body("{\"percent\": ")
        .send()
        .await
        .expect("put");
    assert_eq!(
        problem(malformed).await,
        (400, "/problems/malformed-json".into())
    );
    let (_, state) = get_split(&base, "bad", &admin).await;
    assert_eq!(state["percent"], 20.0, "nothing changed: {state}");

    // `/api/links`, percent-encoded.
    let (status, state) =
        put_split(&base, "%2Fapi%2Flinks", &admin, json!({"percent": 12.5})).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["name"], "/api/links");
    assert_eq!(state["percent"], 12.5);
}

#[tokio::test]
async fn a_database_that_is_down_changes_nothing_and_says_503() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let gw = spawn_gateway_with(canary_config(&stable, &canary, "down", 20), db.deps()).await;
    let base = format!("http://{}", gw.addr);
    // The key is now cached: the check at the door does not need the database.
    let (status, _) = get_split(&base, "down", &admin).await;
    assert_eq!(status, 200);
    db.pool.close().await;
    let (status, body) = put_split(&base, "down", &admin, json!({"percent": 50})).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (503, Some("/problems/split-store-unavailable")),
        "{body}"
    );
    let (_, state) = get_split(&base, "down", &admin).await;
    assert_eq!(state["percent"], 20.0, "not applied without being stored");
    assert!(gw.gateway.refresh_splits().await.is_err());
}

#[tokio::test]
async fn the_public_listener_refuses_the_admin_api_unless_configured() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let mut cfg = canary_config(&stable, &canary, "public", 20);
    cfg.admin_on_public = false;
    let gw = spawn_gateway_with(cfg, db.deps()).await;
    let http = client();
    for path in [
        "/admin/v1/routes",
        "/admin/v1/routes/public/split",
        "//admin/v1/routes",
        "/admin/v1",
        "/admin/v1/anything/else",
    ] {
        let response = http
            .get(gw.url(path))
            .header("x-api-key", admin.reveal())
            .send()
            .await
            .expect("get");
        assert_eq!(
            problem(response).await,
            (403, "/problems/admin-not-public".into()),
            "{path}"
        );
    }
    let (status, _) = put_split(
        &format!("http://{}", gw.addr),
        "public",
        &admin,
        json!({"percent": 0}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        stable.hits() + canary.hits(),
        0,
        "never proxied, though `/` routes there"
    );
    // Other paths still are.
    let other = http
        .get(gw.url("/administrator"))
        .header("x-canary", "never")
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 200);

    // With `admin_on_public`, an unknown admin path is still never proxied.
    let served = spawn_gateway_with(canary_config(&stable, &canary, "public", 20), db.deps()).await;
    let (status, _) = get_split(&format!("http://{}", served.addr), "public", &admin).await;
    assert_eq!(status, 200);
    let unknown = http
        .get(served.url("/admin/v1/nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(problem(unknown).await, (404, "/problems/no-route".into()));
    assert_eq!(stable.hits(), 1, "only /administrator");
}

/// The module as the binary starts it: the admin API on its own listener
/// (port 0), and the gateway registered as the `gateway` kind.
#[tokio::test]
async fn the_module_serves_the_admin_api_on_its_own_listener() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let db = Database::new().await;
    let admin = db.key("ops", "admin").await;
    let mut cfg = canary_config(&stable, &canary, "listener", 20);
    cfg.admin_on_public = false;
    cfg.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let clock = clock();
    let ports = Ports::new();
    let limiter = gateway::limiter(
        None,
        gateway::RateLimitWhenDown::Open,
        Arc::new(clock.clone()),
    )
    .await
    .expect("limiter");
    ports.insert(limiter);
    let registry = SplitRegistry::new();
    ports.insert(registry.clone());
    let dir = tempfile::tempdir().expect("dir");
    let supervisor = kit::tasks::Supervisor::new();
    let context = Context {
        tasks: supervisor.for_module(gateway::SERVICE),
        clock: Arc::new(clock),
        database_url: Some(db.url.clone()),
        data_dir: dir.path().to_path_buf(),
        public_url: "http://127.0.0.1:8080".into(),
        http: kit::http::HttpConfig::default(),
        ports,
    };
    let module = gateway::GatewayModule::start(cfg, context)
        .await
        .expect("start");
    let addr = module.admin_addr().expect("admin listener");
    assert_ne!(addr.port(), 0);
    let base = format!("http://{addr}");

    let splits = registry.get("gateway").expect("registered");
    splits
        .set("listener", 60.0, "controller")
        .await
        .expect("set");
    let (status, state) = get_split(&base, "listener", &admin).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["percent"], 60.0);
    assert_eq!(state["updated_by"], "controller");
    let (status, state) = put_split(&base, "listener", &admin, json!({"percent": 5})).await;
    assert_eq!((status, state["percent"].as_f64()), (200, Some(5.0)));
    assert_eq!(splits.get("listener").await.expect("get").percent, 5.0);
    let other = client()
        .get(format!("{base}/anything"))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 404, "the admin listener proxies nothing");

    module.shutdown().await;
    assert!(
        registry.get("gateway").is_none(),
        "unregistered on shutdown"
    );
    assert!(
        client()
            .get(format!("{base}/admin/v1/routes"))
            .send()
            .await
            .is_err(),
        "closed"
    );
    assert!(
        supervisor.failures().is_empty(),
        "{:?}",
        supervisor.failures()
    );
}
