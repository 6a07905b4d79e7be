use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use chrono::Duration;
use kit::Clock;
use reqwest::Method;
use serde_json::json;
use shortener::ShortenerConfig;

#[tokio::test]
async fn redirects_with_location_and_no_store_by_default() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://example.com/target", "slug": "go"}))
        .await;
    let response = app.get("/go").await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "https://example.com/target");
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let head = app.client.head(app.url("/go")).send().await.expect("head");
    assert_eq!(head.status(), 302);
}

use testkit::headers::SECURITY_HEADERS;

fn security_headers_of(response: &reqwest::Response) -> Vec<&'static str> {
    testkit::headers::security_headers(response.headers())
}

/// A redirect carries the one security header a browser heeds on it (it
/// follows the redirect under its `Referrer-Policy`); a problem answer on
/// a slug path carries all three; `http.security_headers = false`, none.
#[tokio::test]
async fn a_redirect_carries_referrer_policy_and_a_problem_every_security_header() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://example.com/target", "slug": "go"}))
        .await;
    let redirect = app.get("/go").await;
    assert_eq!(redirect.status(), 302);
    assert_eq!(security_headers_of(&redirect), ["referrer-policy"]);
    assert_eq!(redirect.headers()["referrer-policy"], "no-referrer");
    assert!(redirect.headers().contains_key("x-request-id"));
    let head = app.client.head(app.url("/go")).send().await.expect("head");
    assert_eq!(security_headers_of(&head), ["referrer-policy"]);
    for path in ["/missing", "/not/a/slug"] {
        let missing = app.get(path).await;
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(security_headers_of(&missing), SECURITY_HEADERS, "{path}");
    }
    let post = app.client.post(app.url("/go")).send().await.expect("post");
    assert_eq!(post.status(), 405);
    assert_eq!(security_headers_of(&post), SECURITY_HEADERS);

    let bare = spawn_app_with(ShortenerConfig {
        security_headers: false,
        ..ShortenerConfig::default()
    })
    .await;
    bare.create(json!({"url": "https://example.com/target", "slug": "go"}))
        .await;
    assert!(security_headers_of(&bare.get("/go").await).is_empty());
    assert!(security_headers_of(&bare.get("/missing").await).is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_slugs_are_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/missing").await, 404, "not-found").await;
    assert_problem(app.get("/favicon.ico").await, 404, "not-found").await;
    assert_problem(app.get("/a/b/c").await, 404, "not-found").await;
    assert_problem(app.get("/api").await, 404, "not-found").await;
}

#[tokio::test]
async fn each_redirect_status_answers_the_right_methods() {
    let app = spawn_app().await;
    for code in [301, 302, 307, 308] {
        app.create(
            json!({"url": "https://e.x/", "slug": format!("r{code}"), "redirect_status": code}),
        )
        .await;
        let path = format!("/r{code}");
        assert_eq!(app.get(&path).await.status(), code);
        let post = app.client.post(app.url(&path)).send().await.expect("post");
        let put = app
            .client
            .request(Method::PUT, app.url(&path))
            .send()
            .await
            .expect("put");
        if code == 307 || code == 308 {
            assert_eq!(post.status(), code);
            assert_eq!(put.status(), code);
        } else {
            assert_eq!(post.headers()["allow"], "GET, HEAD");
            assert_problem(post, 405, "method-not-allowed").await;
            assert_problem(put, 405, "method-not-allowed").await;
        }
    }
}

#[tokio::test]
async fn expired_links_are_410_on_the_injected_clock() {
    let app = spawn_app().await;
    let expires = (app.clock.now() + Duration::hours(1)).to_rfc3339();
    app.create(json!({"url": "https://e.x/", "slug": "soon", "expires_at": expires}))
        .await;
    assert_eq!(app.get("/soon").await.status(), 302);
    app.clock.advance(Duration::minutes(59));
    assert_eq!(app.get("/soon").await.status(), 302);
    app.clock.advance(Duration::minutes(1));
    assert_problem(app.get("/soon").await, 410, "link-gone").await;
    let link: serde_json::Value = app
        .get("/api/v1/links/soon")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(link["status"], "expired");
}

#[tokio::test]
async fn cache_control_never_outlives_expiry_when_caching_is_enabled() {
    let config = ShortenerConfig {
        redirect_max_age: std::time::Duration::from_secs(3600),
        ..ShortenerConfig::default()
    };
    let app = spawn_app_with(config).await;
    app.create(json!({"url": "https://e.x/", "slug": "plain"}))
        .await;
    let expires = (app.clock.now() + Duration::seconds(90)).to_rfc3339();
    app.create(json!({"url": "https://e.x/", "slug": "expiring", "expires_at": expires}))
        .await;
    app.create(json!({"url": "https://e.x/", "slug": "limited", "max_visits": 100}))
        .await;
    assert_eq!(
        app.get("/plain").await.headers()["cache-control"],
        "private, max-age=3600"
    );
    assert_eq!(
        app.get("/expiring").await.headers()["cache-control"],
        "private, max-age=90"
    );
    assert_eq!(
        app.get("/limited").await.headers()["cache-control"],
        "private, no-store"
    );
}

#[tokio::test]
async fn max_visits_holds_exactly_under_50_concurrent_redirects() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "ten", "max_visits": 10}))
        .await;
    let statuses = app.concurrent_gets("/ten", 50).await;
    let redirected = statuses.iter().filter(|s| **s == 302).count();
    let gone = statuses.iter().filter(|s| **s == 410).count();
    assert_eq!((redirected, gone), (10, 40));
    let link: serde_json::Value = app
        .get("/api/v1/links/ten")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(link["visit_count"], 10);
    assert_eq!(link["status"], "exhausted");
}

#[tokio::test]
async fn a_patched_or_deleted_link_is_never_served_from_the_cache() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://before.example/", "slug": "hot"}))
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/hot").await.headers()["location"],
            "https://before.example/"
        );
    }
    app.patch(
        "/api/v1/links/hot",
        &json!({"url": "https://after.example/"}),
    )
    .await;
    assert_eq!(
        app.get("/hot").await.headers()["location"],
        "https://after.example/"
    );

    let expires = (app.clock.now() + Duration::seconds(10)).to_rfc3339();
    app.patch("/api/v1/links/hot", &json!({"expires_at": expires}))
        .await;
    app.clock.advance(Duration::seconds(11));
    assert_problem(app.get("/hot").await, 410, "link-gone").await;

    app.patch("/api/v1/links/hot", &json!({"expires_at": null}))
        .await;
    assert_eq!(app.get("/hot").await.status(), 302);
    app.delete("/api/v1/links/hot").await;
    assert_problem(app.get("/hot").await, 404, "not-found").await;
}

#[tokio::test]
async fn hot_slugs_are_served_from_the_cache() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "cached"}))
        .await;
    for _ in 0..20 {
        assert_eq!(app.get("/cached").await.status(), 302);
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("shortener_cache_requests_total{result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("hit counter");
    // The recorder is global to the test process; other tests add to it.
    assert!(hits >= 19.0, "{hits}");
}

#[tokio::test]
async fn the_redirect_is_observed_under_its_route_and_other_paths_as_unmatched() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "observed"}))
        .await;
    assert_eq!(app.get("/observed").await.status(), 302);
    assert_problem(app.get("/no/such/path").await, 404, "not-found").await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    // The recorder is global to the test process: other tests add to
    // these series, never take them away.
    for series in [
        r#"http_server_request_duration_seconds_count{service="shortener",http_route="/{slug}",http_request_method="GET",http_response_status_code="302"}"#,
        r#"http_server_request_duration_seconds_count{service="shortener",http_route="unmatched",http_request_method="GET",http_response_status_code="404"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}
