use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use chrono::Duration;
use serde_json::{json, Value};
use shortener::ShortenerConfig;

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

async fn stored_client_ips(app: &crate::helpers::TestApp) -> Vec<String> {
    app.flush_visits().await;
    let pool = sqlx::SqlitePool::connect(&app.db_url)
        .await
        .expect("sqlite");
    sqlx::query_scalar("SELECT client_ip FROM visits ORDER BY client_ip")
        .fetch_all(&pool)
        .await
        .expect("query")
}

async fn visit_forwarded_for(app: &crate::helpers::TestApp, path: &str, chain: &str) {
    let response = app
        .client
        .get(app.url(path))
        .header("x-forwarded-for", chain)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn client_addresses_are_stored_anonymized() {
    let app = spawn_app().await;
    app.create(json!({"url": "https://e.x/", "slug": "anon"}))
        .await;
    visit(&app, "/anon", BROWSER, None).await;
    assert_eq!(stored_client_ips(&app).await, ["127.0.0.0"]);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // The peer (loopback) is not a trusted proxy: its claim is not believed.
    let app = spawn_app_with(ShortenerConfig {
        trusted_proxies: trusted(&["10.0.0.0/8"]),
        ..ShortenerConfig::default()
    })
    .await;
    app.create(json!({"url": "https://e.x/", "slug": "xff"}))
        .await;
    visit_forwarded_for(&app, "/xff", "198.51.100.7").await;
    assert_eq!(stored_client_ips(&app).await, ["127.0.0.0"]);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_visitor() {
    // The peer is the gateway (trusted); the client is the rightmost
    // untrusted hop, anonymized like any address.
    let app = spawn_app_with(ShortenerConfig {
        trusted_proxies: trusted(&["127.0.0.1", "10.0.0.0/8"]),
        ..ShortenerConfig::default()
    })
    .await;
    app.create(json!({"url": "https://e.x/", "slug": "gw"}))
        .await;
    visit_forwarded_for(&app, "/gw", "6.6.6.6, 198.51.100.7, 10.1.2.3").await;
    visit_forwarded_for(&app, "/gw", "2001:db8::1234").await;
    assert_eq!(
        stored_client_ips(&app).await,
        ["198.51.100.0", "2001:db8::"]
    );
}

fn trusted(cidrs: &[&str]) -> kit::forwarded::TrustedProxies {
    let cidrs: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
    kit::forwarded::TrustedProxies::parse(&cidrs).expect("valid CIDRs")
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
