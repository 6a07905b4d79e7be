//! Every page and API answers with live data; a taken port and a
//! console beyond loopback.

use crate::support::{self, create_key, run_to_end};
use crate::{module, start_up, traffic, until, up};
use serde_json::Value;

#[tokio::test]
async fn up_serves_every_console_page_with_live_data_and_its_headers() {
    let dir = tempfile::tempdir().expect("dir");
    let (app, console) = start_up(dir.path(), "127.0.0.1:0");
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    traffic(&http, &base).await;

    // Numbers, not "no data", once the sampler and the evaluator ticked.
    let overview = until(&http, &format!("{console}/api/v1/overview"), |o| {
        ["gateway", "shortener"].iter().all(|name| {
            module(o, name).is_some_and(|m| m["request_rate"].as_f64().is_some_and(|r| r > 0.0))
        })
    })
    .await;
    let gateway = module(&overview, "gateway").expect("gateway");
    assert_eq!(gateway["ready"], true, "{gateway:#}");
    assert!(
        gateway["p99_seconds"].as_f64().is_some_and(|p| p > 0.0),
        "{gateway:#}"
    );
    let names: Vec<&str> = overview["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(
        names.last(),
        Some(&"gateway"),
        "start order, the front last: {names:?}"
    );
    for name in ["shortener", "orders", "notifier"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let deps = overview["dependencies"].as_array().expect("dependencies");
    let database = deps
        .iter()
        .find(|d| d["name"] == "database")
        .expect("database");
    assert_eq!(
        (database["adapter"].as_str(), database["state"].as_str()),
        (Some("sqlite"), Some("up"))
    );
    let edges = overview["graph"]["edges"].as_array().expect("edges");
    let edge = |from: &str, to: &str| edges.iter().find(|e| e["from"] == from && e["to"] == to);
    assert!(
        edge("gateway", "shortener").is_some_and(|e| e["rate"].as_f64().is_some_and(|r| r > 0.0)),
        "{edges:#?}"
    );
    assert!(edge("orders", "notifier").is_some_and(|e| e["kind"] == "event"));

    let slos = until(&http, &format!("{console}/api/v1/slos"), |v| {
        v["slos"].as_array().is_some_and(|slos| {
            slos.iter().any(|s| {
                s["id"] == "shortener-redirect-availability"
                    && s["sli"].as_f64().is_some()
                    && s["series"]
                        .as_array()
                        .is_some_and(|points| points.len() >= 2)
            })
        })
    })
    .await;
    let ids: Vec<&str> = slos["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&"gateway-availability"), "{ids:?}");

    let slo = "shortener-redirect-availability";
    for path in [
        "/".to_string(),
        "/slos".into(),
        format!("/slos/{slo}"),
        "/alerts".into(),
        "/changes".into(),
        "/canaries".into(),
        "/models".into(),
        "/cost".into(),
        "/api/v1/overview".into(),
        "/api/v1/slos".into(),
        format!("/api/v1/slos/{slo}?window=1h"),
        "/api/v1/alerts".into(),
        "/api/v1/changes".into(),
        "/api/v1/canaries".into(),
        "/api/v1/models".into(),
        "/api/v1/cost".into(),
        "/api/v1/openapi.json".into(),
        "/style.css".into(),
    ] {
        let response = http
            .get(format!("{console}{path}"))
            .send()
            .await
            .expect(&path);
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        for header in [
            "content-security-policy",
            "x-content-type-options",
            "x-frame-options",
        ] {
            assert!(headers.contains_key(header), "{path} lacks {header}");
        }
        let body = response.text().await.expect("body");
        if path == "/" {
            for name in ["gateway", "shortener", "orders"] {
                assert!(body.contains(name), "the overview does not name {name}");
            }
        }
        if path.starts_with("/slos") {
            assert!(body.contains(slo), "{path} does not show {slo}");
            assert!(body.contains('%'), "{path} shows no percentage");
        }
    }

    // Bad input is the client's fault, in problem+json.
    let bad = http
        .get(format!("{console}/api/v1/slos?window=99y"))
        .send()
        .await
        .expect("bad window");
    assert_eq!(bad.status(), 400);
    assert!(bad.headers().get("content-type").is_some_and(|t| t
        .to_str()
        .is_ok_and(|t| t.starts_with("application/problem+json"))));
    // The public listener does not serve the console.
    let public = http
        .get(format!("{base}/api/v1/overview"))
        .send()
        .await
        .expect("public");
    assert_ne!(public.status(), 200);
    support::stop(app).await;
}

#[test]
fn a_taken_console_port_is_a_startup_error_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let (code, stderr) = run_to_end(up(dir.path(), &addr));
    assert_ne!(code, 0);
    assert!(stderr.contains("RELIABLE_CONSOLE_LISTEN"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

/// Bound to every interface (port 0, for the test's lifetime only): every
/// request needs a key, and only one with `console:read` reads.
#[tokio::test]
async fn beyond_loopback_the_console_asks_for_a_console_read_key() {
    let dir = tempfile::tempdir().expect("dir");
    let reader = create_key(dir.path(), "ops", "console:read");
    let writer = create_key(dir.path(), "links", "links:write");
    let (app, console) = start_up(dir.path(), "0.0.0.0:0");
    let port = console.rsplit(':').next().expect("port");
    let console = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let url = format!("{console}/api/v1/overview");
    let anonymous = http.get(&url).send().await.expect("anonymous");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("content-security-policy"));
    let wrong = http
        .get(&url)
        .bearer_auth(&writer)
        .send()
        .await
        .expect("writer");
    assert_eq!(wrong.status(), 403);
    let unknown = http
        .get(&url)
        .bearer_auth("rlk_0000000000000000000000000000000000000000000000000000000000000000")
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), 401);
    let read = http
        .get(&url)
        .basic_auth(&reader, Some(""))
        .send()
        .await
        .expect("reader");
    assert_eq!(read.status(), 200);
    let overview: Value = read.json().await.expect("json");
    assert!(module(&overview, "gateway").is_some(), "{overview:#}");
    support::stop(app).await;
}
