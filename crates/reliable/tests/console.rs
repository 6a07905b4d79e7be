//! The console in the binary, black-box: `reliable up` prints its address
//! after the public one, every page and `/api/v1/...` endpoint answers
//! with live data once traffic flowed and the evaluator ticked, every
//! answer carries the console's security headers, a taken console port is
//! a startup error naming `RELIABLE_CONSOLE_LISTEN`, and a console beyond
//! loopback asks for a `console:read` key.
//!
//! `RELIABLE_SLO_TICK=200ms` makes the evaluator and the traffic sampler
//! tick fast; waits poll with a deadline, never a fixed sleep.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{create_key, order_body, reliable, run_to_end, start, Running};

const DEADLINE: Duration = Duration::from_secs(60);

fn up(data: &Path, console_listen: &str) -> Command {
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", console_listen)
        .env("RELIABLE_DATA_DIR", data)
        .env("RELIABLE_SLO_TICK", "200ms");
    cmd
}

/// The platform and its console's `http://ADDR` (the line after
/// `listening on`).
fn start_up(data: &Path, console_listen: &str) -> (Running, String) {
    let running = start(up(data, console_listen));
    let line = running
        .lines
        .recv_timeout(DEADLINE)
        .expect("a line after `listening on`");
    let console = line
        .strip_prefix("console on ")
        .unwrap_or_else(|| panic!("expected `console on http://ADDR`, got `{line}`"))
        .to_string();
    (running, console)
}

/// Links, redirects, a 404 and an order through the public address.
async fn traffic(http: &reqwest::Client, base: &str) {
    for i in 0..5 {
        let created = http
            .post(format!("{base}/api/v1/links"))
            .json(
                &serde_json::json!({"url": "https://example.com/", "slug": format!("console-{i}")}),
            )
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201);
        for _ in 0..4 {
            let redirect = http
                .get(format!("{base}/console-{i}"))
                .send()
                .await
                .expect("redirect");
            assert!(redirect.status().is_redirection(), "{}", redirect.status());
        }
    }
    let missing = http
        .get(format!("{base}/no-such-link"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let order = http
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "console-1")
        .json(&order_body("console"))
        .send()
        .await
        .expect("order");
    assert_eq!(order.status(), 201);
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect(url);
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

/// Polls `url` until `ready` holds for its JSON, or fails at the deadline.
async fn until(http: &reqwest::Client, url: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let value = get_json(http, url).await;
        if ready(&value) {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{url} never got there: {value:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn module<'a>(overview: &'a Value, name: &str) -> Option<&'a Value> {
    overview["modules"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

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
        "/api/v1/overview".into(),
        "/api/v1/slos".into(),
        format!("/api/v1/slos/{slo}?window=1h"),
        "/api/v1/alerts".into(),
        "/api/v1/changes".into(),
        "/api/v1/canaries".into(),
        "/api/v1/models".into(),
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

/// The browser test: Debian's headless Chromium, driven by
/// playwright-core from npm (`crates/console/browser`, `npm ci` once, no
/// browser download), loads every page at a desktop and a phone viewport
/// against a `reliable up` with traffic, fails on console errors and
/// failed requests, asserts the SLO cards show a percentage and takes
/// full-page screenshots (kept in `CONSOLE_SCREENSHOTS_DIR` when set).
///
/// Without chromium, node or npm it fails and says how to get them, unless
/// `RELIABLE_SKIP_BROWSER=1` asks to skip it.
#[tokio::test]
async fn every_page_renders_cleanly_in_headless_chromium() {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        ("chromium", chromium.as_str()),
        ("node", "node"),
        ("npm", "npm"),
    ]
    .into_iter()
    .filter(|(_, program)| which(program).is_none())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        if std::env::var("RELIABLE_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("skipped: {missing:?} missing and RELIABLE_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "{missing:?} not found: run scripts/test, which installs Debian's chromium, nodejs \
             and npm (or set RELIABLE_SKIP_BROWSER=1 to skip this test)"
        );
    }
    let started = Instant::now();
    npm_ci(&package).await;

    let dir = tempfile::tempdir().expect("dir");
    let (app, console) = start_up(dir.path(), "127.0.0.1:0");
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    traffic(&http, &base).await;
    // Every SLO card the browser opens first shows numbers.
    until(&http, &format!("{console}/api/v1/slos"), |v| {
        v["slos"].as_array().is_some_and(|slos| {
            slos.first().is_some_and(|s| s["sli"].as_f64().is_some())
                && slos.iter().any(|s| {
                    s["id"] == "shortener-redirect-availability" && s["sli"].as_f64().is_some()
                })
        })
    })
    .await;

    let shots = match std::env::var_os("CONSOLE_SCREENSHOTS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => dir.path().join("screenshots"),
    };
    let mut node = tokio::process::Command::new("node");
    node.arg("check-pages.mjs")
        .arg(&console)
        .arg(&shots)
        .current_dir(&package)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, node.output())
        .await
        .unwrap_or_else(|_| panic!("the browser check took more than {BROWSER_TIMEOUT:?}; killed"))
        .expect("node starts");
    assert!(
        output.status.success(),
        "the browser check failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for name in [
        "overview", "slos", "slo", "alerts", "changes", "canaries", "models",
    ] {
        for viewport in ["desktop", "phone"] {
            let shot =
                std::fs::read(shots.join(format!("{name}-{viewport}.png"))).expect("screenshot");
            assert!(
                shot.starts_with(b"\x89PNG") && shot.len() > 5_000,
                "{name}-{viewport}"
            );
        }
    }
    support::stop(app).await;
    println!("browser check in {:?}", started.elapsed());
}

/// The whole browser check, `npm ci` included, on a cold cache.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `npm ci` into the package, once per lock file (a stamp holds its hash),
/// never downloading a browser.
async fn npm_ci(package: &Path) {
    let lock = std::fs::read(package.join("package-lock.json")).expect("package-lock.json");
    let stamp = package.join("node_modules/.package-lock.stamp");
    let fingerprint = format!("{:x}", fnv(&lock));
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
        return;
    }
    let mut npm = tokio::process::Command::new("npm");
    npm.args(["ci", "--silent", "--no-audit", "--no-fund"])
        .current_dir(package)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, npm.output())
        .await
        .expect("npm ci took too long")
        .expect("npm starts");
    assert!(
        output.status.success(),
        "npm ci failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&stamp, fingerprint).expect("stamp");
}

/// FNV-1a: enough to notice a changed lock file.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
