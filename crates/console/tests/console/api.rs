//! The JSON API's shapes: the same data as the pages.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_api_answers_json() {
    let router = loopback();
    for path in APIS {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert!(
            answer
                .header("content-type")
                .starts_with("application/json"),
            "{path}"
        );
        assert!(answer.json().is_object(), "{path}");
    }
}

#[tokio::test]
async fn overview_shape() {
    let body = get(&loopback(), "/api/v1/overview").await.json();
    assert_eq!(body["modules"].as_array().map(Vec::len), Some(4));
    assert_eq!(body["modules"][2]["name"], "orders");
    assert_eq!(body["modules"][2]["ready"], false);
    assert_eq!(body["dependencies"][1]["state"], "down");
    assert_eq!(body["graph"]["edges"][3]["kind"], "event");
}

#[tokio::test]
async fn slos_shape_with_bands_from_the_policy() {
    let body = get(&loopback(), "/api/v1/slos?window=7d").await.json();
    assert_eq!(body["window"], "7d");
    assert_eq!(body["now_ms"].as_i64(), Some(now().timestamp_millis()));
    assert_eq!(
        body["since_ms"].as_i64(),
        Some(now().timestamp_millis() - 7 * 86_400_000)
    );
    let slos = body["slos"].as_array().cloned().unwrap_or_default();
    assert_eq!(slos.len(), 3);
    assert_eq!(slos[0]["id"], "shortener-availability");
    assert_eq!(slos[0]["band"]["decision"], "reliability-first");
    assert_eq!(slos[0]["band"]["below"], 0.2);
    assert_eq!(slos[1]["band"]["decision"], "ship features");
    assert_eq!(slos[2]["band"]["decision"], "no data");
    assert_eq!(slos[0]["alerts"][0]["state"], "firing");
    assert_eq!(
        slos[0]["series"].as_array().map(Vec::len),
        Some(SERIES_POINTS)
    );
    assert_eq!(body["policy"].as_array().map(Vec::len), Some(3));

    let one = get(&loopback(), "/api/v1/slos/orders-latency").await.json();
    assert_eq!(one["slos"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["slos"][0]["name"], XSS);
}

#[tokio::test]
async fn alerts_shape() {
    let body = get(&loopback(), "/api/v1/alerts").await.json();
    assert_eq!(body["firing"][0]["name"], "ShortenerAvailabilityPageBurn");
    assert_eq!(
        body["firing"][0]["runbook_url"],
        "docs/runbooks/shortener.md"
    );
    assert_eq!(body["pending"][0]["runbook_url"], json!(null));
    assert_eq!(body["history"].as_array().map(Vec::len), Some(2));
    // A shorter span leaves the 3-day-old transition out.
    let day = get(&loopback(), "/api/v1/alerts?since=1d").await.json();
    assert_eq!(day["history"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn changes_filter_and_page_by_keyset() {
    let router = loopback();
    let first = get(
        &router,
        "/api/v1/changes?kind=canary_step&service=gateway&limit=10",
    )
    .await
    .json();
    let changes = first["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 10);
    assert!(changes
        .iter()
        .all(|c| c["kind"] == "canary_step" && c["service"] == "gateway"));
    let ids: Vec<i64> = changes.iter().filter_map(|c| c["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let older = first["older"].as_str().unwrap_or_default().to_string();
    assert!(older.contains(&format!("before={}", ids[9])), "{older}");
    let second = get(&router, &format!("/api/v1/changes?{older}"))
        .await
        .json();
    let next: Vec<i64> = second["changes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(next.len(), 10);
    assert!(next.iter().all(|id| *id < ids[9]));

    // 60 events a minute apart; 30 minutes back holds 30 of them.
    let recent = get(&router, "/api/v1/changes?since=30m&limit=500")
        .await
        .json();
    assert_eq!(recent["changes"].as_array().map(Vec::len), Some(30));
    assert_eq!(recent["older"], json!(null));
}

#[tokio::test]
async fn canaries_and_models_shapes() {
    let canaries = get(&loopback(), "/api/v1/canaries").await.json();
    assert_eq!(canaries["running"], true);
    assert_eq!(canaries["runs"][0]["run"]["weight"], 0.25);
    assert_eq!(
        canaries["runs"][0]["latest"]["judgement"]["overall"]["verdict"],
        "pass"
    );

    let models = get(&loopback(), "/api/v1/models").await.json();
    let versions = models["models"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["traffic_share"], 0.9);
    assert_eq!(versions[1]["traffic_share"], 0.1);
    assert_eq!(versions[0]["drift_psi"], 0.31);
    assert_eq!(versions[0]["live_accuracy"], 0.9);
    assert_eq!(versions[0]["requests"], 100.0);
    // 99 of 100 fall at or under 0.1 s, 90 under 0.01 s: p99 = 0.01 + 0.09 * 9/10.
    let p99 = versions[0]["p99_seconds"].as_f64().unwrap_or_default();
    assert!((p99 - 0.091).abs() < 1e-9, "{p99}");
    assert_eq!(versions[1]["p99_seconds"], json!(null));
}

#[tokio::test]
async fn openapi_lists_every_endpoint() {
    let doc = get(&loopback(), "/api/v1/openapi.json").await.json();
    for path in [
        "/api/v1/overview",
        "/api/v1/slos",
        "/api/v1/slos/{id}",
        "/api/v1/alerts",
        "/api/v1/changes",
        "/api/v1/canaries",
        "/api/v1/models",
        "/api/v1/cost",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}
