//! The canary controller's remote gateway target against the gateway's
//! real admin API (the split over HTTP, with an `admin` key): what a
//! controller in another pod does.

use canary::target::{HttpGateway, Target, TargetError};
use gateway::keys::{ApiKey, KeyName, NewKey, Scopes};
use gateway::{Gateway, GatewayConfig, RouteConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

async fn admin_api() -> (url::Url, ApiKey, ApiKey, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
    let keys = gateway::keys::connect(&url, &Default::default())
        .await
        .unwrap();
    let make = |name: &str, scopes: &str| {
        let key = ApiKey::generate();
        let new = NewKey {
            name: KeyName::parse(name).unwrap(),
            scopes: Scopes::parse(scopes).unwrap(),
            rate: None,
        };
        (key, new)
    };
    let (admin, admin_new) = make("release", "admin");
    let (reader, reader_new) = make("reader", "links:read");
    keys.create(&admin, &admin_new, chrono::Utc::now())
        .await
        .unwrap();
    keys.create(&reader, &reader_new, chrono::Utc::now())
        .await
        .unwrap();
    let mut pools = BTreeMap::new();
    pools.insert("stable".to_string(), axum::Router::new());
    pools.insert("canary".to_string(), axum::Router::new());
    let mut route = RouteConfig::new("/", "stable");
    route.name = Some("links".into());
    route.canary_pool = Some("canary".into());
    let config = GatewayConfig {
        routes: vec![route],
        ..GatewayConfig::default()
    };
    let clock: Arc<dyn kit::Clock> = Arc::new(kit::SystemClock);
    let limiter = Arc::new(ratelimit::LocalLimiter::new(clock.clone()));
    let gateway = Gateway::build(config, pools, Some(keys), None, limiter, clock).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::from(gateway.admin_router());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (
        url::Url::parse(&format!("http://{addr}/")).unwrap(),
        admin,
        reader,
        dir,
    )
}

#[tokio::test]
async fn the_remote_gateway_target_steps_the_split_through_the_admin_api() {
    let (base, admin, reader, _dir) = admin_api().await;
    let target = HttpGateway::new(base.clone(), "links", Some(admin.reveal().to_string())).unwrap();
    let split = target.split().await.unwrap();
    assert_eq!(
        (
            split.baseline.as_str(),
            split.canary.as_str(),
            split.percent
        ),
        ("stable", "canary", 0.0)
    );
    assert_eq!(
        target
            .set_weight(30.0, "canary links-v2 step 3")
            .await
            .unwrap()
            .percent,
        30.0
    );
    assert_eq!(target.split().await.unwrap().percent, 30.0);
    assert_eq!(
        target.promote("links-v2 promoted").await.unwrap().percent,
        100.0
    );
    assert_eq!(
        target.set_weight(0.0, "rollback").await.unwrap().percent,
        0.0
    );

    let unknown = HttpGateway::new(base.clone(), "nope", Some(admin.reveal().to_string())).unwrap();
    assert!(matches!(
        unknown.split().await,
        Err(TargetError::Unknown { .. })
    ));
    let no_scope =
        HttpGateway::new(base.clone(), "links", Some(reader.reveal().to_string())).unwrap();
    let refused = no_scope.set_weight(50.0, "x").await.unwrap_err();
    assert!(matches!(refused, TargetError::Refused { .. }), "{refused}");
    assert!(refused.to_string().contains("403"), "{refused}");
    let no_key = HttpGateway::new(base, "links", None).unwrap();
    assert!(matches!(
        no_key.split().await,
        Err(TargetError::Refused { .. })
    ));
}
