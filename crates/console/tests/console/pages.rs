//! Every page renders the fake data, escaped, with its security headers.

use crate::support::*;
use axum::http::StatusCode;

#[tokio::test]
async fn every_page_answers_with_the_fake_data() {
    let router = loopback();
    let expect: [(&str, &[&str]); 7] = [
        (
            "/",
            &[
                "gateway",
                "notifier",
                "12.50/s",
                "1.2",
                "42.5 ms",
                "not ready",
                "database unreachable",
                "<svg",
                "4.25/s",
            ],
        ),
        (
            "/slos",
            &[
                "Redirects succeed",
                "reliability-first",
                "caution",
                "ship features",
                "14.40×",
                "no data",
                "ShortenerAvailabilityPageBurn",
            ],
        ),
        (
            "/slos/shortener-availability",
            &["Redirects succeed", "reliability-first", "99.915%"],
        ),
        (
            "/alerts",
            &[
                "ShortenerAvailabilityPageBurn",
                "OrdersLatencyTicketBurn",
                "OrdersResolvedEarlier",
                "resolved",
            ],
        ),
        ("/changes", &["subject-59", "canary_step", "Older changes"]),
        (
            "/canaries",
            &[
                "links-v2",
                "gateway/links",
                "25.0%",
                "bad ratio 0.2% vs 0.1%",
                "pass",
            ],
        ),
        ("/models", &["digits", "90.0%", "10.0%", "0.31", "90.0%"]),
    ];
    for (path, texts) in expect {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert!(
            answer.header("content-type").starts_with("text/html"),
            "{path}"
        );
        for text in texts {
            assert!(answer.body.contains(text), "{path} lacks {text:?}");
        }
        assert!(answer.body.contains(r#"name="viewport""#), "{path}");
        assert!(!answer.body.contains("NaN"), "{path} shows NaN");
    }
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let router = loopback();
    let mut paths: Vec<&str> = PAGES.iter().chain(APIS.iter()).copied().collect();
    paths.extend([
        "/healthz",
        "/style.css",
        "/slos?window=2h",
        "/api/v1/slos/nope",
    ]);
    for path in paths {
        let answer = get(&router, path).await;
        assert_eq!(
            answer.header("content-security-policy"),
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(answer.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(answer.header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(answer.header("cache-control"), "no-store", "{path}");
    }
}

#[tokio::test]
async fn html_from_data_is_escaped() {
    let router = loopback();
    for path in ["/slos", "/slos/orders-latency", "/changes", "/api/v1/slos"] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        if path.starts_with("/api") {
            continue;
        }
        assert!(
            !answer.body.contains("<script"),
            "{path} carries a script tag"
        );
        assert!(
            answer.body.contains("&lt;script&gt;"),
            "{path} lost the escaped text"
        );
    }
    // A runbook that is not a runbook path or an https URL stays text.
    let alerts = get(&router, "/alerts").await;
    assert!(alerts.body.contains(r#"href="docs/runbooks/shortener.md""#));
    assert!(alerts
        .body
        .contains(r#"href="https://runbooks.example/shortener""#));
    assert!(alerts.body.contains("javascript:alert(1)"));
    assert!(!alerts.body.contains(r#"href="javascript"#));
}

#[tokio::test]
async fn charts_have_one_point_per_series_entry() {
    let router = loopback();
    let answer = get(&router, "/slos/shortener-availability").await;
    // Two charts (SLI and budget), each with a dot per point.
    let dots = answer.body.matches(r#"<circle class="pt""#).count();
    assert_eq!(dots, 2 * SERIES_POINTS, "{}", answer.body);
    let list = get(&router, "/slos").await;
    let cards = 3;
    assert_eq!(
        list.body.matches(r#"<circle class="pt""#).count(),
        2 * SERIES_POINTS * cards
    );
}

#[tokio::test]
async fn refreshing_pages_reload_unless_told_not_to() {
    let router = loopback();
    for path in ["/", "/slos", "/alerts"] {
        let answer = get(&router, path).await;
        assert!(
            answer
                .body
                .contains(r#"<meta http-equiv="refresh" content="10">"#),
            "{path}"
        );
        let stopped = get(&router, &format!("{path}?refresh=0")).await;
        assert_eq!(stopped.status, StatusCode::OK, "{path}");
        assert!(!stopped.body.contains("http-equiv"), "{path}");
    }
    let changes = get(&router, "/changes").await;
    assert!(!changes.body.contains("http-equiv"));
}

#[tokio::test]
async fn pages_say_when_a_module_is_not_running() {
    let router = app(Setup {
        modules: false,
        changes: false,
        ..Setup::default()
    });
    for (path, module) in [("/canaries", "canary"), ("/models", "inference")] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert!(
            answer
                .body
                .contains(&format!("The {module} module is not running")),
            "{path}"
        );
    }
    for path in ["/api/v1/canaries", "/api/v1/models"] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(
            answer.json(),
            serde_json::json!({"running": false}),
            "{path}"
        );
    }
    let changes = get(&router, "/changes").await;
    assert_eq!(changes.status, StatusCode::OK);
    assert!(changes.body.contains("No change store is wired"));
    let api = get(&router, "/api/v1/changes").await;
    assert_eq!(api.json()["recording"], false);
}

#[tokio::test]
async fn healthz_and_stylesheet() {
    let router = loopback();
    let health = get(&router, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    let css = get(&router, "/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(css.body.contains("@media"));
}

#[tokio::test]
async fn unknown_paths_are_404_with_the_headers() {
    let router = loopback();
    let api = get(&router, "/api/v1/nothing").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.header("content-type"), "application/problem+json");
    assert_eq!(api.header("x-frame-options"), "DENY");
    let page = get(&router, "/nothing").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("There is no console page"));
    assert_eq!(page.header("cache-control"), "no-store");
}

#[tokio::test]
async fn window_links_keep_a_stopped_refresh() {
    let answer = get(&loopback(), "/slos?refresh=0&window=6h").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .body
            .contains(r#"href="/slos?window=7d&amp;refresh=0""#),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("<strong>6h</strong>"));
}
