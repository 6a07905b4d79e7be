//! The `reliable` binary, black-box: start it, talk HTTP, signal it.

mod support;

use std::path::Path;
use std::process::Command;
use support::{get_text, run_to_end, sigterm, start, stop};

fn reliable() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reliable"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Creates a link to https://example.com/ and returns the 201 response.
async fn create_link(http: &reqwest::Client, base: &str, slug: &str) -> reqwest::Response {
    let created = http
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": slug}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    created
}

fn up_command(data_dir: &Path) -> Command {
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data_dir)
        // Requests and visits are counted exactly: no synthetic probe.
        .env("RELIABLE_PROBES_SHORTENER_REDIRECT", "false")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    cmd
}

#[tokio::test]
async fn up_serves_links_and_sigterm_drains_every_visit_then_exits_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = up_command(dir.path());
    // Nested key from the environment; nothing is flushed before shutdown.
    cmd.env("RELIABLE_SHORTENER_VISIT_FLUSH_INTERVAL", "1h")
        .env("RELIABLE_SHORTENER_VISIT_BATCH_SIZE", "100000")
        .env(
            "RELIABLE_LOG",
            "debug,sqlx=warn,hyper=warn,h2=warn,tower=warn",
        );
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = client();
    create_link(&http, &base, "cli").await;
    for _ in 0..100 {
        let response = http
            .get(format!("{base}/cli"))
            .send()
            .await
            .expect("redirect");
        assert_eq!(response.status(), 302);
    }
    // A traced request: its log lines carry the caller's trace id and a new span id.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = http
        .get(format!("{base}/api/v1/links/cli"))
        .header("traceparent", parent)
        .header("x-request-id", "req-123")
        .send()
        .await
        .expect("get");
    assert_eq!(traced.headers()["x-request-id"], "req-123");
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );

    let logs: Vec<serde_json::Value> = stop(app)
        .await
        .into_iter()
        .map(|l| {
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not a JSON log line: {l}: {e}"))
        })
        .collect();
    let traced_lines: Vec<_> = logs
        .iter()
        .filter(|l| l["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        .collect();
    assert!(!traced_lines.is_empty(), "no log line carries the trace id");
    for line in traced_lines {
        assert_eq!(line["request_id"], "req-123");
        let span_id = line["span_id"].as_str().expect("span_id");
        assert_eq!(span_id.len(), 16);
        assert_ne!(span_id, "00f067aa0ba902b7");
    }

    let url = format!("sqlite://{}", dir.path().join("shortener.db").display());
    let pool = sqlx_pool(&url).await;
    let (visits, count) = pool.await_counts().await;
    assert_eq!(visits, 100, "every buffered visit is written on SIGTERM");
    assert_eq!(count, 100);
}

#[tokio::test]
async fn up_puts_the_gateway_in_front_of_every_module() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("reliable.toml");
    // The test client stands in for a trusted load balancer on loopback.
    std::fs::write(&file, "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n").expect("write");
    let mut cmd = up_command(dir.path());
    cmd.arg("--config").arg(&file);
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = client();
    let created = create_link(&http, &base, "gw").await;
    assert_eq!(created.headers()["x-gateway-pool"], "shortener");
    // A module's answers carry its stack's security headers, relayed as
    // they came by the gateway (which adds none of its own).
    assert_eq!(created.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        created.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(created.headers()["referrer-policy"], "no-referrer");
    let redirect = http
        .get(format!("{base}/gw"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["x-gateway-pool"], "shortener");
    // A redirect carries `Referrer-Policy` alone (it has no body).
    assert_eq!(redirect.headers()["referrer-policy"], "no-referrer");
    assert!(!redirect.headers().contains_key("content-security-policy"));
    let order = http
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "gw-1")
        .json(&serde_json::json!({"customer_id": "c1", "currency": "EUR",
            "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 100}]}))
        .send()
        .await
        .expect("order");
    assert_eq!(order.status(), 201);
    // Each module is a pool of its own: orders' breaker is not the shortener's.
    assert_eq!(order.headers()["x-gateway-pool"], "orders");
    for path in ["/healthz", "/readyz"] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            !response.headers().contains_key("x-gateway-pool"),
            "{path} is the front's own"
        );
    }
    let metrics = get_text(&http, &format!("{base}/metrics")).await;
    for series in [
        r#"http_server_request_duration_seconds_count{service="gateway",http_route="/{*path}",http_request_method="GET",http_response_status_code="302"} 1"#,
        r#"http_server_request_duration_seconds_count{service="shortener",http_route="/{slug}",http_request_method="GET",http_response_status_code="302"} 1"#,
        r#"http_client_request_duration_seconds_count{gateway_pool="shortener",server_address="in-process",http_response_status_code="302",error_type=""} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    assert!(
        dir.path().join("gateway.db").exists(),
        "keys under the data dir"
    );
    stop(app).await;

    let url = format!("sqlite://{}", dir.path().join("shortener.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let ips: Vec<String> = sqlx::query_scalar("SELECT client_ip FROM visits")
        .fetch_all(&pool)
        .await
        .expect("visits");
    assert_eq!(ips, ["198.51.100.0"], "the forwarded client, anonymized");
}

#[tokio::test]
async fn serve_runs_the_shortener_on_postgres_and_applies_migrations() {
    let database_url = testkit::postgres().create_database();
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "shortener"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", &database_url);
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = client();
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    let created = http
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/pg", "slug": "pg"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let redirect = http
        .get(format!("{base}/pg"))
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], "https://example.com/pg");
    let metrics = get_text(&http, &format!("{base}/metrics")).await;
    assert!(metrics.contains(
        r#"http_server_request_duration_seconds_count{service="shortener",http_route="/{slug}",http_request_method="GET",http_response_status_code="302"} 1"#
    ), "{metrics}");
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "process metrics missing"
    );
    // The log never shows the database URL.
    let logs = stop(app).await;
    assert!(logs.iter().all(|l| !l.contains(&database_url)));
}

#[tokio::test]
async fn serve_runs_the_shortener_on_a_sqlite_url_beside_the_platform_stores() {
    // The platform's own stores (change timeline, alerts, probes) used to
    // share a configured SQLite file with the module: their migrations met
    // in one `_sqlx_migrations` table and the shortener refused to start
    // ("migration 1 was previously applied but has been modified").
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("links.db");
    let mut cmd = support::serve("shortener", dir.path());
    cmd.env(
        "RELIABLE_DATABASE_URL",
        format!("sqlite://{}", database.display()),
    );
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let http = client();
    assert_eq!(create_link(&http, &base, "lite").await.status(), 201);
    let redirect = http
        .get(format!("{base}/lite"))
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    stop(app).await;
    // The links are in the configured file, the change timeline in its own.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .expect("sqlite");
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM links")
        .fetch_all(&pool)
        .await
        .expect("links");
    assert_eq!(slugs, ["lite"]);
    assert!(
        dir.path().join("changes.db").exists(),
        "change timeline in the data dir"
    );
}

#[test]
fn configuration_errors_name_the_bad_key_and_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = up_command(dir.path());
    cmd.env("RELIABLE_LISTEN", "not-an-address");
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("listen"), "{stderr}");

    let file = dir.path().join("reliable.toml");
    std::fs::write(&file, "[shortener]\ncache_size = 10\n").expect("write");
    let mut cmd = up_command(dir.path());
    cmd.arg("--config").arg(&file);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cache_size"), "{stderr}");

    std::fs::write(&file, "[shortener]\nslug_length = 2\n").expect("write");
    let mut cmd = up_command(dir.path());
    cmd.arg("--config").arg(&file);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("shortener.slug_length"), "{stderr}");

    let mut cmd = reliable();
    cmd.args(["serve", "--target", "nope"]);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown target `nope`"), "{stderr}");

    // Without a database URL the platform's own stores (the change
    // timeline) live under the data dir: a temporary one here.
    let data = tempfile::tempdir().expect("temp dir");
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "shortener"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        .env_remove("RELIABLE_DATABASE_URL");
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("RELIABLE_DATABASE_URL"), "{stderr}");
}

#[test]
fn file_env_and_flags_layer_in_order() {
    // The file sets a listen address, the environment overrides it, and the
    // flag overrides both: the process must listen where the flag says.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("reliable.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\n").expect("write");
    let mut cmd = reliable();
    cmd.arg("up")
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .env("RELIABLE_LISTEN", "127.0.0.1:2")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", dir.path());
    let mut app = start(cmd);
    assert!(app.addr.starts_with("127.0.0.1:"));
    assert!(!app.addr.ends_with(":1") && !app.addr.ends_with(":2"));
    sigterm(&app.child);
    assert!(app.child.wait().expect("wait").success());
}

struct Counts(sqlx::SqlitePool);

async fn sqlx_pool(url: &str) -> Counts {
    Counts(sqlx::SqlitePool::connect(url).await.expect("sqlite"))
}

impl Counts {
    async fn await_counts(&self) -> (i64, i64) {
        let visits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visits")
            .fetch_one(&self.0)
            .await
            .expect("count");
        let count: i64 = sqlx::query_scalar("SELECT visit_count FROM links WHERE slug = 'cli'")
            .fetch_one(&self.0)
            .await
            .expect("count");
        (visits, count)
    }
}

#[tokio::test]
async fn traces_export_over_otlp_when_an_endpoint_is_set() {
    use axum::body::Bytes;
    use std::sync::{Arc, Mutex};
    // A stand-in OTLP/HTTP collector that keeps what it receives.
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let sink = received.clone();
    let collector = axum::Router::new().fallback(move |uri: axum::http::Uri, body: Bytes| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .expect("lock")
                .push((uri.path().to_string(), body));
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = up_command(dir.path());
    cmd.env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://{collector_addr}"),
    );
    let app = start(cmd);
    let http = client();
    let response = http
        .get(format!("http://{}/healthz", app.addr))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), 200);
    stop(app).await;

    let trace_id: Vec<u8> = (0..16)
        .map(|i| {
            u8::from_str_radix(&"0af7651916cd43dd8448eb211c80319c"[i * 2..i * 2 + 2], 16)
                .expect("hex")
        })
        .collect();
    let batches = received.lock().expect("lock").clone();
    assert!(
        batches.iter().any(|(path, body)| path == "/v1/traces"
            && body.windows(16).any(|w| w == trace_id.as_slice())),
        "the collector received no span of the caller's trace ({} batches)",
        batches.len()
    );
}
