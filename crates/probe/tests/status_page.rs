//! The status page through its routes: component states, 90 bars per
//! component, caching (ETag, 304, render at most once per period on a
//! manual clock), the incidents API (scopes, bad input) and HTML escaping.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use kit::changes::{ChangeKind, ChangeRecorder, MemoryChangeLog};
use kit::{Clock, ManualClock};
use probe::check::Outcome;
use probe::config::{Check, ProbeSpec, StatusConfig, TcpCheck};
use probe::{AuthFailure, Latest, ProbeStore, Results, StatusPage, WriteAuthorizer};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// `good` may write, `weak` lacks the scope, anything else is rejected.
struct Keys;

#[async_trait]
impl WriteAuthorizer for Keys {
    async fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<String, AuthFailure> {
        match headers.get("x-api-key").map(|v| v.as_bytes()) {
            None => Err(AuthFailure::Missing),
            Some(b"good") => Ok("key:ops".to_string()),
            Some(b"weak") => Err(AuthFailure::Forbidden(scope.to_string())),
            Some(_) => Err(AuthFailure::Rejected),
        }
    }
}

fn spec(name: &str, component: &str) -> ProbeSpec {
    ProbeSpec {
        name: name.to_string(),
        component: component.to_string(),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        check: Check::Tcp(TcpCheck {
            address: "localhost:1".to_string(),
        }),
    }
}

struct App {
    router: Router,
    clock: ManualClock,
    store: ProbeStore,
    results: Results,
    changes: Arc<MemoryChangeLog>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("probes.db").display());
    let store = ProbeStore::open(&url, &Default::default()).await.unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap());
    let results = Results::new(&[
        spec("api", "API"),
        spec("web-a", "Website"),
        spec("web-b", "Website"),
        spec("docs", "Docs"),
        spec("cdn", "CDN"),
    ]);
    let changes = MemoryChangeLog::new(100);
    let page = StatusPage::new(
        StatusConfig {
            render_every: Duration::from_secs(10),
            ..StatusConfig::default()
        },
        store.clone(),
        results.clone(),
        Arc::new(clock.clone()),
        Arc::new(Keys),
        ChangeRecorder(changes.clone()),
    );
    App {
        router: page.routes().into(),
        clock,
        store,
        results,
        changes,
        _dir: dir,
    }
}

impl App {
    fn report(&self, probe: &str, component: &str, success: bool, warning: bool) {
        self.results.set(
            probe,
            Latest {
                component: component.to_string(),
                at: self.clock.now(),
                outcome: Outcome {
                    success,
                    detail: String::new(),
                    warning,
                    duration: Duration::from_millis(5),
                    cert_expiry: None,
                },
            },
        );
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn write(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let (status, _, body) = self
            .send(request.body(Body::from(body.to_string())).unwrap())
            .await;
        (status, body)
    }

    fn later(&self) {
        self.clock.advance(chrono::Duration::seconds(11));
    }
}

#[tokio::test]
async fn component_states_follow_the_latest_results() {
    let app = app().await;
    app.report("api", "API", true, false);
    app.report("web-a", "Website", true, false);
    app.report("web-b", "Website", false, false);
    app.report("docs", "Docs", false, false);
    app.report("cdn", "CDN", true, true);
    let (status, _, body) = app.get("/api/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let states: Vec<(&str, &str)> = json["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("API", "operational"),
            ("Website", "degraded"),
            ("Docs", "down"),
            ("CDN", "degraded"),
        ]
    );
    assert_eq!(json["state"], "down");
}

#[tokio::test]
async fn every_component_has_ninety_bars_coloured_by_uptime() {
    let app = app().await;
    let now = app.clock.now();
    for _ in 0..3 {
        app.store
            .record("api", "API", now, true, Duration::ZERO)
            .await
            .unwrap();
    }
    app.store
        .record("api", "API", now, false, Duration::ZERO)
        .await
        .unwrap();
    let yesterday = now - chrono::Duration::days(1);
    app.store
        .record("api", "API", yesterday, true, Duration::ZERO)
        .await
        .unwrap();
    // Older than 90 days: not drawn.
    let old = now - chrono::Duration::days(90);
    app.store
        .record("api", "API", old, false, Duration::ZERO)
        .await
        .unwrap();
    let (_, _, html) = app.get("/status").await;
    assert_eq!(html.matches("<span class=\"u").count(), 4 * 90);
    assert!(
        html.contains("title=\"2026-06-01: 75.00% uptime\""),
        "{html}"
    );
    assert!(html.contains("class=\"ulow\" title=\"2026-06-01"));
    assert!(html.contains("class=\"u100\" title=\"2026-05-31: 100% uptime\""));
    assert!(html.contains("title=\"2026-03-04: no data\""));
    assert!(!html.contains("2026-03-03"));
    assert!(!html.contains("<script"));
    let (_, _, json) = app.get("/api/v1/status").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let api = &json["components"][0];
    assert_eq!(api["days"].as_array().unwrap().len(), 90);
    assert_eq!(api["uptime_90d"], 0.8);
}

#[tokio::test]
async fn the_page_is_cached_with_an_etag_and_rendered_at_most_once_per_period() {
    let app = app().await;
    let (status, headers, first) = app.get("/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=30");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers.get(header::SET_COOKIE).is_none());
    let etag = headers[header::ETAG].to_str().unwrap().to_string();

    let (status, headers, body) = app
        .send(
            Request::get("/status")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[header::ETAG].to_str().unwrap(), etag);
    assert!(body.is_empty());

    // A new result within the period: the cached page is still served.
    app.report("api", "API", false, false);
    let (_, headers, again) = app.get("/status").await;
    assert_eq!(headers[header::ETAG].to_str().unwrap(), etag);
    assert_eq!(again, first);

    // After it, the page is rendered again and the old tag no longer matches.
    app.later();
    let (status, headers, fresh) = app
        .send(
            Request::get("/status")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);
    assert!(fresh.contains("Major outage") || fresh.contains("Down"));
}

#[tokio::test]
async fn incident_html_is_escaped() {
    let app = app().await;
    let (status, body) = app
        .write(
            "POST",
            "/api/v1/status/incidents",
            Some("good"),
            r#"{"component":"API","title":"<script>alert(1)</script>","body":"<img src=x onerror=alert(2)>"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, _, html) = app.get("/status").await;
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    // The JSON API returns the text as written.
    let (_, _, json) = app.get("/api/v1/status").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["incidents"][0]["title"], "<script>alert(1)</script>");
}

#[tokio::test]
async fn incidents_need_the_scope_and_valid_fields() {
    let app = app().await;
    let note = r#"{"component":"API","title":"Errors"}"#;
    let path = "/api/v1/status/incidents";
    assert_eq!(
        app.write("POST", path, None, note).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.write("POST", path, Some("bad"), note).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app.write("POST", path, Some("weak"), note).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("status:write"), "{body}");
    let (status, body) = app
        .write(
            "POST",
            path,
            Some("good"),
            r#"{"component":"API","title":"x","status":"fixed"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("status"));
    let long = format!(r#"{{"component":"API","title":"{}"}}"#, "x".repeat(201));
    assert_eq!(
        app.write("POST", path, Some("good"), &long).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.write(
            "POST",
            path,
            Some("good"),
            r#"{"component":"API","title":"x","extra":1}"#
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.write("POST", path, Some("good"), "{not json").await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(app.changes.snapshot().is_empty());

    let (status, body) = app.write("POST", path, Some("good"), note).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["status"], "investigating");
    assert_eq!(created["author"], "key:ops");
    let id = created["id"].as_i64().unwrap();

    app.clock.advance(chrono::Duration::seconds(60));
    let one = format!("{path}/{id}");
    let (status, body) = app
        .write("PATCH", &one, Some("good"), r#"{"status":"resolved"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(updated["status"], "resolved");
    assert_eq!(updated["title"], "Errors");
    assert_eq!(
        app.write("PATCH", &one, Some("weak"), r#"{"status":"resolved"}"#)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.write("PATCH", &one, Some("good"), "{}").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.write(
            "PATCH",
            &format!("{path}/999"),
            Some("good"),
            r#"{"status":"resolved"}"#
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.write(
            "PATCH",
            &format!("{path}/abc"),
            Some("good"),
            r#"{"status":"resolved"}"#
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let events = app.changes.snapshot();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event.kind == ChangeKind::Incident));
    assert!(events.iter().all(|e| e.event.actor == "key:ops"));
    assert_eq!(events[1].event.subject, format!("incident/{id}"));
    assert!(
        events[1].event.summary.contains("resolved"),
        "{}",
        events[1].event.summary
    );
}
