//! Differential proof: the live evaluator inside `reliable up` and a real
//! Prometheus running the generated rules, both watching the same process
//! under a scripted mix of good and bad requests, report the same burn
//! rates and the same firing alerts.
//!
//! Bounded in time: Prometheus (Debian's package; scripts/test installs
//! it) scrapes every second and evaluates rules every second, the
//! platform's evaluator ticks every second, and all traffic is sent in one
//! burst, so every window (5m ... 30d) covers the same few seconds of
//! data and the test finishes in about 15 s. It waits for the two sides
//! to see the final counters by polling (bounded), never by sleeping for
//! a window to pass.
//!
//! Tolerance: 5% relative on burn rates. The evaluator divides counter
//! increases; Prometheus's `rate()` extrapolates each series towards the
//! window's edges by up to half a scrape interval, and its zero-clamp
//! (`first / increase` of the sampled interval) differs between the error
//! and the total series, so the two ratios differ by about one scrape
//! interval over the sampled span (~1-2% here). Alert states must be equal:
//! the scripted burn (25% errors against a 1% budget, burn rate 25) is far
//! from every threshold, and the quiet SLO burns exactly zero on both sides.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::eventually;

const SPEC: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata: {name: redirect-found}
spec:
  service: difftest
  indicator:
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'http_server_request_duration_seconds_count{service="shortener",http_route="/{slug}",http_response_status_code="404"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'http_server_request_duration_seconds_count{service="shortener",http_route="/{slug}"}'}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: redirect-under-1s}
spec:
  service: difftest
  indicator:
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: 'http_server_request_duration_seconds_bucket{service="shortener",http_route="/{slug}"}'}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99, op: lte, value: 1}]
"#;

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reliable() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reliable"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start_platform(dir: &Path, spec: &Path) -> (Reaped, String) {
    let mut child = reliable()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_SLO_SPECS", spec)
        .env("RELIABLE_SLO_TICK", "1s")
        // Only the scripted redirects: no synthetic probe of the route.
        .env("RELIABLE_PROBES_SHORTENER_REDIRECT", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reliable up");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("reliable exited").expect("line");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Reaped(child), addr)
}

fn start_prometheus(dir: &Path, target: &str, rules: &Path) -> (Reaped, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}/*.rules.yml']\nscrape_configs:\n  - job_name: reliable\n    static_configs: [{{targets: ['{target}']}}]\n",
            rules.display()
        ),
    )
    .expect("config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus not found: install the Debian package `prometheus` (scripts/test does)",
        );
    (Reaped(child), format!("http://127.0.0.1:{port}"))
}

async fn prometheus_value(client: &reqwest::Client, base: &str, query: &str) -> Option<f64> {
    let mut url = url::Url::parse(&format!("{base}/api/v1/query")).ok()?;
    url.query_pairs_mut().append_pair("query", query);
    let body: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn status(args: &[&str]) -> serde_json::Value {
    let out = reliable()
        .args(["slo", "status", "--format", "json"])
        .args(args)
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn slo<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["slos"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("{id} missing from {report}"))
}

#[tokio::test]
async fn live_evaluator_agrees_with_prometheus_on_the_same_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("difftest.yaml");
    std::fs::write(&spec, SPEC).expect("spec");
    let rules: PathBuf = dir.path().join("rules");
    let out = reliable()
        .args(["slo", "generate"])
        .arg(&spec)
        .arg("-o")
        .arg(&rules)
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_platform, addr) = start_platform(dir.path(), &spec);
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let created = client
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": "docs"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    // Both series exist before either side takes its first sample of them.
    assert_eq!(
        client
            .get(format!("{base}/docs"))
            .send()
            .await
            .expect("302")
            .status(),
        302
    );
    assert_eq!(
        client
            .get(format!("{base}/nope"))
            .send()
            .await
            .expect("404")
            .status(),
        404
    );

    let (_prometheus, prom) = start_prometheus(dir.path(), &addr, &rules);
    let total = "sum(http_server_request_duration_seconds_count{http_route=\"/{slug}\"})";
    eventually(
        "Prometheus to scrape the warm-up",
        Duration::from_secs(60),
        async || (prometheus_value(&client, &prom, total).await == Some(2.0)).then_some(()),
    )
    .await;

    // The scripted mix: 300 good redirects and 100 for unknown slugs.
    for i in 0..400 {
        let path = if i % 4 == 3 { "missing" } else { "docs" };
        client
            .get(format!("{base}/{path}"))
            .send()
            .await
            .expect("request");
    }
    eventually(
        "Prometheus to scrape the burst",
        Duration::from_secs(30),
        async || (prometheus_value(&client, &prom, total).await == Some(402.0)).then_some(()),
    )
    .await;
    let alerts = "count(ALERTS{alertstate=\"firing\",slo_id=\"difftest-redirect-found\",slo_severity!=\"\"})";
    eventually("Prometheus's alerts", Duration::from_secs(30), async || {
        (prometheus_value(&client, &prom, alerts).await == Some(2.0)).then_some(())
    })
    .await;
    // The meta group (period SLI, budget) evaluates on its own schedule.
    for id in ["difftest-redirect-found", "difftest-redirect-under-1s"] {
        let query = format!("slo:period_error_budget_remaining:ratio{{slo_id=\"{id}\"}} < 1 or slo:period_error_budget_remaining:ratio{{slo_id=\"{id}\"}} == 1 and on() slo:period_error_budget_remaining:ratio{{slo_id=\"difftest-redirect-found\"}} < 0");
        eventually(
            "Prometheus's budget recording rules",
            Duration::from_secs(30),
            async || prometheus_value(&client, &prom, &query).await.map(|_| ()),
        )
        .await;
    }
    let url = ["--url", base.as_str()];
    let local = eventually(
        "the live evaluator to see the burst",
        Duration::from_secs(30),
        async || {
            let report = status(&url);
            (slo(&report, "difftest-redirect-found")["firing"]
                .as_array()?
                .len()
                == 2)
                .then_some(report)
        },
    )
    .await;
    let remote = status(&["--prometheus", prom.as_str()]);

    for id in ["difftest-redirect-found", "difftest-redirect-under-1s"] {
        let (l, r) = (slo(&local, id), slo(&remote, id));
        assert_eq!(
            l["firing"], r["firing"],
            "{id}: local {l} vs Prometheus {r}"
        );
        let burns = |s: &serde_json::Value| -> Vec<f64> {
            s["burn_rates"]
                .as_array()
                .expect("burn rates")
                .iter()
                .map(|b| b["burn_rate"].as_f64().expect("data"))
                .collect()
        };
        eprintln!(
            "{id}: evaluator burn {:?}, Prometheus burn {:?}",
            burns(l),
            burns(r)
        );
        for (lb, rb) in burns(l).iter().zip(burns(r)) {
            assert!(
                (lb - rb).abs() <= 0.05 * lb.abs().max(rb.abs()) + 1e-9,
                "{id}: burn {lb} vs {rb}"
            );
        }
        let (lr, rr) = (
            l["budget_remaining"].as_f64().expect("local"),
            r["budget_remaining"].as_f64().expect("remote"),
        );
        assert!(
            (lr - rr).abs() <= 0.05 * lr.abs().max(rr.abs()) + 1e-9,
            "{id}: budget {lr} vs {rr}"
        );
    }
    let found = slo(&local, "difftest-redirect-found");
    assert_eq!(found["firing"], serde_json::json!(["page", "ticket"]));
    assert!(
        (found["burn_rates"][0]["burn_rate"].as_f64().expect("5m") - 25.0).abs() < 1.0,
        "{found}"
    );
    assert_eq!(
        slo(&local, "difftest-redirect-under-1s")["firing"],
        serde_json::json!([])
    );

    // The gate reads the same numbers: 25% errors against a 1% budget is
    // an exhausted budget, so features are frozen and fixes still ship.
    for (source, kind, code) in [
        (["--prometheus", prom.as_str()], "feature", 1),
        (["--url", base.as_str()], "feature", 1),
        (["--url", base.as_str()], "fix", 0),
    ] {
        let out = reliable()
            .args([
                "slo",
                "gate",
                "--slo",
                "difftest-redirect-found",
                "--kind",
                kind,
            ])
            .args(source)
            .output()
            .expect("gate");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == 1 {
            assert!(String::from_utf8_lossy(&out.stderr).contains("blocked (freeze)"));
        }
    }

    let text = reliable()
        .args(["slo", "status", "--url", &base])
        .output()
        .expect("text status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("difftest-redirect-found  target 99.000%"),
        "{text}"
    );
    assert!(text.contains("firing: page, ticket"), "{text}");
}
