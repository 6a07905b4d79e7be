//! The Redis failover drills (`experiments/redis-cluster-master-kill.yaml`,
//! `experiments/redis-sentinel-failover.yaml`), run by the built binary
//! (`reliable chaos run ... --json`) against real deployments started
//! here: a 3-master Redis Cluster with 3 replicas in front of three
//! gateways behind one round-robin endpoint, and a master, replica and 3
//! sentinels in front of one gateway.
//!
//! Each drill runs twice: with the mechanism on the hypothesis must hold
//! (exit 0); with it off (fail closed; a standalone URL at the old master)
//! it must deviate (exit 1) naming the probe. Alongside the run, this
//! harness watches the gateways' `ratelimit_degraded` gauges and the
//! deployment's promotion, and prints the drill's table: requests,
//! failures, lost, the window without global limiting, and the time from
//! the promotion to global limiting again.
//!
//! CI passes durations of seconds; `CHAOS_FULL=1` runs the files' own.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::balancer::Balancer;
use support::chaos::{chaos_run, short, var, Outcome};
use support::failover_watch::{Timeline, Watch};
use support::limit_meter::LimitMeter;
use support::{start, Running};
use testkit::redis::{cli, info_field, RedisCluster, RedisSentinels};

/// `reliable serve --target gateway,shortener` on `redis_url`.
fn gateway(
    database_url: &str,
    redis_url: &str,
    rate: &str,
    when_down: &str,
) -> (Running, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = support::serve("gateway,shortener", data.path());
    cmd.env("RELIABLE_DATABASE_URL", database_url)
        .env("RELIABLE_REDIS_URL", redis_url)
        .env("RELIABLE_GATEWAY_ANON_RATE", rate)
        .env("RELIABLE_GATEWAY_RATE_LIMIT_WHEN_DOWN", when_down)
        .env("RELIABLE_LOG", "error");
    // This host shares two cores with everything else: a Redis answer
    // slower than the 50 ms default must not be taken for an outage (each
    // one is a decision by one gateway alone, over the limit). The drills
    // are about failover; a dead master's connections fail at once.
    cmd.env("RELIABLE_GATEWAY_RATE_LIMIT_TIMEOUT", "1s");
    (start(cmd), data)
}

async fn create_link(app: &Running) {
    let created = reqwest::Client::new()
        .post(format!("http://{}/api/v1/links", app.addr))
        .json(&json!({"url": "https://example.com/chaos", "slug": "chaos"}))
        .send()
        .await
        .expect("create link");
    assert_eq!(created.status(), 201);
}

/// Prints the drill's table from the journal and the timeline.
fn table(drill: &str, outcome: &Outcome, timeline: &Timeline) {
    let requests = outcome
        .last("requests")
        .map_or("-".to_string(), |(r, _)| format!("{r}"));
    let failed = outcome
        .last("no-failed-requests")
        .map(|(value, _)| value)
        .unwrap_or(0.0);
    let failures = if failed == 0.0 {
        "0".to_string()
    } else {
        format!("{:.1}% of requests", failed * 100.0)
    };
    // Requests never answered are among the failures.
    let lost = if failed == 0.0 { "0" } else { "<= failures" };
    let window = match (timeline.first_degraded, timeline.last_recovered) {
        (Some(a), Some(b)) if b >= a => format!("{:.1} s", (b - a) as f64 / 1000.0),
        (Some(_), None) => "not recovered".to_string(),
        _ => "none seen".to_string(),
    };
    let recover = match (timeline.promoted, timeline.last_recovered) {
        (Some(p), Some(r)) if r >= p => format!("{:.1} s", (r - p) as f64 / 1000.0),
        (Some(_), Some(_)) => "before the promotion was seen".to_string(),
        _ => "-".to_string(),
    };
    println!(
        "drill {drill}: exit {}\n\
         | requests | failures | lost | global limiting unavailable | promotion to global again |\n\
         |---|---|---|---|---|\n\
         | {requests} | {failures} | {lost} | {window} | {recover} |",
        outcome.code
    );
    let limit = (
        outcome
            .readings("global-limit")
            .first()
            .map(|(_, value)| *value),
        outcome.last("global-limit").map(|(value, _)| value),
    );
    if let (0, (Some(before), Some(after))) = (outcome.code, limit) {
        println!("admitted by all gateways: {before:.1}/s before the kill, {after:.1}/s after");
    }
}

// ---- Redis Cluster: a master SIGKILLed under load ---------------------------

async fn cluster_master_kill(when_down: &str) -> (Outcome, Timeline) {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .expect("cluster"),
    );
    let database_url = testkit::postgres().create_database();
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(gateway(
            &database_url,
            &cluster.url(),
            "100/s,burst=20",
            when_down,
        ));
    }
    create_link(&gateways[0].0).await;
    let balancer = Balancer::start(gateways.iter().map(|(g, _)| g.addr.clone()).collect()).await;
    let meter = LimitMeter::start(
        gateways
            .iter()
            .map(|(g, _)| format!("http://{}/metrics", g.addr))
            .collect(),
    )
    .await;
    // The anonymous limit's key for a client on 127.0.0.1, and its master.
    let slot = cluster.slot_of("reliable:rl:{ip:127.0.0.1}").expect("slot");
    let master = cluster.master_of(slot).expect("master");
    let metrics: Vec<String> = gateways
        .iter()
        .map(|(g, _)| format!("http://{}/metrics", g.addr))
        .collect();
    let mut vars = short(&[
        ("warmup", "4s"),
        ("before_kill", "4s"),
        ("promotion", "4s"),
        ("recover_within", "6s"),
    ]);
    vars.push(var("gateway", format!("http://{}", balancer.addr)));
    vars.push(var("metrics", metrics[0].clone()));
    vars.push(var("limit_meter", meter.url.clone()));
    vars.push(var(
        "master_pidfile",
        cluster.pid_file(master).display().to_string(),
    ));
    let watched = cluster.clone();
    let watch = Watch::start(metrics, move || {
        watched.master_of(slot).is_ok_and(|m| m != master)
    });
    let outcome = chaos_run("redis-cluster-master-kill.yaml", vars, Vec::new()).await;
    let timeline = watch.finish().await;
    table("redis-cluster-master-kill", &outcome, &timeline);
    drop(gateways);
    (outcome, timeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_master_kill_holds_when_the_gateway_fails_open() {
    let (outcome, timeline) = cluster_master_kill("open").await;
    assert_eq!(outcome.code, 0, "{}", outcome.summary());
    assert!(
        timeline.promoted.is_some(),
        "the replica was promoted: {timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_master_kill_deviates_when_the_gateway_fails_closed() {
    let (outcome, _) = cluster_master_kill("closed").await;
    assert_eq!(outcome.code, 1, "{}", outcome.summary());
    assert!(
        outcome
            .deviated_probes()
            .contains(&"no-failed-requests".to_string()),
        "{}",
        outcome.summary()
    );
}

// ---- Sentinel: the master SIGKILLed ---------------------------------------

/// `follow`: the gateway's URL is the sentinel URL; otherwise a
/// standalone URL at the first master, which cannot follow.
async fn sentinel_failover(follow: bool) -> (Outcome, Timeline, u64) {
    let sentinels = Arc::new(
        tokio::task::spawn_blocking(RedisSentinels::start)
            .await
            .expect("sentinels"),
    );
    let url = if follow {
        sentinels.url()
    } else {
        format!("redis://127.0.0.1:{}/", sentinels.port(0))
    };
    let database_url = testkit::postgres().create_database();
    let (app, _data) = gateway(&database_url, &url, "100000/min,burst=10000", "open");
    create_link(&app).await;
    let metrics = format!("http://{}/metrics", app.addr);
    let mut vars = short(&[
        ("warmup", "2s"),
        ("before_kill", "3s"),
        ("failover", "8s"),
        ("after_flush", "2s"),
        ("recover_within", "6s"),
    ]);
    vars.push(var("gateway", format!("http://{}", app.addr)));
    vars.push(var("metrics", metrics.clone()));
    vars.push(var(
        "master_pidfile",
        sentinels.pid_file(0).display().to_string(),
    ));
    vars.push(var("replica_port", sentinels.port(1).to_string()));
    let watched = sentinels.clone();
    let old = sentinels.port(0);
    let watch = Watch::start(vec![metrics], move || {
        watched.master_port().is_ok_and(|p| p != old)
    });
    let outcome = chaos_run("redis-sentinel-failover.yaml", vars, Vec::new()).await;
    let timeline = watch.finish().await;
    table("redis-sentinel-failover", &outcome, &timeline);
    // NOSCRIPT answers the new master gave after its cache was flushed.
    let stats = cli(sentinels.port(1), &["info", "errorstats"]).unwrap_or_default();
    let noscript = info_field(&stats, "errorstat_NOSCRIPT")
        .and_then(|v| v.strip_prefix("count=").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    println!("NOSCRIPT answers from the new master: {noscript}");
    drop(app);
    (outcome, timeline, noscript)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_failover_holds_when_the_url_names_the_sentinels() {
    let (outcome, timeline, noscript) = sentinel_failover(true).await;
    assert_eq!(outcome.code, 0, "{}", outcome.summary());
    assert!(
        timeline.promoted.is_some(),
        "the replica was promoted: {timeline:?}"
    );
    assert!(
        noscript >= 1,
        "the flushed scripts were met with NOSCRIPT and reloaded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_failover_deviates_with_a_standalone_url_at_the_old_master() {
    let (outcome, _, _) = sentinel_failover(false).await;
    assert_eq!(outcome.code, 1, "{}", outcome.summary());
    assert!(
        outcome
            .deviated_probes()
            .contains(&"limiter-global".to_string()),
        "{}",
        outcome.summary()
    );
}

// ---- bad input: the URL's mode against the server's -----------------------

/// A process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `reliable serve --target gateway` with `redis_url` until it
/// exits (bounded); returns its exit code and stderr.
async fn serve_until_exit(redis_url: String) -> (i32, String) {
    let data = tempfile::tempdir().expect("tempdir");
    let stderr_path = data.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut cmd = support::serve("gateway", data.path());
    cmd.env("RELIABLE_REDIS_URL", redis_url)
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    let mut child = Killed(cmd.spawn().expect("spawn reliable"));
    let status = testkit::eventually(
        "reliable to refuse to start",
        Duration::from_secs(60),
        async || child.0.try_wait().expect("wait"),
    )
    .await;
    let text = std::fs::read_to_string(&stderr_path).expect("read stderr");
    (status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_mode_mismatch_stops_the_start_naming_both_modes() {
    let redis = testkit::redis::RedisServer::start();
    let (code, stderr) =
        serve_until_exit(format!("redis+cluster://127.0.0.1:{}", redis.port())).await;
    assert_ne!(code, 0, "{stderr}");
    let expected = format!(
        "RELIABLE_REDIS_URL is a cluster URL (redis+cluster://) but 127.0.0.1:{} has cluster_enabled:0",
        redis.port()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let (code, stderr) = serve_until_exit("redis+sentinel://127.0.0.1:26379".into()).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("RELIABLE_REDIS_URL is a sentinel URL without a master name"),
        "{stderr}"
    );
}
