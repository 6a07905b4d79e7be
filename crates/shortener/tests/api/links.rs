use crate::helpers::{assert_problem, spawn_app};
use serde_json::{json, Value};

#[tokio::test]
async fn create_with_custom_slug_returns_the_link_and_its_short_url() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/links",
            &json!({"url": "https://example.com/docs?a=1", "slug": "docs", "tags": ["b", "a"], "redirect_status": 308}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/links/docs");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["slug"], "docs");
    assert_eq!(body["short_url"], app.url("/docs"));
    assert_eq!(body["url"], "https://example.com/docs?a=1");
    assert_eq!(body["redirect_status"], 308);
    assert_eq!(body["tags"], json!(["a", "b"]));
    assert_eq!(body["visit_count"], 0);
    assert_eq!(body["status"], "active");
}

#[tokio::test]
async fn generated_slugs_are_short_unique_and_url_safe() {
    let app = spawn_app().await;
    let mut slugs = std::collections::HashSet::new();
    for _ in 0..50 {
        let body = app.create(json!({"url": "https://example.com/"})).await;
        let slug = body["slug"].as_str().expect("slug").to_string();
        assert_eq!(slug.len(), 7);
        assert!(slug.bytes().all(|b| b.is_ascii_alphanumeric()));
        slugs.insert(slug);
    }
    assert_eq!(slugs.len(), 50);
}

#[tokio::test]
async fn a_taken_slug_is_a_409_and_the_original_is_untouched() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://one.example/", "slug": "same"}))
        .await;
    let response = app
        .post_json(
            "/api/v1/links",
            &json!({"url": "https://two.example/", "slug": "same"}),
        )
        .await;
    assert_problem(response, 409, "slug-taken").await;
    let link: Value = app
        .get("/api/v1/links/same")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(link["url"], "https://one.example/");
}

#[tokio::test]
async fn invalid_urls_are_rejected_and_nothing_is_stored() {
    let app = spawn_app().await;
    let long = format!("https://example.com/{}", "a".repeat(2048));
    for url in [
        "javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "file:///etc/passwd",
        "/relative",
        "",
        "https://user:secret@example.com/",
        "example.com",
        long.as_str(),
    ] {
        let response = app.post_json("/api/v1/links", &json!({"url": url})).await;
        let body = assert_problem(response, 422, "invalid-field").await;
        assert_eq!(body["invalid_params"][0]["name"], "url", "{url}");
    }
    assert_eq!(app.link_count().await, 0);
}

#[tokio::test]
async fn invalid_slugs_are_rejected() {
    let app = spawn_app().await;
    for slug in [
        "api",
        "healthz",
        "readyz",
        "metrics",
        "has space",
        "a/b",
        "dot.ted",
        "",
        &"x".repeat(65),
    ] {
        let response = app
            .post_json(
                "/api/v1/links",
                &json!({"url": "https://example.com/", "slug": slug}),
            )
            .await;
        let body = assert_problem(response, 422, "invalid-field").await;
        assert_eq!(body["invalid_params"][0]["name"], "slug", "{slug}");
    }
    assert_eq!(app.link_count().await, 0);
}

#[tokio::test]
async fn invalid_limits_and_expiry_are_rejected() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"url": "https://e.x/", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"url": "https://e.x/", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"url": "https://e.x/", "expires_at": "2031-13-45T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"url": "https://e.x/", "max_visits": 0}),
            "max_visits",
        ),
        (
            json!({"url": "https://e.x/", "max_visits": -5}),
            "max_visits",
        ),
        (
            json!({"url": "https://e.x/", "redirect_status": 200}),
            "redirect_status",
        ),
        (
            json!({"url": "https://e.x/", "tags": ["ok", "not ok"]}),
            "tags",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_json("/api/v1/links", &body).await;
        let problem = assert_problem(response, 422, "invalid-field").await;
        assert_eq!(problem["invalid_params"][0]["name"], field, "{body}");
    }
    assert_eq!(app.link_count().await, 0);
}

#[tokio::test]
async fn a_ten_thousand_tag_request_is_rejected() {
    let app = spawn_app().await;
    let tags: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
    let response = app
        .post_json(
            "/api/v1/links",
            &json!({"url": "https://example.com/", "tags": tags}),
        )
        .await;
    // Either the body limit or the tag limit stops it; both are problems.
    let status = response.status().as_u16();
    assert!(status == 413 || status == 422, "{status}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let small: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let response = app
        .post_json(
            "/api/v1/links",
            &json!({"url": "https://example.com/", "tags": small}),
        )
        .await;
    assert_problem(response, 422, "invalid-field").await;
    assert_eq!(app.link_count().await, 0);
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors() {
    let app = spawn_app().await;
    let response = app
        .post_raw("/api/v1/links", "application/json", "{\"url\": ")
        .await;
    assert_problem(response, 400, "malformed-json").await;
    let response = app
        .post_raw("/api/v1/links", "application/json", "not json")
        .await;
    assert_problem(response, 400, "malformed-json").await;
    let response = app
        .post_raw(
            "/api/v1/links",
            "application/json",
            r#"{"url": "https://e.x/", "colour": "red"}"#,
        )
        .await;
    let body = assert_problem(response, 422, "invalid-body").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("colour"),
        "{body}"
    );
    let response = app
        .post_raw("/api/v1/links", "application/json", r#"{"slug": "x"}"#)
        .await;
    assert_problem(response, 422, "invalid-body").await;
    let response = app
        .post_raw("/api/v1/links", "application/json", r#"{"url": 5}"#)
        .await;
    assert_problem(response, 422, "invalid-body").await;
    let response = app
        .post_raw("/api/v1/links", "text/plain", r#"{"url": "https://e.x/"}"#)
        .await;
    assert_problem(response, 415, "unsupported-media-type").await;
    let huge = format!(r#"{{"url": "https://e.x/{}"}}"#, "a".repeat(70 * 1024));
    let response = app
        .post_raw("/api/v1/links", "application/json", huge)
        .await;
    assert_problem(response, 413, "body-too-large").await;
    assert_eq!(app.link_count().await, 0);
}

#[tokio::test]
async fn get_unknown_link_is_a_404_problem() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/v1/links/nope").await, 404, "not-found").await;
    assert_problem(app.get("/api/v1/links/bad.slug").await, 404, "not-found").await;
}

#[tokio::test]
async fn list_paginates_with_a_stable_cursor_and_filters_by_tag() {
    let app = spawn_app().await;
    for i in 0..7 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        app.create(
            json!({"url": format!("https://e.x/{i}"), "slug": format!("s{i}"), "tags": tags}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=3&cursor={c}"),
            None => "/api/v1/links?limit=3".to_string(),
        };
        let page: Value = app.get(&path).await.json().await.expect("json");
        for item in page["items"].as_array().expect("items") {
            seen.push(item["slug"].as_str().expect("slug").to_string());
        }
        // A link created mid-iteration lands after the cursor, not in a seen page.
        if seen.len() == 3 {
            app.create(json!({"url": "https://e.x/late", "slug": "late"}))
                .await;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "late"]);

    let even: Value = app
        .get("/api/v1/links?tag=even")
        .await
        .json()
        .await
        .expect("json");
    let slugs: Vec<_> = even["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["slug"].clone())
        .collect();
    assert_eq!(slugs, [json!("s0"), json!("s2"), json!("s4"), json!("s6")]);
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/links?limit=0",
        "/api/v1/links?limit=1001",
        "/api/v1/links?limit=-1",
        "/api/v1/links?limit=abc",
        "/api/v1/links?cursor=forged",
        "/api/v1/links?tag=bad%20tag",
    ] {
        assert_problem(app.get(path).await, 400, "invalid-query").await;
    }
}

#[tokio::test]
async fn patch_updates_fields_and_clears_nullable_ones() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://old.example/", "slug": "p", "max_visits": 5, "expires_at": "2031-01-01T00:00:00Z", "tags": ["x"]}))
        .await;
    let response = app
        .patch(
            "/api/v1/links/p",
            &json!({"url": "https://new.example/", "max_visits": null, "tags": ["y", "z"], "redirect_status": 307}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["url"], "https://new.example/");
    assert_eq!(body["max_visits"], Value::Null);
    assert_eq!(body["expires_at"], "2031-01-01T00:00:00Z");
    assert_eq!(body["tags"], json!(["y", "z"]));
    assert_eq!(body["redirect_status"], 307);

    let response = app
        .patch("/api/v1/links/p", &json!({"expires_at": null}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["expires_at"], Value::Null);
}

#[tokio::test]
async fn patch_rejects_bad_input_and_changes_nothing() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://keep.example/", "slug": "k"}))
        .await;
    for (body, status, kind) in [
        (json!({"url": "javascript:alert(1)"}), 422, "invalid-field"),
        (json!({"max_visits": 0}), 422, "invalid-field"),
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "invalid-field",
        ),
        (json!({"slug": "renamed"}), 422, "invalid-body"),
    ] {
        let response = app.patch("/api/v1/links/k", &body).await;
        assert_problem(response, status, kind).await;
    }
    let link: Value = app.get("/api/v1/links/k").await.json().await.expect("json");
    assert_eq!(link["url"], "https://keep.example/");
    assert_problem(
        app.patch("/api/v1/links/missing", &json!({})).await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn delete_removes_the_link() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "gone"}))
        .await;
    assert_eq!(app.delete("/api/v1/links/gone").await.status(), 204);
    assert_problem(app.get("/api/v1/links/gone").await, 404, "not-found").await;
    assert_problem(app.delete("/api/v1/links/gone").await, 404, "not-found").await;
}
