//! Configuration mistakes are found by `validate()` before anything
//! opens, each naming the key that is wrong.

use gateway::{GatewayConfig, PoolConfig, RateLimitWhenDown, RouteConfig};

fn invalid(config: &GatewayConfig) -> String {
    match config.validate() {
        Ok(()) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn with_pool(endpoints: &[&str]) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    let endpoints = endpoints.iter().map(|e| e.to_string()).collect();
    config
        .pools
        .insert("api".into(), PoolConfig::new(endpoints));
    config.routes.push(RouteConfig::new("/", "api"));
    config
}

#[test]
fn the_defaults_and_a_plain_pool_are_valid() {
    GatewayConfig::default().validate().expect("defaults");
    let config = with_pool(&["http://127.0.0.1:9000", "https://api.example"]);
    config.validate().expect("valid");
    config.validate_pools(&[]).expect("pools known");
}

#[test]
fn each_mistake_names_its_key() {
    let cases: Vec<(&str, GatewayConfig)> = vec![
        (
            "gateway.pools.api.endpoints[1]",
            with_pool(&["http://a:1", "ftp://b:2"]),
        ),
        (
            "gateway.pools.api.endpoints[0]",
            with_pool(&["http://a:1/path"]),
        ),
        ("gateway.pools.api.endpoints", with_pool(&[])),
        ("gateway.pools.api.ca_file", {
            let mut c = with_pool(&["https://a:1"]);
            c.pools.get_mut("api").expect("pool").ca_file = Some("/nonexistent/ca.pem".into());
            c
        }),
        ("gateway.routes[0].max_body_bytes", {
            let mut c = with_pool(&["http://a:1"]);
            c.routes[0].max_body_bytes = Some(0);
            c
        }),
        (
            "gateway.anon_rate",
            GatewayConfig {
                anon_rate: Some("lots".into()),
                ..GatewayConfig::default()
            },
        ),
        ("gateway.routes[0].timeout", {
            let mut c = with_pool(&["http://a:1"]);
            c.routes[0].timeout = std::time::Duration::ZERO;
            c
        }),
        ("gateway.routes[0].prefix", {
            let mut c = with_pool(&["http://a:1"]);
            c.routes[0].prefix = "/a/../b".into();
            c
        }),
        ("gateway.split_refresh", {
            let mut c = with_pool(&["http://a:1"]);
            c.split_refresh = std::time::Duration::ZERO;
            c
        }),
        // Splits are changed by route name: two canary routes of one name
        // (here both named by the prefix `/`) could not be told apart.
        ("gateway.routes[1].name", {
            let mut c = with_pool(&["http://a:1"]);
            c.routes[0].canary_pool = Some("api".into());
            let mut post = RouteConfig::new("/", "api");
            post.method = Some("POST".into());
            post.canary_pool = Some("api".into());
            c.routes.push(post);
            c
        }),
    ];
    for (key, config) in cases {
        let message = invalid(&config);
        assert!(message.contains(&format!("`{key}`")), "{key}: {message}");
    }
}

#[test]
fn routes_must_name_a_configured_or_in_process_pool() {
    let mut config = with_pool(&["http://a:1"]);
    config.routes.push(RouteConfig::new("/local", "local"));
    config.validate().expect("fields are fine");
    let error = config.validate_pools(&[]).expect_err("unknown pool");
    assert!(
        error.to_string().contains("`gateway.routes[1].pool`"),
        "{error}"
    );
    config.validate_pools(&["local"]).expect("in-process pool");
    let error = config.validate_pools(&["api"]).expect_err("name taken");
    assert!(error.to_string().contains("`gateway.pools.api`"), "{error}");
}

#[test]
fn rate_limit_when_down_is_open_or_closed() {
    let closed: GatewayConfig =
        serde_json::from_str(r#"{"rate_limit_when_down":"closed"}"#).expect("closed");
    assert_eq!(closed.rate_limit_when_down, RateLimitWhenDown::Closed);
    let bad = serde_json::from_str::<GatewayConfig>(r#"{"rate_limit_when_down":"sideways"}"#);
    assert!(bad.is_err());
}

#[test]
fn the_admin_listener_is_an_address_and_off_by_default() {
    let defaults = GatewayConfig::default();
    assert_eq!(defaults.admin_listen, None);
    assert!(!defaults.admin_on_public);
    assert_eq!(defaults.split_refresh, std::time::Duration::from_secs(2));
    let set: GatewayConfig =
        serde_json::from_str(r#"{"admin_listen":"127.0.0.1:9090","split_refresh":"500ms"}"#)
            .expect("valid");
    assert_eq!(
        set.admin_listen,
        Some("127.0.0.1:9090".parse().expect("addr"))
    );
    set.validate().expect("valid");
    for bad in [
        r#"{"admin_listen":"localhost"}"#,
        r#"{"admin_listen":"127.0.0.1"}"#,
    ] {
        let error = serde_json::from_str::<GatewayConfig>(bad).expect_err(bad);
        assert!(
            error.to_string().contains("socket address"),
            "{bad}: {error}"
        );
    }
}
