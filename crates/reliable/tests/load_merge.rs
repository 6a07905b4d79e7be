//! Load from several machines, black-box: three `reliable load` agents
//! with one `--start-at` write `--out-hist` files against a local server,
//! and `reliable load merge` counts exactly what the server answered and
//! judges the thresholds on the whole. Then the bad inputs: corrupt files,
//! another version, a start in the past, and `reliable load plan`.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::reliable;

/// Each agent's open-model rate and measured time: 150 arrivals each.
const RATE: u64 = 150;
const SECONDS: u64 = 1;

/// A server on 127.0.0.1:0 answering 200 to every GET, counting them.
async fn serve() -> (String, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let router = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), seen)
}

/// Two names and a threshold that one agent alone cannot pass (it sends
/// 150) but three together do.
fn scenario() -> String {
    format!(
        "scenarios:\n  mix:\n    rate: {RATE}\n    duration: {SECONDS}s\n    connections: 8\n    \
         requests:\n      - {{name: home, weight: 1, url: \"{{{{target}}}}/home\"}}\n      \
         - {{name: item, weight: 2, url: \"{{{{target}}}}/item/{{{{counter}}}}\"}}\n\
         thresholds:\n  http_reqs: [\"count >= 400\"]\n  http_req_duration: [\"p(99) < 5s\"]\n"
    )
}

fn output_of(mut cmd: Command) -> Output {
    cmd.output().expect("run reliable")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn agent(dir: &Path, target: &str, start_at: &str, index: usize) -> Command {
    let mut cmd = reliable();
    cmd.arg("load")
        .arg(dir.join("scenario.yaml"))
        .args(["--target", target, "--json", "--html", "-"])
        .args(["--start-at", start_at, "--threads", "1"])
        .arg("--out-hist")
        .arg(dir.join(format!("agent-{index}.json")));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_merge_into_the_count_the_server_saw() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("scenario.yaml"), scenario()).expect("scenario");
    let (target, seen) = serve().await;
    // Far enough ahead for three debug processes to start; Unix seconds
    // with a fraction, as a Job template's parameter would give it.
    let start_ms = chrono::Utc::now().timestamp_millis() + 3_000;
    let start_at = format!("{}.{:03}", start_ms / 1_000, start_ms % 1_000);
    let agents: Vec<_> = (0..3)
        .map(|i| {
            let cmd = agent(dir.path(), &target, &start_at, i);
            tokio::task::spawn_blocking(move || output_of(cmd))
        })
        .collect();
    let mut sent = 0;
    for agent in agents {
        let out = agent.await.expect("join");
        // Alone, an agent crosses `count >= 400`: exit 99.
        assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
        let report = json(&out);
        let started = report["started_unix_ms"].as_u64().expect("started");
        assert!(
            started >= start_ms as u64,
            "began {started}, before {start_ms}"
        );
        sent += report["scenarios"][0]["total"]["sent"]
            .as_u64()
            .expect("sent");
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        sent,
        "every request sent was answered once"
    );
    assert!(sent > 3 * RATE * SECONDS * 9 / 10, "{sent}");

    let files: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("agent-{i}.json")))
        .collect();
    let mut merge = reliable();
    merge
        .args(["load", "merge", "--json", "--html"])
        .arg(dir.path().join("merged.html"))
        .arg("--out-hist")
        .arg(dir.path().join("merged.json"))
        .args(&files);
    let out = output_of(merge);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let merged = json(&out);
    let total = &merged["scenarios"][0]["total"];
    assert_eq!(total["sent"].as_u64(), Some(sent));
    assert_eq!(total["completed"].as_u64(), Some(sent));
    assert_eq!(total["status_counts"]["200"].as_u64(), Some(sent));
    assert_eq!(
        merged["scenarios"][0]["target_rate_per_s"],
        3.0 * RATE as f64
    );
    assert_eq!(merged["thresholds_passed"], true);
    let html = std::fs::read_to_string(dir.path().join("merged.html")).expect("html");
    assert!(html.contains("<html"), "an HTML report");

    // The merged file merges again (a merge of merges), and a stricter
    // scenario file's thresholds judge it: exit 99.
    let stricter = scenario().replace("count >= 400", "count >= 100000");
    std::fs::write(dir.path().join("stricter.yaml"), stricter).expect("stricter");
    let mut again = reliable();
    again
        .args(["load", "merge", "--thresholds"])
        .arg(dir.path().join("stricter.yaml"))
        .arg(dir.path().join("merged.json"));
    let out = output_of(again);
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("count >= 100000"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_hist_to_stdout_is_the_file_and_nothing_else() {
    let (target, seen) = serve().await;
    let mut cmd = reliable();
    cmd.args(["load", "--url", &format!("{target}/r")])
        .args(["--rate", "100", "--duration", "300ms", "--connections", "4"])
        .args(["--out-hist", "-"]);
    let out = output_of(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("agent.json");
    std::fs::write(&path, &out.stdout).expect("write");
    let mut merge = reliable();
    merge.args(["load", "merge", "--json"]).arg(&path);
    let merged = json(&output_of(merge));
    assert_eq!(
        merged["scenarios"][0]["total"]["sent"].as_u64(),
        Some(seen.load(Ordering::SeqCst))
    );
}

#[test]
fn bad_files_and_a_past_start_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let corrupt = dir.path().join("agent-1.json");
    std::fs::write(
        &corrupt,
        "{\"format\": \"reliable-load-hist\", \"version\": 1",
    )
    .expect("w");
    let newer = dir.path().join("agent-2.json");
    std::fs::write(
        &newer,
        "{\"format\": \"reliable-load-hist\", \"version\": 7}",
    )
    .expect("w");
    for (file, expected) in [(&corrupt, "not JSON"), (&newer, "version 7")] {
        let mut cmd = reliable();
        cmd.args(["load", "merge"]).arg(file);
        let out = output_of(cmd);
        assert_eq!(out.status.code(), Some(2));
        let message = stderr(&out);
        assert!(
            message.contains(&file.display().to_string()) && message.contains(expected),
            "{message}"
        );
    }
    let mut past = reliable();
    past.args([
        "load",
        "--url",
        "http://127.0.0.1:9/",
        "--start-at",
        "2020-01-01T00:00:00Z",
    ]);
    let out = output_of(past);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("in the past"), "{}", stderr(&out));
    let mut nonsense = reliable();
    nonsense.args(["load", "--url", "http://127.0.0.1:9/", "--start-at", "soon"]);
    let out = output_of(nonsense);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
}

#[test]
fn plan_prints_the_arithmetic_and_refuses_nonsense() {
    let mut cmd = reliable();
    cmd.args(["load", "plan", "--dau", "1000000"]);
    let out = output_of(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1,000,000 users x 5/day"), "{text}");
    assert!(text.contains("PostgreSQL rows/s"), "{text}");
    // The Scaling Reliable page shows this very output: it must not drift.
    let page = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/operations/scaling.md");
    let page = std::fs::read_to_string(&page).expect("docs/operations/scaling.md");
    assert!(
        page.contains(&format!("$ reliable load plan --dau 1000000\n{text}")),
        "docs/operations/scaling.md no longer shows `reliable load plan --dau 1000000`; paste:\n{text}"
    );
    let mut cmd = reliable();
    cmd.args([
        "load",
        "plan",
        "--dau",
        "1000000",
        "--json",
        "--utilization",
        "0.5",
    ]);
    let plan = json(&output_of(cmd));
    assert_eq!(plan["model"]["utilization"], 0.5);
    assert_eq!(plan["levels"][1]["level"], "peak");
    let mut cmd = reliable();
    cmd.args(["load", "plan", "--dau=-5"]);
    let out = output_of(cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dau"), "{}", stderr(&out));
}
