//! Secrets never leak: a whole platform (`serve --target all` on
//! PostgreSQL and NATS, over TLS, logging at debug, exporting traces) is
//! given secrets (a database password, the webhook's HMAC key, its TLS
//! private key, an API key a client sends) and driven through every
//! module; then every log line,
//! stderr, `/metrics`, `/openapi.json`, `/readyz`, every exported span,
//! every response body and `reliable config check`'s output are searched
//! for them. Zero hits.

mod support;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use resilience::client::{ClientSettings, HttpClient};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{order_body, reliable, start_with_stderr, stop};
use testkit::otlp::Collector;
use testkit::webhook::Receiver;
use testkit::NatsServer;

const DB_PASSWORD: &str = "db-pw-5e1f0c9a";
const WEBHOOK_SECRET: &str = "whsec-91c2b7d4";
/// Well formed, unknown to the gateway: refused, and never written down.
const API_KEY: &str = "rlk_3f1e9a7c5b2d4e6f8a0b1c3d5e7f9a2b4c6d8e0f1a3b5c7d9e2f4a6b8c0d1e3f";

/// The secrets: the constants and the lines of the TLS key's PEM body.
struct Secrets(Vec<String>);

impl Secrets {
    fn assert_clean(&self, what: &str, text: &str) {
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what} holds a secret:\n{text}"
            );
        }
    }
}

/// HTTPS to the platform, trusting its CA: the platform's own client
/// (rustls on `ring`). reqwest's TLS would compile a second crypto
/// library (aws-lc) into every test build for this one test.
struct Https(HttpClient);

impl Https {
    fn new(ca_file: &std::path::Path) -> Self {
        let settings = ClientSettings {
            ca_file: Some(ca_file.to_path_buf()),
            ..ClientSettings::default()
        };
        Self(HttpClient::new(&settings).expect("HTTPS client"))
    }

    /// One request; the status and the body as text.
    async fn send(
        &self,
        method: Method,
        url: &str,
        header: Option<(&str, &str)>,
        json: Option<serde_json::Value>,
    ) -> (StatusCode, String) {
        let mut request = http::Request::builder().method(method).uri(url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let body = match json {
            Some(json) => {
                request = request.header("content-type", "application/json");
                resilience::body::full(serde_json::to_vec(&json).expect("json").into())
            }
            None => resilience::body::empty(),
        };
        let response = self
            .0
            .send(request.body(body).expect("request"))
            .await
            .expect(url);
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// `reliable pki init` and `issue --service gateway` in `dir`: the CA
/// file, the certificate and the key.
fn pki(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    for args in [&["init"][..], &["issue", "--service", "gateway"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_reliable"))
            .arg("pki")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .output()
            .expect("reliable pki");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        dir.join("ca.pem"),
        dir.join("gateway.pem"),
        dir.join("gateway-key.pem"),
    )
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_metric_a_document_or_a_span() {
    let collector = Collector::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let nats = NatsServer::start();
    let mut database_url =
        url::Url::parse(&testkit::postgres().create_database()).expect("database URL");
    // The test server trusts local connections, so any password works.
    database_url
        .set_password(Some(DB_PASSWORD))
        .expect("password");
    let dir = tempfile::tempdir().expect("dir");
    let stderr_path = dir.path().join("stderr.log");
    let (ca_file, cert_file, key_file) = pki(&dir.path().join("pki"));
    let key_pem = std::fs::read_to_string(&key_file).expect("key");
    let mut secrets: Vec<String> = [DB_PASSWORD, WEBHOOK_SECRET, API_KEY]
        .map(String::from)
        .to_vec();
    secrets.extend(
        key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(String::from),
    );
    assert!(secrets.len() > 3, "the key has a body");
    let secrets = Secrets(secrets);
    let env = [
        ("RELIABLE_DATABASE_URL", database_url.to_string()),
        ("RELIABLE_NATS_URL", nats.url().to_string()),
        ("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url().to_string()),
        (
            "RELIABLE_NOTIFIER_WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_string(),
        ),
        ("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true".to_string()),
        ("RELIABLE_DATA_DIR", dir.path().display().to_string()),
        ("RELIABLE_TLS_CERT_FILE", cert_file.display().to_string()),
        ("RELIABLE_TLS_KEY_FILE", key_file.display().to_string()),
        ("RELIABLE_TLS_CA_FILE", ca_file.display().to_string()),
        ("RELIABLE_TLS_CLIENT_AUTH", "optional".to_string()),
    ];

    let mut check = Command::new(env!("CARGO_BIN_EXE_reliable"));
    check.args(["config", "check"]).envs(env.iter().cloned());
    let out = check.output().expect("config check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secrets.assert_clean("config check stdout", &String::from_utf8_lossy(&out.stdout));
    secrets.assert_clean("config check stderr", &String::from_utf8_lossy(&out.stderr));

    let mut cmd = reliable();
    cmd.args(["serve", "--target", "all"])
        .envs(env.iter().cloned())
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_LOG", "debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let app = start_with_stderr(cmd, Stdio::from(stderr));
    let base = format!("https://{}", app.addr);
    let https = Https::new(&ca_file);

    let mut bodies = Vec::new();
    let (status, body) = https
        .send(
            Method::POST,
            &format!("{base}/api/v1/links"),
            None,
            Some(serde_json::json!({"url": "https://example.com/", "slug": "secret-test"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    bodies.push(body);
    let (status, _) = https
        .send(Method::GET, &format!("{base}/secret-test"), None, None)
        .await;
    assert_eq!(status, 302);
    let (status, body) = https
        .send(
            Method::POST,
            &format!("{base}/api/v1/orders"),
            Some(("idempotency-key", "secret-1")),
            Some(order_body("c1")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    bodies.push(body);
    // A key the gateway does not know, in both places a client may send it.
    for (name, value) in [
        ("authorization", format!("Bearer {API_KEY}")),
        ("x-api-key", API_KEY.to_string()),
    ] {
        let (status, body) = https
            .send(
                Method::GET,
                &format!("{base}/api/v1/links"),
                Some((name, &value)),
                None,
            )
            .await;
        assert_eq!(status, 401, "{name}");
        bodies.push(body);
    }
    receiver
        .wait_until(Duration::from_secs(30), "the order's event", |r| {
            r.accepted().len() == 1
        })
        .await;
    for path in ["/metrics", "/openapi.json", "/readyz", "/api/v1/slo/status"] {
        let (_, text) = https
            .send(Method::GET, &format!("{base}{path}"), None, None)
            .await;
        secrets.assert_clean(path, &text);
    }
    for body in &bodies {
        secrets.assert_clean("a response body", body);
    }
    testkit::eventually("spans exported", Duration::from_secs(30), async || {
        (collector.spans().len() >= 4).then_some(())
    })
    .await;

    let lines = stop(app).await;
    assert!(
        lines.len() > 10,
        "too few log lines to mean anything: {lines:?}"
    );
    for line in &lines {
        secrets.assert_clean("a log line", line);
    }
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    secrets.assert_clean("stderr", &stderr);
    for span in collector.spans() {
        secrets.assert_clean("a span", &format!("{span:?}"));
    }
}
