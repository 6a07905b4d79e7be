use super::*;
use axum::routing::get;
use gateway::keys::{KeyName, NewKey, Scopes};
use kit::health::ReadinessCheck;
use std::future::Future;
use std::pin::Pin;

struct Failing(&'static str);

impl ReadinessCheck for Failing {
    fn name(&self) -> &str {
        self.0
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Err("database error".to_string()) })
    }
}

fn module(name: &'static str, needs: &'static [Port], fronts_others: bool) -> ModuleView {
    ModuleView {
        name,
        readiness: Readiness::new(),
        needs,
        fronts_others,
        serves_routes: true,
    }
}

fn requests(service: &str, ok: u64, failed: u64) -> String {
    format!(
        "http_server_request_duration_seconds_count{{service=\"{service}\",http_response_status_code=\"200\"}} {ok}\n\
         http_server_request_duration_seconds_count{{service=\"{service}\",http_response_status_code=\"500\"}} {failed}\n\
         http_server_request_duration_seconds_bucket{{service=\"{service}\",le=\"0.1\"}} {}\n\
         http_server_request_duration_seconds_bucket{{service=\"{service}\",le=\"+Inf\"}} {}\n",
        ok + failed,
        ok + failed
    )
}

fn platform() -> PlatformView {
    let shortener = module("shortener", &[Port::Database], false);
    shortener
        .readiness
        .add_check(Arc::new(Failing("shortener-database")));
    PlatformView::new(
        vec![
            module("orders", &[Port::Database, Port::Bus], false),
            module("notifier", &[Port::Bus], false),
            shortener,
            module("gateway", &[Port::Database, Port::Limiter], true),
        ],
        Adapters {
            database: Some("sqlite"),
            bus: Some(None),
            limiter: Some("in-process"),
        },
    )
}

#[tokio::test]
async fn modules_carry_readiness_and_traffic_in_start_order() {
    let view = platform();
    let before = view.modules().await;
    assert_eq!(
        before.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["orders", "notifier", "shortener", "gateway"]
    );
    assert_eq!(before[0].request_rate, None, "no samples yet");
    view.observe(
        0,
        &format!(
            "{}{}",
            requests("gateway", 0, 0),
            requests("shortener", 0, 0)
        ),
    );
    view.observe(
        10_000,
        &format!(
            "{}{}",
            requests("gateway", 190, 10),
            requests("shortener", 100, 0)
        ),
    );
    let modules = view.modules().await;
    let gateway = &modules[3];
    assert!(gateway.ready);
    assert_eq!(gateway.request_rate, Some(20.0));
    assert_eq!(gateway.error_ratio, Some(0.05));
    assert!(gateway.p99_seconds.is_some_and(|p| p > 0.0 && p <= 0.1));
    assert_eq!(gateway.depends_on, ["database", "limiter"]);
    let shortener = &modules[2];
    assert!(!shortener.ready);
    assert_eq!(
        shortener.not_ready_reasons,
        ["shortener-database: database error"]
    );
    assert_eq!(shortener.request_rate, Some(10.0));
    assert_eq!(modules[0].request_rate, Some(0.0), "orders had no requests");
}

#[tokio::test]
async fn dependencies_say_their_adapter_and_state() {
    let deps = platform().dependencies().await;
    let by_name = |n: &str| deps.iter().find(|d| d.name == n).cloned();
    let database = by_name("database").expect("database");
    assert_eq!(database.adapter, "sqlite");
    assert_eq!(database.state, DependencyState::Down);
    assert!(database
        .detail
        .is_some_and(|d| d.contains("shortener-database")));
    let bus = by_name("bus").expect("bus");
    assert_eq!(
        (bus.adapter.as_str(), bus.state),
        ("in-process", DependencyState::Up)
    );
    let limiter = by_name("limiter").expect("limiter");
    assert_eq!(limiter.state, DependencyState::Up);
}

#[tokio::test]
async fn the_graph_goes_client_gateway_modules_with_rates_and_the_event_edge() {
    let view = platform();
    view.observe(0, &requests("shortener", 0, 0));
    view.observe(
        5_000,
        &format!(
            "{}orders_outbox_published_total 10\n",
            requests("shortener", 50, 0)
        ),
    );
    let graph = view.graph();
    let edge = |from: &str, to: &str| {
        graph
            .edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .cloned()
    };
    assert!(edge("client", "gateway").is_some());
    let shortener = edge("gateway", "shortener").expect("gateway -> shortener");
    assert_eq!(
        (shortener.kind, shortener.rate),
        (EdgeKind::Http, Some(10.0))
    );
    let events = edge("orders", "notifier").expect("event edge");
    assert_eq!((events.kind, events.rate), (EdgeKind::Event, Some(2.0)));
    assert_eq!(
        edge("orders", "bus").map(|e| e.kind),
        Some(EdgeKind::Dependency)
    );
    assert!(edge("client", "shortener").is_none());
    for id in ["client", "gateway", "orders", "database", "bus", "limiter"] {
        assert!(graph.nodes.iter().any(|n| n.id == id), "{id}");
    }
}

fn api() -> RouterApi {
    let router = Router::new()
        .route(
            "/v1/things",
            get(|| async { axum::Json(serde_json::json!({"things": [1, 2]})) }),
        )
        .route("/v1/text", get(|| async { "plain" }))
        .route(
            "/v1/echo",
            axum::routing::post(
                |axum::Json(body): axum::Json<serde_json::Value>| async move { axum::Json(body) },
            ),
        )
        .route(
            "/v1/big",
            get(|| async { "x".repeat(MAX_ANSWER_BYTES + 1) }),
        )
        .route(
            "/v1/gone",
            get(|| async {
                (
                    http::StatusCode::NOT_FOUND,
                    axum::Json(
                        serde_json::json!({"type": "about:blank", "detail": "no such canary"}),
                    ),
                )
            }),
        );
    RouterApi::new("canary", router)
}

#[tokio::test]
async fn a_module_api_answers_json_or_says_why_not() {
    let api = api();
    let things = api.get_json("/v1/things?limit=2").await.expect("json");
    assert_eq!(things["things"][1], 2);
    match api.get_json("/v1/gone").await {
        Err(SourceError::Status {
            what,
            status,
            detail,
        }) => {
            assert_eq!(
                (what.as_str(), status, detail.as_str()),
                ("canary", 404, "no such canary")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        api.get_json("/nothing").await,
        Err(SourceError::Status { status: 404, .. })
    ));
    assert!(matches!(
        api.get_json("/v1/text").await,
        Err(SourceError::Unavailable(_))
    ));
    assert!(matches!(
        api.get_json("/v1/big").await,
        Err(SourceError::Unavailable(_))
    ));
    assert!(matches!(
        api.get_json("not a path").await,
        Err(SourceError::Unavailable(_))
    ));
}

#[tokio::test]
async fn keys_are_checked_by_hash_and_a_revoked_or_malformed_one_has_no_scopes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let store = gateway::keys::connect(&url, &kit::storage::PoolConfig::with_max_connections(2))
        .await
        .expect("key store");
    let key = ApiKey::generate();
    let name = KeyName::parse("ops").expect("name");
    let new = NewKey {
        name: name.clone(),
        scopes: Scopes::parse("console:read,links:write").expect("scopes"),
        rate: None,
    };
    store
        .create(&key, &new, chrono::Utc::now())
        .await
        .expect("create");
    let keys = GatewayKeys::new(store.clone());
    let scopes = keys.scopes(key.reveal()).await.expect("lookup");
    assert_eq!(
        scopes,
        Some(vec!["console:read".to_string(), "links:write".to_string()])
    );
    assert_eq!(
        keys.scopes(ApiKey::generate().reveal())
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(keys.scopes("hunter2").await.expect("lookup"), None);
    store
        .revoke(&name, chrono::Utc::now())
        .await
        .expect("revoke");
    assert_eq!(keys.scopes(key.reveal()).await.expect("lookup"), None);
}

#[test]
fn the_compiled_in_policy_has_its_bands() {
    let policy = error_budget_policy().expect("policy");
    assert!(!policy.rules().is_empty());
    assert!(policy.rule_for(0.05).is_some());
}
