//! Routing and forwarding: prefixes, methods, hosts, headers both ways.

use crate::helpers::*;
use gateway::RouteConfig;

#[tokio::test]
async fn routes_by_longest_prefix_method_and_host() {
    let (a, b, c) = (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    );
    let mut post_only = RouteConfig::new("/api", "c");
    post_only.method = Some("POST".into());
    let mut by_host = RouteConfig::new("/", "c");
    by_host.host = Some("admin.example".into());
    let gw = spawn_gateway(config(
        &[("a", &[&a]), ("b", &[&b]), ("c", &[&c])],
        vec![
            RouteConfig::new("/", "a"),
            RouteConfig::new("/api", "b"),
            post_only,
            by_host,
        ],
    ))
    .await;
    let http = client();
    let who = |r: serde_json::Value| r["upstream"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        who(json(http.get(gw.url("/x")).send().await.unwrap()).await),
        "a"
    );
    assert_eq!(
        who(json(http.get(gw.url("/api/x")).send().await.unwrap()).await),
        "b"
    );
    assert_eq!(
        who(json(http.get(gw.url("/apix")).send().await.unwrap()).await),
        "a"
    );
    assert_eq!(
        who(json(http.post(gw.url("/api/x")).send().await.unwrap()).await),
        "c"
    );
    let admin = http
        .get(gw.url("/x"))
        .header("host", "admin.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(who(json(admin).await), "c");
}

#[tokio::test]
async fn unknown_paths_are_a_404_problem() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![RouteConfig::new("/api", "a")])).await;
    let response = client().get(gw.url("/other")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(json(response).await["type"], "/problems/no-route");
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn forwards_path_query_body_and_proxy_headers() {
    let a = Upstream::start("a").await;
    let mut route = RouteConfig::new("/api", "a");
    route.strip_prefix = Some("/api".into());
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![route])).await;
    let response = client()
        .post(gw.url("/api/links?x=1&y=2"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret")
        .header("x-custom", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-pool"], "a");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let echo = json(response).await;
    assert_eq!(echo["path"], "/links");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["body_len"], 5);
    let headers = &echo["headers"];
    assert_eq!(headers["x-custom"], "kept");
    assert!(
        headers.get("x-private-hop").is_none(),
        "hop-by-hop named by Connection"
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        headers["x-request-id"],
        request_id.as_str(),
        "generated and passed on"
    );
    assert_eq!(request_id.len(), 32);
    let traceparent = headers["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "a new span for the hop"
    );
}

#[tokio::test]
async fn a_client_request_id_is_kept() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")])).await;
    let response = client()
        .get(gw.url("/"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    assert_eq!(json(response).await["headers"]["x-request-id"], "abc-123");
}

#[tokio::test]
async fn trusted_proxies_pass_the_client_ip_on() {
    let a = Upstream::start("a").await;
    let mut cfg = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    cfg.trusted_proxies = trusted(&["127.0.0.1/32"]);
    let gw = spawn_gateway(cfg).await;
    let echo = echo_forwarded_for(&gw, "198.51.100.7").await;
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        "198.51.100.7, 127.0.0.1"
    );
}

#[tokio::test]
async fn canary_split_by_weight_and_pinned_by_header() {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let mut route = RouteConfig::new("/", "stable");
    route.canary_pool = Some("canary".into());
    route.canary_percent = 20;
    let gw = spawn_gateway(config(
        &[("stable", &[&stable]), ("canary", &[&canary])],
        vec![route],
    ))
    .await;
    let http = client();
    let mut to_canary = 0;
    for _ in 0..200 {
        let response = http.get(gw.url("/")).send().await.unwrap();
        let pool = response.headers()["x-gateway-pool"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(json(response).await["upstream"], pool.as_str());
        to_canary += u32::from(pool == "canary");
    }
    println!("canary share at 20%: {to_canary}/200");
    assert!((15..=70).contains(&to_canary), "{to_canary} of 200 at 20%");
    for _ in 0..20 {
        let pinned = http
            .get(gw.url("/"))
            .header("x-canary", "always")
            .send()
            .await
            .unwrap();
        assert_eq!(pinned.headers()["x-gateway-pool"], "canary");
        let never = http
            .get(gw.url("/"))
            .header("x-canary", "never")
            .send()
            .await
            .unwrap();
        assert_eq!(never.headers()["x-gateway-pool"], "stable");
    }
}

#[tokio::test]
async fn head_keeps_the_upstream_content_length() {
    let a = Upstream::start("a").await;
    let gw = spawn_gateway(config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")])).await;
    let http = client();
    let get = http
        .get(gw.url("/same"))
        .header("x-request-id", "r1")
        .send()
        .await
        .unwrap();
    let length: usize = get.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let head = http
        .head(gw.url("/same"))
        .header("x-request-id", "r1")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // The echo names the method: "HEAD" is one byte longer than "GET".
    assert_eq!(
        head.headers()["content-length"],
        (length + 1).to_string().as_str()
    );
}

#[tokio::test]
async fn configuration_errors_name_the_key() {
    let a = Upstream::start("a").await;
    let limiter = gateway::limiter(
        None,
        gateway::RateLimitWhenDown::Open,
        std::sync::Arc::new(clock()),
    )
    .await
    .unwrap();
    let build = |cfg: gateway::GatewayConfig| {
        gateway::Gateway::build(
            cfg,
            std::collections::BTreeMap::<String, axum::Router>::new(),
            None,
            None,
            limiter.clone(),
            std::sync::Arc::new(clock()),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let unknown_pool = config(&[("a", &[&a])], vec![RouteConfig::new("/", "nope")]);
    assert!(build(unknown_pool).contains("gateway.routes[0].pool"));
    let mut bad_percent = RouteConfig::new("/", "a");
    bad_percent.canary_percent = 101;
    assert!(build(config(&[("a", &[&a])], vec![bad_percent])).contains("canary_percent"));
    let mut bad_rate = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    bad_rate.anon_rate = Some("10/fortnight".into());
    assert!(build(bad_rate).contains("gateway.anon_rate"));
    let mut not_http = config(&[("a", &[&a])], vec![RouteConfig::new("/", "a")]);
    not_http.pools.get_mut("a").unwrap().endpoints = vec!["ftp://example.com".into()];
    assert!(build(not_http).contains("gateway.pools.a.endpoints[0]"));
    // A bad `rate_limit_when_down` no longer reaches the limiter: it is
    // an enum, refused when the config is read (see `config.rs`).
}

use testkit::headers::SECURITY_HEADERS;

fn security_headers_of(response: &reqwest::Response) -> Vec<&'static str> {
    testkit::headers::security_headers(response.headers())
}

#[tokio::test]
async fn relayed_answers_pass_as_they_came_and_the_gateways_own_carry_security_headers() {
    let (a, down) = (Upstream::start("a").await, Upstream::start("down").await);
    down.stop().await;
    let mut dressed = RouteConfig::new("/dressed", "a");
    dressed.security_headers = true;
    let routes = vec![
        RouteConfig::new("/", "a"),
        dressed,
        RouteConfig::new("/down", "down"),
    ];
    let gw = spawn_gateway(config(&[("a", &[&a]), ("down", &[&down])], routes.clone())).await;
    let http = client();

    // The upstream's answer, through the catch-all and through `/` (an
    // axum route): nothing added but the request id and the pool.
    for path in ["/x", "/"] {
        let relayed = http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(relayed.status(), 200, "{path}");
        assert!(security_headers_of(&relayed).is_empty(), "{path}");
        assert!(relayed.headers().contains_key("x-request-id"), "{path}");
        assert_eq!(relayed.headers()["x-gateway-pool"], "a", "{path}");
    }
    // An upstream's own policy passes untouched.
    let html = http
        .get(gw.url("/x"))
        .header("x-echo-csp", "default-src 'self'")
        .send()
        .await
        .unwrap();
    assert_eq!(
        html.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert_eq!(security_headers_of(&html), ["content-security-policy"]);

    // A route that asks gets each one the upstream did not set.
    let plain = http.get(gw.url("/dressed/x")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(security_headers_of(&plain), SECURITY_HEADERS);
    assert_eq!(plain.headers()["x-content-type-options"], "nosniff");
    let own = http
        .get(gw.url("/dressed/x"))
        .header("x-echo-csp", "default-src 'self'")
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert_eq!(own.headers()["referrer-policy"], "no-referrer");

    // The gateway's own answers carry them: an unreachable upstream.
    let failed = http.get(gw.url("/down/x")).send().await.unwrap();
    assert_eq!(failed.status(), 502);
    assert_eq!(security_headers_of(&failed), SECURITY_HEADERS);
    assert_eq!(
        failed.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );

    // ... unless `http.security_headers` is off.
    let mut config = config(&[("a", &[&a]), ("down", &[&down])], routes);
    config.security_headers = false;
    let bare = spawn_gateway(config).await;
    let failed = http.get(bare.url("/down/x")).send().await.unwrap();
    assert_eq!(failed.status(), 502);
    assert!(security_headers_of(&failed).is_empty());
}
