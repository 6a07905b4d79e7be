//! NATS JetStream as a cluster: the two drills
//! (`experiments/nats-leader-kill.yaml`, `experiments/nats-rolling-restart.yaml`)
//! run by the built binary (`reliable chaos run ... --json`) against a
//! private three-node cluster, and the NATS bad inputs at start-up.
//!
//! Each drill runs twice, as `tests/experiments.rs` runs the others: with
//! R3 streams (`RELIABLE_NATS_STREAM_REPLICAS=3`) the hypothesis must hold
//! (exit 0); with R1 it must deviate (exit 1), naming the probe. Each run
//! prints its table (requests, failures, lost, duplicated, unavailability
//! window, time to recover), computed from the journal.
//!
//! CI passes short durations and a low rate; `CHAOS_FULL=1` runs the
//! files' own (500 orders/s, a minute of load).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::chaos::{chaos_run, counted_receiver, short, var, Counted, Outcome};
use support::{order_body, reliable, start, Running, SECRET};
use testkit::NatsCluster;

/// `reliable serve --target orders,notifier` on a private PostgreSQL and
/// the three-node cluster, with `replicas` stream replicas.
struct Drill {
    cluster: NatsCluster,
    receiver: Counted,
    app: Running,
    _data: tempfile::TempDir,
}

fn orders_env(cmd: &mut Command, data: &std::path::Path, nats_url: &str, webhook: &str) {
    cmd.args(["serve", "--target", "orders,notifier"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data)
        .env(
            "RELIABLE_DATABASE_URL",
            testkit::postgres().create_database(),
        )
        .env("RELIABLE_NATS_URL", nats_url)
        .env("RELIABLE_NOTIFIER_WEBHOOK_URL", webhook)
        .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
        .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true")
        .env("RELIABLE_NOTIFIER_ACK_WAIT", "5s")
        .env("RELIABLE_NOTIFIER_BACKOFF_BASE", "50ms")
        .env("RELIABLE_NOTIFIER_BACKOFF_MAX", "1s")
        .env("RELIABLE_NOTIFIER_LOG_CHANNEL", "false")
        .env("RELIABLE_ORDERS_RELAY_POLL_INTERVAL", "50ms");
}

impl Drill {
    async fn start(replicas: &str) -> Self {
        let cluster = tokio::task::spawn_blocking(NatsCluster::start)
            .await
            .expect("join");
        let receiver = counted_receiver(SECRET).await;
        let data = tempfile::tempdir().expect("tempdir");
        let mut cmd = reliable();
        orders_env(
            &mut cmd,
            data.path(),
            &cluster.url(),
            receiver.receiver.url(),
        );
        cmd.env("RELIABLE_NATS_STREAM_REPLICAS", replicas)
            .env("RELIABLE_LOG", "error");
        let app = start(cmd);
        Self {
            cluster,
            receiver,
            app,
            _data: data,
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            var("orders", format!("http://{}", self.app.addr)),
            var("receiver_stats", self.receiver.stats_url.clone()),
            var("nats_dir", self.cluster.dir().display().to_string()),
        ];
        for (i, name) in self.cluster.names().iter().enumerate() {
            vars.push(var(
                &format!("nats_monitor_{}", i + 1),
                self.cluster.monitor_url(name),
            ));
        }
        vars
    }
}

/// The drill's table, from the journal: the load's requests and
/// failures, orders lost and duplicated at the receiver, the longest
/// time an acknowledged order waited to be published (the outbox's
/// oldest event, sampled each second), and how long after the fault
/// publishing was back under a second.
fn table(drill: &str, replicas: &str, outcome: &Outcome, faults: &[&str]) -> String {
    let shown = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let requests = outcome.last("requests").map(|(v, _)| v);
    let failures = outcome
        .last("failures")
        .zip(requests)
        .map(|((rate, _), n)| (rate * n).round());
    let lost = outcome
        .last("none-lost")
        .map(|(v, _)| if v < 0.0 { -v } else { 0.0 });
    let duplicated = outcome
        .last("no-duplicate-delivery")
        .zip(outcome.last("one-event-per-order"))
        .map(|((a, _), (b, _))| a + b);
    let delays = outcome.readings("publish-delay");
    let mut window: f64 = 0.0;
    let mut recover: f64 = 0.0;
    let starts: Vec<f64> = faults
        .iter()
        .filter_map(|f| outcome.action_started(f))
        .collect();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(f64::INFINITY);
        let after: Vec<(f64, f64)> = delays
            .iter()
            .copied()
            .filter(|&(t, _)| t >= start && t < end)
            .collect();
        let peak = after.iter().map(|&(_, d)| d).fold(0.0, f64::max);
        window = window.max(peak);
        // Back under a second after the peak (the gauge's resolution).
        let peak_at = after
            .iter()
            .find(|&&(_, d)| d == peak)
            .map_or(start, |&(t, _)| t);
        let back = after
            .iter()
            .find(|&&(t, d)| t >= peak_at && d < 1.0)
            .map(|&(t, _)| t - start);
        match back {
            Some(t) if peak >= 1.0 => recover = recover.max(t),
            Some(_) => {}
            None => recover = f64::INFINITY,
        }
    }
    let recover = if recover.is_finite() {
        format!("{recover:.1} s")
    } else {
        "not within the run".to_string()
    };
    format!(
        "| drill | replicas | exit | requests | failures | lost | duplicated | unavailability window | time to recover |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {drill} | {replicas} | {} | {} | {} | {} | {} | {window:.1} s | {recover} |\n\
         delivered/acknowledged: {}; deviations: {}",
        outcome.code,
        shown(requests),
        shown(failures),
        shown(lost),
        shown(duplicated),
        outcome
            .last("none-lost")
            .map_or_else(|| "-".to_string(), |(_, detail)| detail),
        outcome.deviated_probes().join(", "),
    )
}

// ---- nats-leader-kill --------------------------------------------------------

async fn leader_kill(replicas: &str) -> Outcome {
    let drill = Drill::start(replicas).await;
    let mut vars = short(&[
        ("rate", "50"),
        ("warmup", "2s"),
        ("before_kill", "3s"),
        ("after_kill", "18s"),
        ("load_duration", "23s"),
        ("catch_up", "40s"),
    ]);
    vars.extend(drill.vars());
    let outcome = chaos_run("nats-leader-kill.yaml", vars, Vec::new()).await;
    println!(
        "{}",
        table(
            "nats-leader-kill",
            replicas,
            &outcome,
            &["SIGKILL the stream leader"]
        )
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_and_duplicates_nothing_with_three_replicas() {
    let outcome = leader_kill("3").await;
    assert_eq!(outcome.code, 0, "{}", outcome.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_stalls_with_one_replica() {
    let outcome = leader_kill("1").await;
    assert_eq!(outcome.code, 1, "{}", outcome.summary());
    let probes = outcome.deviated_probes();
    assert!(
        probes
            .iter()
            .any(|p| p == "publish-delay" || p == "none-lost"),
        "{}",
        outcome.summary()
    );
}

// ---- nats-rolling-restart ------------------------------------------------------

async fn rolling_restart(replicas: &str) -> Outcome {
    let drill = Drill::start(replicas).await;
    let mut vars = short(&[
        ("rate", "50"),
        ("warmup", "2s"),
        ("before_restart", "2s"),
        ("down_for", "6s"),
        ("load_duration", "30s"),
        ("catch_up", "40s"),
    ]);
    vars.extend(drill.vars());
    vars.push(var(
        "nats_server",
        std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()),
    ));
    let outcome = chaos_run("nats-rolling-restart.yaml", vars, Vec::new()).await;
    println!(
        "{}",
        table(
            "nats-rolling-restart",
            replicas,
            &outcome,
            &["stop n1", "stop n2", "stop n3"]
        )
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_loses_and_duplicates_nothing_with_three_replicas() {
    let outcome = rolling_restart("3").await;
    assert_eq!(outcome.code, 0, "{}", outcome.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_stalls_with_one_replica() {
    let outcome = rolling_restart("1").await;
    assert_eq!(outcome.code, 1, "{}", outcome.summary());
    assert!(
        outcome
            .deviated_probes()
            .contains(&"publish-delay".to_string()),
        "{}",
        outcome.summary()
    );
}

// ---- bad input -----------------------------------------------------------------

/// Starts `cmd` and returns it with every stdout line it printed up to
/// and including `listening on ...` (the start-up logs).
fn start_with_startup_logs(mut cmd: Command) -> (std::process::Child, String, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reliable");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    let addr = loop {
        let line = reader
            .next()
            .expect("reliable printed no `listening on` line")
            .expect("read");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.to_string();
        }
        lines.push(line);
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || reader.for_each(drop));
    (child, addr, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nats_server_down_at_start_is_a_clear_error_and_orders_wait_in_the_outbox() {
    let nats = testkit::NatsServer::start();
    nats.stop();
    let down = nats.url().replace("nats://", "nats://app:s3cret@");
    let never = format!("nats://127.0.0.1:{}", testkit::free_port());
    let receiver = counted_receiver(SECRET).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = reliable();
    orders_env(
        &mut cmd,
        data.path(),
        &format!("{down},{never}"),
        receiver.receiver.url(),
    );
    cmd.env("RELIABLE_LOG", "warn");
    let (mut child, addr, logs) = start_with_startup_logs(cmd);
    let logs = logs.join("\n");
    let port = |url: &str| url.rsplit(':').next().unwrap_or_default().to_string();
    assert!(
        logs.contains("none of the 2 NATS servers in the list answers")
            && logs.contains(&format!("127.0.0.1:{}", port(&down)))
            && logs.contains(&format!("127.0.0.1:{}", port(&never))),
        "{logs}"
    );
    assert!(!logs.contains("s3cret"), "the password was logged: {logs}");

    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{addr}/api/v1/orders"))
        .header("idempotency-key", "down-at-start-1")
        .json(&order_body("c-1"))
        .send()
        .await
        .expect("create order");
    assert_eq!(created.status(), 201, "orders are accepted without NATS");
    let order: serde_json::Value = created.json().await.expect("json");

    nats.start_again().expect("start NATS");
    receiver
        .receiver
        .wait_until(Duration::from_secs(60), "the order's notification", |r| {
            r.deliveries().iter().any(|d| {
                d.event_type == "orders.created"
                    && serde_json::from_slice::<serde_json::Value>(&d.body)
                        .is_ok_and(|b| b["order"]["id"] == order["id"])
            })
        })
        .await;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn three_replicas_on_a_single_server_is_a_clear_error_naming_the_cluster_size() {
    let nats = testkit::NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = reliable();
    orders_env(
        &mut cmd,
        data.path(),
        &nats.url(),
        "http://127.0.0.1:9/hook",
    );
    cmd.env("RELIABLE_NATS_STREAM_REPLICAS", "3");
    let (code, stderr) = support::run_to_end(cmd);
    assert_ne!(code, 0, "{stderr}");
    for expected in [
        "RELIABLE_NATS_STREAM_REPLICAS=3",
        "single NATS server",
        "cluster size 1",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in: {stderr}");
    }
}

#[test]
fn replicas_outside_one_to_five_are_refused_by_name() {
    let data = tempfile::tempdir().expect("tempdir");
    for bad in ["0", "7"] {
        let mut cmd = reliable();
        orders_env(
            &mut cmd,
            data.path(),
            "nats://127.0.0.1:4222",
            "http://127.0.0.1:9/hook",
        );
        cmd.env("RELIABLE_NATS_STREAM_REPLICAS", bad);
        let (code, stderr) = support::run_to_end(cmd);
        assert_ne!(code, 0, "{stderr}");
        assert!(
            stderr.contains("nats_stream_replicas") && stderr.contains("1 to 5"),
            "{stderr}"
        );
    }
}
