//! The orders benchmark (ignored in the normal suite; run it with
//! `scripts/bench-orders`): `reliable serve --target orders,notifier` on a
//! private PostgreSQL and NATS JetStream, orders created at a fixed rate
//! (open model: latency counts from each order's scheduled start, so
//! queueing is not hidden), every order's `orders.created` delivered to a
//! webhook receiver on loopback. Reports order-create p50/p99 and
//! commit-to-delivered p50/p99 (the event's `occurred_at`, taken in the
//! creating transaction, to the receiver's arrival time).
//!
//! `BENCH_RATES` (default `500,1000,1500,2000`), `BENCH_SECONDS` (default
//! 10), `BENCH_RUNS` (default 3) set the schedule. `BENCH_NATS_NODES=3`
//! runs a three-node JetStream cluster with R3 streams (the NATS drills'
//! setup) instead of one server; `BENCH_SYNCHRONOUS_COMMIT=off` runs
//! PostgreSQL as the drills do (the suite's server) instead of durably.
//!
//! Each run also says where the CPU went, per order, from /proc: the
//! platform, PostgreSQL, the NATS servers, this process (the load and the
//! webhook receiver), and the rest of the machine (other work sharing its
//! cores), so a rate that is not reached can be told apart from a limit
//! of the code.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::process_cpu::{cpu_seconds, pid_in, pids_of, postgres_cpu};
use support::{order_body, reliable, start, SECRET};
use testkit::webhook::Receiver;
use testkit::{NatsCluster, NatsServer, PgServer};
use tokio::time::Instant;

/// The processes a run's CPU is split over.
struct Processes {
    app: u32,
    postgres_backend: u32,
    nats: Vec<u32>,
}

/// CPU seconds so far: platform, PostgreSQL, NATS, this process, and the
/// whole machine's busy time (every core).
#[derive(Clone, Copy, Default)]
struct Cpu {
    app: f64,
    postgres: f64,
    nats: f64,
    load: f64,
    machine: f64,
}

impl Cpu {
    fn read(p: &Processes) -> Self {
        Self {
            app: cpu_seconds(p.app, false),
            postgres: postgres_cpu(p.postgres_backend),
            nats: p.nats.iter().map(|&pid| cpu_seconds(pid, false)).sum(),
            load: cpu_seconds(std::process::id(), false),
            machine: machine_busy(),
        }
    }

    fn since(&self, b: &Self) -> Self {
        Self {
            app: self.app - b.app,
            postgres: self.postgres - b.postgres,
            nats: self.nats - b.nats,
            load: self.load - b.load,
            machine: self.machine - b.machine,
        }
    }
}

/// Busy CPU seconds of the machine (all cores): /proc/stat's first line
/// less idle and iowait.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Outcome {
    rate: u64,
    achieved: f64,
    errors: usize,
    create_p50: f64,
    create_p99: f64,
    e2e_p50: f64,
    e2e_p99: f64,
    delivered: usize,
    created: usize,
    /// CPU from the first order until the last was delivered.
    cpu: Cpu,
    window: f64,
}

async fn run_once(
    base: &str,
    receiver: &Receiver,
    processes: &Processes,
    rate: u64,
    seconds: u64,
    tag: &str,
) -> Outcome {
    let cpu_before = Cpu::read(processes);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let total = rate * seconds;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let ids = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(Mutex::new(0usize));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let (http, base, latencies, ids, errors) = (
            http.clone(),
            base.to_string(),
            latencies.clone(),
            ids.clone(),
            errors.clone(),
        );
        let key = format!("{tag}-{i}");
        tasks.spawn(async move {
            let sent = http
                .post(format!("{base}/api/v1/orders"))
                .header("idempotency-key", key)
                .json(&order_body("bench"))
                .send()
                .await;
            let elapsed = scheduled.elapsed().as_secs_f64();
            match sent {
                Ok(r) if r.status() == 201 => {
                    let body: Value = r.json().await.unwrap_or_default();
                    latencies.lock().expect("lock").push(elapsed);
                    if let Some(id) = body["id"].as_str() {
                        ids.lock().expect("lock").push(id.to_string());
                    }
                }
                _ => *errors.lock().expect("lock") += 1,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let ids: Vec<String> = ids.lock().expect("lock").clone();
    // Wait (bounded) for the deliveries of this run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_order = loop {
        let mut by_order: HashMap<String, f64> = HashMap::new();
        for d in receiver.deliveries() {
            let Ok(body) = serde_json::from_slice::<Value>(&d.body) else {
                continue;
            };
            let (Some(id), Some(at)) = (body["order"]["id"].as_str(), body["occurred_at"].as_str())
            else {
                continue;
            };
            let Ok(at) = DateTime::parse_from_rfc3339(at) else {
                continue;
            };
            let received: DateTime<Utc> = d.received_at.into();
            let e2e = (received - at.with_timezone(&Utc))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1e6;
            by_order.entry(id.to_string()).or_insert(e2e);
        }
        if ids.iter().all(|id| by_order.contains_key(id)) || Instant::now() > deadline {
            break by_order;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu = Cpu::read(processes).since(&cpu_before);
    let window = start.elapsed().as_secs_f64();
    let mut create: Vec<f64> = latencies.lock().expect("lock").clone();
    create.sort_by(f64::total_cmp);
    let mut e2e: Vec<f64> = ids
        .iter()
        .filter_map(|id| by_order.get(id).copied())
        .collect();
    e2e.sort_by(f64::total_cmp);
    let errors = *errors.lock().expect("lock");
    Outcome {
        rate,
        achieved,
        errors,
        create_p50: percentile(&create, 50.0),
        create_p99: percentile(&create, 99.0),
        e2e_p50: percentile(&e2e, 50.0),
        e2e_p99: percentile(&e2e, 99.0),
        delivered: e2e.len(),
        created: ids.len(),
        cpu,
        window,
    }
}

/// Where the CPU went, per order, in ms; and how busy the machine's cores
/// were over the run.
fn cpu_line(o: &Outcome) -> String {
    let per = |s: f64| s * 1e3 / o.created.max(1) as f64;
    let c = &o.cpu;
    let ours = c.app + c.postgres + c.nats + c.load;
    format!(
        "CPU per order: platform {:.2} ms, PostgreSQL {:.2} ms, NATS {:.2} ms, load+receiver {:.2} ms, total {:.2} ms; \
         cores busy {:.2} of {} (ours {:.2}, other processes {:.2})",
        per(c.app),
        per(c.postgres),
        per(c.nats),
        per(c.load),
        per(ours),
        c.machine / o.window,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ours / o.window,
        (c.machine - ours).max(0.0) / o.window,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench-orders"]
async fn orders_benchmark() {
    let rates = env_list("BENCH_RATES", "500,1000,1500,2000");
    let seconds = env_list("BENCH_SECONDS", "10")
        .first()
        .copied()
        .unwrap_or(10);
    let runs = env_list("BENCH_RUNS", "3").first().copied().unwrap_or(3);
    let nodes = env_list("BENCH_NATS_NODES", "1")
        .first()
        .copied()
        .unwrap_or(1);
    let pg = if std::env::var("BENCH_SYNCHRONOUS_COMMIT").as_deref() == Ok("off") {
        PgServer::start().expect("PostgreSQL")
    } else {
        PgServer::start_durable().expect("PostgreSQL")
    };
    let database_url = pg.create_database();
    // One server, or the drills' three-node cluster with R3 streams.
    let (single, cluster) = if nodes > 1 {
        let cluster = NatsCluster::try_start(nodes as usize).expect("NATS cluster");
        (None, Some(cluster))
    } else {
        (Some(NatsServer::start()), None)
    };
    let (nats_url, nats_pids) = match (&single, &cluster) {
        (Some(s), _) => {
            let url = s.url();
            let port = url.rsplit(':').next().unwrap_or_default().to_string();
            (url, pids_of("nats-server", &format!(" -p {port} ")))
        }
        (_, Some(c)) => (
            c.url(),
            c.names()
                .iter()
                .filter_map(|n| pid_in(&c.pid_file(n)))
                .collect(),
        ),
        _ => unreachable!("one of the two is started"),
    };
    let receiver = Receiver::start(SECRET).await;
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "orders,notifier"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", &database_url)
        .env("RELIABLE_NATS_URL", &nats_url)
        .env("RELIABLE_NATS_STREAM_REPLICAS", nodes.min(3).to_string())
        .env("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url())
        .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
        .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true")
        .env("RELIABLE_NOTIFIER_LOG_CHANNEL", "false")
        .env("RELIABLE_LOG", "error");
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let stats = sqlx::PgPool::connect(&database_url).await.expect("connect");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&stats)
        .await
        .expect("backend pid");
    let processes = Processes {
        app: app.child.id(),
        postgres_backend: backend as u32,
        nats: nats_pids,
    };
    println!(
        "NATS: {nodes} node(s), {} process(es) found; PostgreSQL synchronous_commit={}",
        processes.nats.len(),
        std::env::var("BENCH_SYNCHRONOUS_COMMIT").unwrap_or_else(|_| "on".into())
    );
    // Warm-up: connections, prepared statements, consumer.
    run_once(&base, &receiver, &processes, 100, 2, "warmup").await;
    println!("| target rate /s | achieved /s | errors | create p50 | create p99 | commit-to-delivered p50 | p99 | delivered/created |");
    println!("|---|---|---|---|---|---|---|---|");
    for rate in rates {
        let mut outcomes = Vec::new();
        for run in 0..runs {
            let o = run_once(
                &base,
                &receiver,
                &processes,
                rate,
                seconds,
                &format!("r{rate}-{run}"),
            )
            .await;
            println!(
                "run rate={rate} #{run}: achieved={:.0}/s errors={} create p50={:.2}ms p99={:.2}ms e2e p50={:.2}ms p99={:.2}ms delivered={}/{}",
                o.achieved, o.errors, o.create_p50 * 1e3, o.create_p99 * 1e3, o.e2e_p50 * 1e3, o.e2e_p99 * 1e3, o.delivered, o.created
            );
            println!("  {}", cpu_line(&o));
            outcomes.push(o);
        }
        let median = |f: fn(&Outcome) -> f64| {
            let mut v: Vec<f64> = outcomes.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {}/{} |",
            outcomes[0].rate,
            median(|o| o.achieved),
            outcomes.iter().map(|o| o.errors).sum::<usize>(),
            median(|o| o.create_p50) * 1e3,
            median(|o| o.create_p99) * 1e3,
            median(|o| o.e2e_p50) * 1e3,
            median(|o| o.e2e_p99) * 1e3,
            outcomes.iter().map(|o| o.delivered).sum::<usize>(),
            outcomes.iter().map(|o| o.created).sum::<usize>(),
        );
    }
    drop(app);
}
