//! The Prometheus source against a stand-in server: the queries it sends
//! (`increase` over the window, at the look's time) and what it makes of
//! the answers; a server that is down is an error, never zeros.

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use canary::judge::Counts;
use canary::metrics::{
    Counter, Matcher, MetricsError, MetricsSource, Prometheus, Query as Q, Reading,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

async fn serve(seen: Arc<Mutex<Vec<String>>>) -> url::Url {
    let app = Router::new().route(
        "/api/v1/query",
        get(move |Query(q): Query<HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                seen.lock().unwrap().push(format!("{query} @{}", q.get("time").cloned().unwrap_or_default()));
                let result: Value = if query.contains("by (le)") {
                    json!([
                        {"metric": {"le": "0.01"}, "value": [0, "7.6"]},
                        {"metric": {"le": "0.1"}, "value": [0, "9.2"]},
                        {"metric": {"le": "+Inf"}, "value": [0, "10"]}
                    ])
                } else if query.contains("_sum") {
                    json!([{"metric": {}, "value": [0, "0.25"]}])
                } else if query.contains("=~\"5.*\"") {
                    json!([{"metric": {}, "value": [0, "2.4"]}])
                } else {
                    json!([{"metric": {}, "value": [0, "100.2"]}])
                };
                Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://{addr}/")).unwrap()
}

#[tokio::test]
async fn increases_over_the_window_are_read_and_rounded() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let source = Prometheus::new(serve(seen.clone()).await);
    let base = vec![
        Matcher::eq("gateway_route", "links"),
        Matcher::eq("gateway_pool", "canary"),
    ];
    let mut bad = base.clone();
    bad.push(Matcher::Prefix(
        "http_response_status_code".into(),
        "5".into(),
    ));
    let queries = vec![
        Q::Proportion {
            bad: vec![Counter::new("gateway_request_duration_seconds_count", bad)],
            total: vec![Counter::new(
                "gateway_request_duration_seconds_count",
                base.clone(),
            )],
        },
        Q::Histogram {
            name: "gateway_request_duration_seconds".into(),
            matchers: base,
        },
    ];
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_090);
    let since = now - Duration::from_secs(90);
    let readings = source.read(&queries, since, now).await.unwrap();
    assert_eq!(
        readings[0],
        Reading::Proportion(Counts { bad: 2, total: 100 })
    );
    let Reading::Histogram(h) = &readings[1] else {
        panic!("{readings:?}")
    };
    assert_eq!(h.count(), 10);
    assert_eq!(h.counts(), &[8, 1, 1]);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|q| q.starts_with("sum(increase(gateway_request_duration_seconds_count{gateway_route=\"links\",gateway_pool=\"canary\",http_response_status_code=~\"5.*\"}[90s]))")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().all(|q| q.ends_with("@1700000090.000")),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn a_prometheus_that_is_down_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let source = Prometheus::new(url::Url::parse(&format!("http://{addr}/")).unwrap());
    let q = vec![Q::Proportion {
        bad: vec![],
        total: vec![Counter::new("x", vec![])],
    }];
    let now = SystemTime::now();
    let e = source
        .read(&q, now - Duration::from_secs(60), now)
        .await
        .unwrap_err();
    assert!(matches!(e, MetricsError::Unreachable { .. }), "{e}");
}
