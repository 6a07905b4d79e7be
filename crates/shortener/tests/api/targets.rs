//! Targets the shortener refuses although they are valid URLs: its own
//! short domain (a redirect loop) and, when configured, private addresses.

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use serde_json::json;
use shortener::ShortenerConfig;

fn public_shortener() -> ShortenerConfig {
    ShortenerConfig {
        base_url: Some("https://Sho.rt".into()),
        allow_private_targets: false,
        ..ShortenerConfig::default()
    }
}

#[tokio::test]
async fn a_link_to_the_short_domain_is_refused_as_a_redirect_loop() {
    let app = spawn_app_with(public_shortener()).await;
    for target in [
        "https://sho.rt/abc",
        "https://SHO.RT./abc",
        "http://sho.rt:80/abc",
        "https://sho.rt:443/",
    ] {
        let response = app
            .post_json("/api/v1/links", &json!({"url": target, "slug": "loop"}))
            .await;
        let body = assert_problem(response, 422, "redirect-loop").await;
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains("sho.rt"), "{target}: {detail}");
        assert_eq!(body["invalid_params"][0]["name"], "url", "{target}");
    }
    assert_eq!(app.get("/api/v1/links/loop").await.status(), 404);
    // Another service on the same host, and other hosts, are fine.
    app.create(json!({"url": "https://sho.rt:8443/x", "slug": "port"}))
        .await;
    app.create(json!({"url": "https://www.sho.rt/x", "slug": "www"}))
        .await;
}

#[tokio::test]
async fn without_a_base_url_the_listen_address_is_the_short_domain() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for own in [
        app.url("/elsewhere"),
        format!("http://localhost:{port}/elsewhere"),
    ] {
        let response = app
            .post_json("/api/v1/links", &json!({"url": own, "slug": "self"}))
            .await;
        assert_problem(response, 422, "redirect-loop").await;
    }
    // Private targets are allowed by default: local services elsewhere work.
    app.create(json!({"url": "http://127.0.0.1:1/", "slug": "local"}))
        .await;
    app.create(json!({"url": "http://localhost:3000/", "slug": "lh"}))
        .await;
}

#[tokio::test]
async fn an_update_cannot_turn_a_link_into_a_loop() {
    let app = spawn_app_with(public_shortener()).await;
    app.create(json!({"url": "https://example.com/", "slug": "edit"}))
        .await;
    let response = app
        .patch("/api/v1/links/edit", &json!({"url": "https://sho.rt/edit"}))
        .await;
    assert_problem(response, 422, "redirect-loop").await;
    let response = app
        .patch("/api/v1/links/edit", &json!({"url": "http://10.0.0.1/"}))
        .await;
    assert_problem(response, 422, "private-target").await;
    let link: serde_json::Value = app
        .get("/api/v1/links/edit")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(link["url"], "https://example.com/");
    // Other fields still update without touching the URL.
    let response = app
        .patch("/api/v1/links/edit", &json!({"max_visits": 3}))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_public_shortener_refuses_private_and_loopback_targets() {
    let app = spawn_app_with(public_shortener()).await;
    for target in [
        "http://127.0.0.1:8080/",
        "http://2130706433/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/admin",
        "http://[::1]/",
        "http://[fd12::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost:9000/",
        "http://admin.localhost/",
    ] {
        let response = app
            .post_json("/api/v1/links", &json!({"url": target}))
            .await;
        let body = assert_problem(response, 422, "private-target").await;
        let detail = body["detail"].as_str().expect("detail");
        assert!(
            detail.contains("shortener.allow_private_targets"),
            "{target}: {detail}"
        );
    }
    // Names are not resolved at create time: only literals are refused.
    app.create(json!({"url": "https://intranet.example/", "slug": "name"}))
        .await;
    app.create(json!({"url": "https://93.184.215.14/", "slug": "public-ip"}))
        .await;
}
