//! The cost page and its JSON twin on a fake cost source: the figures
//! formatted, the chart, the top lines, keys over budget, the empty and
//! unmeasured states, a failing source, bad input, and the cost per 1,000
//! requests beside each SLO.

use crate::fake_cost::{CostData, FakeCost, ROUTES, TOTAL};
use crate::support::*;
use axum::http::StatusCode;
use std::sync::Arc;

fn with_cost(cost: Option<CostData>) -> axum::Router {
    app(Setup {
        cost,
        ..Setup::default()
    })
}

fn close(value: &serde_json::Value, expected: f64) -> bool {
    value
        .as_f64()
        .is_some_and(|v| (v - expected).abs() < 1e-9 * expected.abs().max(1.0))
}

#[tokio::test]
async fn the_page_shows_the_figures_formatted() {
    let answer = get(&loopback(), "/cost").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for text in [
        // total, 30-day projection, idle and its share
        "$10.02",
        "$300.60",
        "$1.50",
        "15.0%",
        // the shortener's redirects: $0.02 for 50,000 requests
        "$0.0004",
        // inference: $3 for 2,000 requests
        "$1.50",
        "example prices compiled into Reliable",
        "Cost per module over time",
        "One bar per 1h",
        "Top routes",
        "The 10 most expensive of 12 routes.",
        "digits:1",
        "gpt-4o-mini",
        "no budget",
        "projected month $27.00 of a $1.00 budget",
        // requests grouped; a background task answers none
        "52,000",
        "no requests",
    ] {
        assert!(answer.body.contains(text), "/cost lacks {text:?}");
    }
    assert!(!answer.body.contains("NaN"));
    assert!(!answer.body.contains("<script"));
    assert!(answer.body.contains("&lt;script&gt;"));
    // The cheapest two routes are left out.
    assert!(answer.body.contains("/cheap/6"));
    assert!(!answer.body.contains("/cheap/0<"));
    // No reload unless asked.
    assert!(!answer.body.contains("http-equiv"));
}

#[tokio::test]
async fn the_chart_stacks_every_module_in_every_step_with_a_legend() {
    let answer = get(&loopback(), "/cost?window=24h").await;
    // 24 steps of an hour, 4 modules each.
    assert_eq!(
        answer.body.matches(r#"<rect class="series-"#).count(),
        24 * 4
    );
    assert_eq!(
        answer
            .body
            .matches(r#"<span class="swatch series-"#)
            .count(),
        4
    );
    // The most expensive module gets the first colour.
    assert!(answer.body.contains(r#"<rect class="series-0" "#));
    assert!(answer.body.contains("llm, 2026-12-01 11:00:00 UTC: $0.21"));
    assert!(answer
        .body
        .contains(r#"aria-labelledby="cost-by-module-title cost-by-module-desc""#));
    assert!(answer
        .body
        .contains("<desc id=\"cost-by-module-desc\">Cost per module over the last 24h, one bar per step; llm cost the most ($5.00).</desc>"));
}

#[tokio::test]
async fn a_key_over_budget_is_marked_and_listed_first() {
    let answer = get(&loopback(), "/cost").await;
    assert_eq!(answer.body.matches("over budget</span>").count(), 1);
    assert_eq!(answer.body.matches(r#"class="spend over""#).count(), 1);
    assert_eq!(answer.body.matches(r#"class="spend""#).count(), 1);
    let team_a = answer.body.find("team-a").unwrap_or(usize::MAX);
    let team_b = answer.body.find("team-b").unwrap_or(0);
    assert!(team_a < team_b, "the key over budget comes first");

    let body = get(&loopback(), "/api/v1/cost").await.json();
    let keys = body["cost"]["keys"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = keys.iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(names, ["team-a", "team-b", "anonymous"]);
    assert_eq!(keys[0]["over_budget"], true);
    assert_eq!(keys[0]["budget"], 1.0);
    assert_eq!(keys[2]["budget"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_json_twin_has_the_same_figures() {
    let body = get(&loopback(), "/api/v1/cost?window=7d").await.json();
    assert_eq!(body["measured"], true);
    assert_eq!(body["window"], "7d");
    assert_eq!(body["step_seconds"], 6 * 3600);
    let now_ms = now().timestamp_millis();
    assert_eq!(body["now_ms"].as_i64(), Some(now_ms));
    assert_eq!(body["since_ms"].as_i64(), Some(now_ms - 7 * 86_400_000));
    let cost = &body["cost"];
    assert_eq!(cost["currency"], "USD");
    assert_eq!(cost["example_prices"], true);
    assert!(close(&cost["total"], TOTAL));
    assert!(close(&cost["projected_month"], TOTAL * 30.0));
    assert!(close(&cost["idle"], 1.5));
    // 28 steps of 6 hours, oldest first.
    let starts: Vec<i64> = cost["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["start_ms"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(starts.len(), 28);
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    assert!(close(&cost["steps"][0]["modules"]["llm"], 5.0 / 28.0));
    // Modules by cost, with share and cost per 1,000 requests.
    let modules = cost["modules"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = modules.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["llm", "inference", "gateway", "shortener"]);
    assert!(close(&modules[3]["cost_per_1k_requests"], 0.0004));
    assert!(close(&modules[0]["share"], 5.0 / TOTAL));
    assert_eq!(modules[3]["requests"], 50_000);
    // The top 10 routes of 12; a background task has no cost per request.
    assert_eq!(cost["routes"].as_array().map(Vec::len), Some(10));
    assert_eq!(cost["route_count"], ROUTES);
    assert_eq!(cost["routes"][0]["name"], "/v1/chat/completions");
    assert_eq!(cost["routes"][0]["module"], "llm");
    let task = cost["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "task:visit-writer"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(task["cost_per_1k_requests"], serde_json::Value::Null);
    assert_eq!(cost["models"][0]["name"], "gpt-4o-mini");
    assert_eq!(cost["model_count"], 2);
}

#[tokio::test]
async fn the_source_is_asked_for_the_window_in_whole_steps() {
    let fake = Arc::new(FakeCost::new(CostData::Measured));
    let router = app_with_cost(Setup::default(), Some(fake.clone()));
    for window in ["1h", "6h", "24h", "7d", "30d"] {
        let answer = get(&router, &format!("/api/v1/cost?window={window}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{window}");
    }
    let asked = fake.asked.lock().map(|a| a.clone()).unwrap_or_default();
    let seen: Vec<(&str, u64, i64)> = asked
        .iter()
        .map(|q| {
            (
                q.window.as_str(),
                q.step.as_secs(),
                (q.end - q.start).num_seconds() / q.step.as_secs() as i64,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1h", 300, 12),
            ("6h", 1800, 12),
            ("24h", 3600, 24),
            ("7d", 21_600, 28),
            ("30d", 86_400, 30)
        ]
    );
    assert!(asked.iter().all(|q| q.end == now()));
}

#[tokio::test]
async fn without_a_source_the_page_says_cost_is_not_measured() {
    let router = with_cost(None);
    let page = get(&router, "/cost").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Cost is not measured in this process"));
    let body = get(&router, "/api/v1/cost").await.json();
    assert_eq!(body["measured"], false);
    assert_eq!(body["window"], "24h");
    assert!(body.get("cost").is_none(), "{body}");
    // The SLO cards carry no cost.
    let slos = get(&router, "/api/v1/slos").await.json();
    assert_eq!(slos["slos"][0]["cost"], serde_json::Value::Null);
    let page = get(&router, "/slos").await;
    assert!(!page.body.contains("cost per 1,000 requests"));
}

#[tokio::test]
async fn an_empty_source_shows_the_empty_state() {
    let router = with_cost(Some(CostData::Empty));
    let page = get(&router, "/cost?window=1h").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No cost measured in the last 1h yet."));
    assert!(!page.body.contains("<svg"));
    let body = get(&router, "/api/v1/cost").await.json();
    assert_eq!(body["measured"], true);
    assert_eq!(body["cost"]["currency"], "EUR");
    assert_eq!(body["cost"]["total"], 0.0);
    assert_eq!(body["cost"]["steps"], serde_json::json!([]));
    // An SLO whose service spent nothing shows "no data", not NaN.
    let slos = get(&router, "/slos").await;
    assert!(slos.body.contains("cost per 1,000 requests"));
    assert!(!slos.body.contains("NaN"));
}

#[tokio::test]
async fn a_failing_source_is_503_and_the_slo_page_stays_up() {
    let router = with_cost(Some(CostData::Failing));
    let api = get(&router, "/api/v1/cost").await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.header("content-type"), "application/problem+json");
    assert_eq!(api.json()["type"], "/problems/unavailable");
    // The cause is logged, not shown.
    assert!(!api.body.contains("sampler"));
    let page = get(&router, "/cost").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("the cost cannot be read now"));
    let slos = get(&router, "/slos").await;
    assert_eq!(slos.status, StatusCode::OK);
    assert!(!slos.body.contains("cost per 1,000 requests"));
}

#[tokio::test]
async fn bad_input_is_a_400() {
    let router = loopback();
    for path in [
        "/api/v1/cost?window=2h",
        "/api/v1/cost?window=",
        "/api/v1/cost?aggregate=route",
        "/api/v1/cost?refresh=1",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.json()["type"], "/problems/invalid-query", "{path}");
    }
    let page = get(&router, "/cost?window=90d").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page
        .body
        .contains("window: must be one of 1h, 6h, 24h, 7d, 30d"));
}

#[tokio::test]
async fn a_refresh_is_kept_in_the_window_links() {
    let answer = get(&loopback(), "/cost?window=7d&refresh=30").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer
        .body
        .contains(r#"<meta http-equiv="refresh" content="30">"#));
    assert!(answer
        .body
        .contains(r#"href="/cost?window=30d&amp;refresh=30""#));
    assert!(answer.body.contains("<strong>7d</strong>"));
}

#[tokio::test]
async fn each_slo_shows_the_cost_per_1000_requests_of_its_service() {
    let router = loopback();
    let page = get(&router, "/slos").await;
    // Three SLOs of the shortener: $0.02 for 50,000 requests.
    assert_eq!(page.body.matches("cost per 1,000 requests").count(), 3);
    assert!(page.body.contains("$0.0004"));
    let body = get(&router, "/api/v1/slos/shortener-availability")
        .await
        .json();
    let cost = &body["slos"][0]["cost"];
    assert_eq!(cost["currency"], "USD");
    assert!(close(&cost["per_1k_requests"], 0.0004));
}

#[tokio::test]
async fn every_page_links_the_cost_page() {
    let router = loopback();
    for path in ["/", "/slos", "/models", "/cost"] {
        let answer = get(&router, path).await;
        assert!(answer.body.contains(r#"href="/cost""#), "{path}");
    }
    let cost = get(&router, "/cost").await;
    assert!(cost
        .body
        .contains(r#"<a class="active" href="/cost">Cost</a>"#));
}
