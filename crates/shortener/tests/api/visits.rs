use crate::helpers::{assert_problem, spawn_app};
use chrono::Duration;
use serde_json::{json, Value};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

async fn visit(app: &crate::helpers::TestApp, path: &str, user_agent: &str, referer: Option<&str>) {
    let mut request = app
        .client
        .get(app.url(path))
        .header("user-agent", user_agent);
    if let Some(referer) = referer {
        request = request.header("referer", referer);
    }
    assert_eq!(request.send().await.expect("request").status(), 302);
}

#[tokio::test]
async fn summary_counts_days_referrers_and_bots() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "s"}))
        .await;
    for _ in 0..3 {
        visit(&app, "/s", BROWSER, Some("https://news.example.com/post/1")).await;
    }
    visit(&app, "/s", BROWSER, None).await;
    visit(
        &app,
        "/s",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        None,
    )
    .await;
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    visit(&app, "/s", "curl/8.5.0", Some("https://blog.example.org/")).await;
    app.flush_visits().await;

    let summary: Value = app
        .get("/api/v1/links/s/visits")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(summary["total"], 6);
    assert_eq!(summary["visit_count"], 6);
    assert_eq!(summary["bots"], 2);
    assert_eq!(summary["humans"], 4);
    assert!((summary["bot_share"].as_f64().expect("share") - 2.0 / 6.0).abs() < 1e-9);
    assert_eq!(
        summary["per_day"],
        json!([{"date": "2030-06-01", "visits": 5}, {"date": "2030-06-02", "visits": 1}])
    );
    assert_eq!(
        summary["top_referrers"][0],
        json!({"host": "news.example.com", "visits": 3})
    );
    assert_eq!(
        summary["top_referrers"][1],
        json!({"host": null, "visits": 2})
    );

    // A rolling one-day window sees only the last visit.
    let today: Value = app
        .get("/api/v1/links/s/visits?days=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(today["total"], 1);
    assert_eq!(today["visit_count"], 6);
}

#[tokio::test]
async fn client_addresses_are_stored_anonymized() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "anon"}))
        .await;
    visit(&app, "/anon", BROWSER, None).await;
    app.flush_visits().await;
    let pool = sqlx::SqlitePool::connect(&app.db_url)
        .await
        .expect("sqlite");
    let ips: Vec<String> = sqlx::query_scalar("SELECT client_ip FROM visits")
        .fetch_all(&pool)
        .await
        .expect("query");
    assert_eq!(ips, ["127.0.0.0"]);
}

#[tokio::test]
async fn head_requests_do_not_count_as_visits() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "h", "max_visits": 1}))
        .await;
    for _ in 0..3 {
        let response = app.client.head(app.url("/h")).send().await.expect("head");
        assert_eq!(response.status(), 302);
    }
    assert_eq!(app.get("/h").await.status(), 302);
    assert_problem(app.get("/h").await, 410, "link-gone").await;
}

#[tokio::test]
async fn summary_rejects_bad_windows_and_unknown_links() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "w"}))
        .await;
    for path in [
        "/api/v1/links/w/visits?days=0",
        "/api/v1/links/w/visits?days=400",
        "/api/v1/links/w/visits?days=x",
    ] {
        assert_problem(app.get(path).await, 400, "invalid-query").await;
    }
    assert_problem(app.get("/api/v1/links/none/visits").await, 404, "not-found").await;
}
