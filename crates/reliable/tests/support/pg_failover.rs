//! The environment of `experiments/pg-failover.yaml`, its run by the built
//! binary (`reliable chaos run ... --json`), and the drill's table.
//!
//! Built here: a primary and a streaming standby (`testkit::PgCluster`),
//! the standby streaming through the fault proxy `replication`, the `-rw`
//! endpoint as the fault proxy `rw` (both `chaos::proxy::ProxyServer`, what
//! `reliable chaos proxy` serves, driven over its HTTP API as the
//! experiment drives it), NATS, a webhook receiver and a stats endpoint
//! serving their counts, and `reliable serve --target
//! shortener,orders,notifier` on `-rw` with its read URL on the standby.
//!
//! The write unavailability is measured here, not by the experiment: a
//! link is created every 20 ms for the whole run; the window is the
//! longest time between two acknowledged writes' answers with a failed
//! one in between.

use crate::pg_report::{recovery, report_of, Report, WriteProber, TABLE_HEADER};
use crate::support::{reliable, start, Running, SECRET};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use testkit::PgCluster;

const DATABASE: &str = "drill";
/// Links the redirect load spreads over (`pg-1` .. `pg-50`).
const LINKS: usize = 50;

/// One run of the drill.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `synchronous_standby_names` names the standby (the mechanism).
    pub synchronous: bool,
    /// The replication link stalls before the kill.
    pub stall: bool,
}

/// Full durations (the file's) instead of CI's seconds.
pub fn full() -> bool {
    std::env::var_os("CHAOS_FULL").is_some_and(|v| v != "0")
}

/// Builds the environment, runs the drill, measures, tears down.
pub async fn run(options: Options) -> Report {
    let replication_port = testkit::free_port();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(move || PgCluster::start_via(replication_port))
            .await
            .expect("join")
            .expect("start the primary and the standby"),
    );
    let proxy = chaos::proxy::ProxyServer::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start the fault proxy");
    let api = proxy.url();
    let http = reqwest::Client::new();
    let primary = format!("127.0.0.1:{}", cluster.primary_port());
    create_proxy(
        &http,
        &api,
        "replication",
        &format!("127.0.0.1:{replication_port}"),
        &primary,
    )
    .await;
    let rw_listen = format!("127.0.0.1:{}", testkit::free_port());
    create_proxy(&http, &api, "rw", &rw_listen, &primary).await;
    let rw_port: u16 = rw_listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("rw port");
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            cluster.wait_streaming()?;
            cluster.set_synchronous(options.synchronous)?;
            cluster.create_database(DATABASE)
        })
        .await
        .expect("join")
        .expect("replication and the drill's database");
    }

    let nats = testkit::NatsServer::start();
    let counted = crate::support::chaos::counted_receiver(SECRET).await;
    let receiver = counted.receiver.clone();
    let (cluster_stats, cluster_server) = serve_json(
        Router::new()
            .route("/stats", get(orders_in_database))
            .with_state((cluster.clone(), rw_port)),
    )
    .await;

    let data = tempfile::tempdir().expect("tempdir");
    let port = testkit::free_port();
    let target = format!("http://127.0.0.1:{port}");
    let app = start_platform(
        port,
        data.path(),
        &PgCluster::url(rw_port, DATABASE),
        &PgCluster::url(cluster.standby_port(), DATABASE),
        &nats.url(),
        receiver.url(),
    );
    create_links(&http, &target).await;
    wait_ready(&http, &target).await;
    let pidfile = data.path().join("primary.pid");
    std::fs::write(
        &pidfile,
        cluster.primary_pid().expect("primary pid").to_string(),
    )
    .expect("pidfile");

    let prober = WriteProber::start(target.clone());
    let mut vars = vec![
        ("target", target.clone()),
        ("proxy_api", api.clone()),
        ("receiver_stats", counted.stats_url.clone()),
        ("cluster_stats", format!("{cluster_stats}/stats")),
        ("pidfile", pidfile.display().to_string()),
        (
            "standby_url",
            PgCluster::url(cluster.standby_port(), "postgres"),
        ),
        (
            "new_primary",
            format!("127.0.0.1:{}", cluster.standby_port()),
        ),
        (
            "stall_toxicity",
            if options.stall { "1" } else { "0" }.to_string(),
        ),
    ];
    if !full() {
        for (k, v) in [
            ("rate", "50"),
            ("warmup", "2s"),
            ("before_fault", "3s"),
            ("stall", "2s"),
            ("load_duration", "12s"),
        ] {
            vars.push((k, v.to_string()));
        }
        // Notifications catch up within seconds; a run that lost orders
        // never holds, so it need not wait long to say so.
        let catch_up = if options.synchronous { "30s" } else { "10s" };
        vars.push(("catch_up", catch_up.to_string()));
    }
    let vars = vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let outcome = crate::support::chaos::chaos_run("pg-failover.yaml", vars, Vec::new()).await;
    let (code, journal, stderr) = (outcome.code, outcome.journal, outcome.stderr);
    let writes = prober.stop().await;
    drop(app);
    let mut report = report_of(code, journal, stderr, &writes);
    report.recovered_ms = recovery(&report.journal, &writes);
    println!("{TABLE_HEADER}\n{}", report.row(options));
    drop(nats);
    // The stats server holds the cluster: stop it, then the servers stop.
    drop(cluster_server);
    drop(cluster);
    report
}

async fn create_proxy(http: &reqwest::Client, api: &str, name: &str, listen: &str, upstream: &str) {
    let response = http
        .post(format!("{api}/proxies"))
        .json(&json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true}))
        .send()
        .await
        .expect("create proxy");
    assert!(
        response.status().is_success(),
        "create proxy {name}: {}",
        response.status()
    );
}

/// Serves `app` on a free port until the handle is dropped; returns its
/// base URL.
async fn serve_json(app: Router) -> (String, tokio_util::task::AbortOnDropHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stats");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (
        format!("http://{addr}"),
        tokio_util::task::AbortOnDropHandle::new(task),
    )
}

/// `orders_in_db`: the orders in the database behind `-rw` (the new
/// primary after the failover).
async fn orders_in_database(
    State((cluster, rw_port)): State<(Arc<PgCluster>, u16)>,
) -> Result<Json<Value>, String> {
    let counted = tokio::task::spawn_blocking(move || {
        cluster.sql(rw_port, DATABASE, "SELECT count(*) FROM orders.orders")
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let n: u64 = counted
        .parse()
        .map_err(|_| format!("not a count: {counted}"))?;
    Ok(Json(json!({"orders_in_db": n})))
}

fn start_platform(
    port: u16,
    data: &Path,
    database_url: &str,
    read_url: &str,
    nats_url: &str,
    webhook_url: &str,
) -> Running {
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "shortener,orders,notifier"]);
    for (k, v) in [
        ("RELIABLE_LISTEN", format!("127.0.0.1:{port}")),
        ("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0".to_string()),
        ("RELIABLE_DATA_DIR", data.display().to_string()),
        ("RELIABLE_DATABASE_URL", database_url.to_string()),
        ("RELIABLE_DATABASE_READ_URL", read_url.to_string()),
        ("RELIABLE_NATS_URL", nats_url.to_string()),
        ("RELIABLE_NOTIFIER_WEBHOOK_URL", webhook_url.to_string()),
        ("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET.to_string()),
        ("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true".to_string()),
        ("RELIABLE_NOTIFIER_ACK_WAIT", "2s".to_string()),
        ("RELIABLE_NOTIFIER_BACKOFF_BASE", "50ms".to_string()),
        ("RELIABLE_NOTIFIER_BACKOFF_MAX", "1s".to_string()),
        ("RELIABLE_NOTIFIER_LOG_CHANNEL", "false".to_string()),
        ("RELIABLE_ORDERS_RELAY_POLL_INTERVAL", "50ms".to_string()),
        // Fail fast (503) rather than queue for a dead primary.
        ("RELIABLE_ORDERS_DATABASE_ACQUIRE_TIMEOUT", "1s".to_string()),
        (
            "RELIABLE_SHORTENER_DATABASE_ACQUIRE_TIMEOUT",
            "1s".to_string(),
        ),
        ("RELIABLE_LOG", "error".to_string()),
    ] {
        cmd.env(k, v);
    }
    start(cmd)
}

/// The experiment's before-check wants a ready platform: wait for it
/// (bounded), naming the failing check if it never comes.
async fn wait_ready(http: &reqwest::Client, target: &str) {
    let mut last = String::new();
    let ready = testkit::eventually("the platform ready", Duration::from_secs(60), async || {
        let response = http.get(format!("{target}/readyz")).send().await.ok()?;
        let ok = response.status().is_success();
        last = response.text().await.unwrap_or_default();
        Some(ok).filter(|ok| *ok)
    })
    .await;
    assert!(ready, "not ready: {last}");
}

async fn create_links(http: &reqwest::Client, target: &str) {
    for i in 1..=LINKS {
        let created = http
            .post(format!("{target}/api/v1/links"))
            .json(&json!({"url": format!("https://example.com/{i}"), "slug": format!("pg-{i}")}))
            .send()
            .await
            .expect("create link");
        assert_eq!(created.status(), 201, "link pg-{i}");
    }
}
