//! Probes and the status page in the running binary: `reliable up` seeds
//! and probes the shortener's redirect (metrics, `/status`), incident notes
//! over HTTP (scope, escaping) and from the CLI, and a bad probe config
//! refused at start naming its key.

mod support;

use std::time::Duration;
use support::{create_key, reliable, run_to_end, start, stop};

const SUCCESSES: &str =
    "probe_checks_total{probe=\"shortener-redirect\",component=\"Link redirects\",result=\"success\"} ";

#[tokio::test]
async fn up_probes_the_redirect_path_and_serves_the_status_page() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = reliable();
    cmd.args(["up", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_PROBES_SHORTENER_REDIRECT", "true")
        .env("RELIABLE_PROBES_SHORTENER_REDIRECT_INTERVAL", "1s");
    let running = start(cmd);
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();

    // The seeded link redirects, and the probe counts successes.
    let mut passed = false;
    for _ in 0..200 {
        let metrics = support::get_text(&http, &format!("{base}/metrics")).await;
        if metrics
            .lines()
            .filter_map(|l| l.strip_prefix(SUCCESSES))
            .any(|v| v.trim().parse::<f64>().unwrap_or(0.0) >= 1.0)
        {
            assert!(metrics.contains("probe_success{probe=\"shortener-redirect\""));
            assert!(metrics.contains("probe_duration_seconds{probe=\"shortener-redirect\""));
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passed, "the shortener-redirect probe never passed");

    let page = http
        .get(format!("{base}/status"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "public, max-age=30");
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    // Security headers: the page's own policy lets only its inline
    // stylesheet (by hash) apply; the platform's stack adds the rest.
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.expect("html");
    assert!(html.contains("Link redirects"), "{html}");
    // The hash in the policy is the page's stylesheet's: browsers apply it.
    let style = html
        .split("<style>")
        .nth(1)
        .and_then(|rest| rest.split("</style>").next())
        .expect("an inline stylesheet");
    assert_eq!(html.matches("<style>").count(), 1);
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    let again = http
        .get(format!("{base}/status"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("again");
    assert_eq!(again.status(), 304);

    // Incident notes need `status:write`, and render as text.
    let note =
        serde_json::json!({"component": "Link redirects", "title": "<script>alert(1)</script>"});
    let url = format!("{base}/api/v1/status/incidents");
    assert_eq!(
        http.post(&url).json(&note).send().await.unwrap().status(),
        401
    );
    let reader = create_key(data.path(), "reader", "links:write");
    let refused = http
        .post(&url)
        .bearer_auth(&reader)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let writer = create_key(data.path(), "ops", "status:write");
    let created = http
        .post(&url)
        .bearer_auth(&writer)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["author"], "key:ops");
    let html = support::get_text(&http, &format!("{base}/status")).await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"));

    // The CLI reads and writes the same store.
    let listed = reliable()
        .args(["status", "incident", "list"])
        .env("RELIABLE_DATA_DIR", data.path())
        .output()
        .expect("list");
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("<script>alert(1)</script>"));
    let id = created["id"].as_i64().unwrap().to_string();
    let mut update = reliable();
    update
        .args(["status", "incident", "update", &id, "--status", "resolved"])
        .env("RELIABLE_DATA_DIR", data.path());
    assert_eq!(run_to_end(update).0, 0);
    let mut bad = reliable();
    bad.args(["status", "incident", "update", &id, "--status", "fixed"])
        .env("RELIABLE_DATA_DIR", data.path());
    let (code, stderr) = run_to_end(bad);
    assert_eq!(code, 2);
    assert!(stderr.contains("status"), "{stderr}");
    // The CLI's write reaches the page within `status.render_every`; the
    // store has it at once.
    let listed = reliable()
        .args(["status", "incident", "list"])
        .env("RELIABLE_DATA_DIR", data.path())
        .output()
        .expect("list");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("resolved"), "{listed}");
    stop(running).await;
}

#[test]
fn a_bad_probe_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (check, key) in [
        (
            "type = \"http\"\nurl = \"not a url\"",
            "probes.checks[0].check.url",
        ),
        ("type = \"gopher\"\nurl = \"x\"", "gopher"),
    ] {
        let file = dir.path().join("reliable.toml");
        std::fs::write(
            &file,
            format!("[[probes.checks]]\nname = \"web\"\ncomponent = \"Web\"\n[probes.checks.check]\n{check}\n"),
        )
        .unwrap();
        let mut cmd = reliable();
        cmd.args(["up", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file);
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
    let file = dir.path().join("zero.toml");
    std::fs::write(
        &file,
        "[[probes.checks]]\nname = \"web\"\ncomponent = \"Web\"\ninterval = \"0s\"\n[probes.checks.check]\ntype = \"tcp\"\naddress = \"localhost:1\"\n",
    )
    .unwrap();
    let mut cmd = reliable();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("probes.checks[0].interval"), "{stderr}");
}
