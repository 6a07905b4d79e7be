//! `reliable serve --target gateway,shortener` and `reliable keys`,
//! black-box: the gateway in front of the co-located shortener (an
//! in-process pool), with rate limits from the environment and API keys
//! from the CLI.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn reliable() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reliable"))
}

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("a `listening on` line").expect("line");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Running { child, base }
}

fn serve(database_url: &str, extra: &[(&str, &str)]) -> Command {
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "gateway,shortener"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", database_url)
        .env_remove("RELIABLE_RATE_LIMIT_ANON")
        .env_remove("RELIABLE_REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn one_command_gives_a_rate_limited_public_shortener() {
    let database_url = testkit::postgres().create_database();
    let app = start(serve(
        &database_url,
        &[("RELIABLE_RATE_LIMIT_ANON", "4/min,burst=4")],
    ));
    let http = client();
    let created = http
        .post(format!("{}/api/v1/links", app.base))
        .json(&serde_json::json!({"url": "https://example.com/gw", "slug": "gw"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["x-gateway-pool"], "shortener");
    assert_eq!(created.headers()["ratelimit-policy"], "\"anon\";q=4;w=60");
    let redirect = http
        .get(format!("{}/gw", app.base))
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], "https://example.com/gw");
    for _ in 0..2 {
        assert_eq!(
            http.get(format!("{}/gw", app.base))
                .send()
                .await
                .expect("get")
                .status(),
            302
        );
    }
    let limited = http
        .get(format!("{}/gw", app.base))
        .send()
        .await
        .expect("limited");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    // The gateway's own health answers without spending the allowance.
    assert_eq!(
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .expect("ready")
            .status(),
        200
    );
}

fn keys(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = reliable()
        .arg("keys")
        .args(args)
        .env("RELIABLE_DATABASE_URL", database_url)
        .output()
        .expect("keys");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn keys_from_the_cli_open_scoped_routes_until_revoked() {
    let database_url = testkit::postgres().create_database();
    let (ok, key, _) = keys(
        &database_url,
        &["create", "--name", "ci", "--scopes", "links:write"],
    );
    assert!(ok);
    let key = key.trim().to_string();
    assert!(key.starts_with("rlk_") && key.len() == 68, "{key}");
    let (ok, listing, _) = keys(&database_url, &["list"]);
    assert!(ok);
    assert!(
        listing.contains("ci") && listing.contains(&key[..12]) && !listing.contains(&key[12..])
    );

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("reliable.toml");
    // Without the key cache, so the revocation below applies at once
    // (its TTL is tested on a manual clock in crates/gateway).
    std::fs::write(
        &file,
        r#"
[gateway]
key_cache_ttl = "0s"

[[gateway.routes]]
prefix = "/api"
pool = "shortener"
scope = "links:write"

[[gateway.routes]]
prefix = "/"
pool = "shortener"
"#,
    )
    .expect("config");
    let mut cmd = serve(&database_url, &[]);
    cmd.args(["--config", file.to_str().expect("path")]);
    let app = start(cmd);
    let http = client();
    let create = |key: Option<&str>| {
        let mut request = http
            .post(format!("{}/api/v1/links", app.base))
            .json(&serde_json::json!({"url": "https://example.com/k"}));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    assert_eq!(create(None).await.expect("no key").status(), 401);
    assert_eq!(
        create(Some("rlk_nope")).await.expect("malformed").status(),
        401
    );
    assert_eq!(create(Some(&key)).await.expect("key").status(), 201);
    assert!(keys(&database_url, &["revoke", "ci"]).0);
    assert_eq!(create(Some(&key)).await.expect("revoked").status(), 401);
}
