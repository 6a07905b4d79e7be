//! Bad input: a clear 400 (problem+json for the API, a message page for
//! people), 404 for an unknown SLO.

use crate::support::*;
use axum::http::StatusCode;

#[tokio::test]
async fn bad_query_parameters_are_400_problems() {
    let router = loopback();
    for path in [
        "/api/v1/slos?window=2h",
        "/api/v1/slos?window=",
        "/api/v1/slos?colour=red",
        "/api/v1/slos/shortener-availability?window=90d",
        "/api/v1/alerts?since=8d",
        "/api/v1/alerts?since=0s",
        "/api/v1/alerts?since=soon",
        "/api/v1/changes?limit=0",
        "/api/v1/changes?limit=501",
        "/api/v1/changes?limit=ten",
        "/api/v1/changes?since=91d",
        "/api/v1/changes?kind=reboot",
        "/api/v1/changes?kind=canary_step,reboot",
        "/api/v1/changes?before=-1",
        "/api/v1/changes?service=%3Cscript%3E",
        "/api/v1/overview?refresh=1",
        "/api/v1/canaries?x=1",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(
            answer.header("content-type"),
            "application/problem+json",
            "{path}"
        );
        assert_eq!(answer.json()["type"], "/problems/invalid-query", "{path}");
    }
}

#[tokio::test]
async fn bad_query_parameters_on_pages_are_message_pages() {
    let router = loopback();
    for (path, says) in [
        (
            "/slos?window=2h",
            "window: must be one of 1h, 6h, 24h, 7d, 30d",
        ),
        (
            "/alerts?since=30d",
            "since: must be above zero and at most 7days",
        ),
        ("/changes?kind=reboot", "kind: one or more of"),
        ("/?refresh=99999", "refresh"),
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            answer.header("content-type").starts_with("text/html"),
            "{path}"
        );
        assert!(answer.body.contains(says), "{path}: {}", answer.body);
    }
}

#[tokio::test]
async fn unknown_and_malformed_slo_ids() {
    let router = loopback();
    let unknown = get(&router, "/api/v1/slos/no-such-slo").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["type"], "/problems/not-found");
    let page = get(&router, "/slos/no-such-slo").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("no SLO with id"));

    let malformed = get(&router, "/api/v1/slos/%3Cscript%3E").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["type"], "/problems/invalid-id");
    let page = get(&router, "/slos/%3Cscript%3E").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.body.contains("<script"));
}

#[tokio::test]
async fn empty_form_fields_mean_no_filter() {
    let answer = get(&loopback(), "/changes?since=&kind=&service=").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("subject-59"));
}

#[tokio::test]
async fn refresh_is_validated_on_the_api_too() {
    let router = loopback();
    for path in ["/api/v1/slos?refresh=1", "/api/v1/alerts?refresh=abc"] {
        assert_eq!(
            get(&router, path).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    assert_eq!(
        get(&router, "/api/v1/alerts?refresh=0").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_source_that_fails_is_503_without_its_cause() {
    let router = app(Setup {
        failing_history: true,
        ..Setup::default()
    });
    let api = get(&router, "/api/v1/alerts").await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.json()["type"], "/problems/unavailable");
    assert!(
        !api.body.contains("alerts.db"),
        "the cause stays in the logs"
    );
    let page = get(&router, "/alerts").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("the alert history cannot be read now"));
    assert!(!page.body.contains("alerts.db"));
}
