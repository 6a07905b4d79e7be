//! PostgreSQL writes per link create, per visit and per order, measured
//! by PostgreSQL itself (ignored in the normal suite; run it with
//! `scripts/bench-pg-writes`): the deltas of `pg_stat_user_tables` (rows
//! inserted, updated, deleted per table), `pg_stat_database`
//! (`xact_commit`) and the WAL (`pg_current_wal_lsn()`, `pg_stat_wal`)
//! over a run of N requests through the real binary, divided by N. The
//! capacity page (docs/operations/scaling.md) plans with these figures
//! rather than with rows counted from the SQL, which miss what the SQL
//! does not say: index entries, HOT or not, autovacuum, the commit
//! records, the relay's polls.
//!
//! Each phase is preceded by an idle window of the same length, whose
//! rates (background work: the relay's and the notifier's polls, the
//! shortener's maintenance) are subtracted from the phase's deltas: the
//! `net` figures are what the requests themselves cost.
//!
//! PostgreSQL is private (testkit: `synchronous_commit=on`, `fsync=off`,
//! `full_page_writes=off`, so the WAL has no full-page images; a server
//! with them adds one 8 KiB page image per page first touched after each
//! checkpoint). Counts do not depend on the build, but the visit writer's
//! batches do on timing: the visit phases report their batches.
//!
//! `BENCH_LINKS` (1000), `BENCH_VISITS` (20000), `BENCH_ORDERS` (3000),
//! `BENCH_CONCURRENCY` (16).

mod support;

use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{order_body, reliable, start, Running, SECRET};
use testkit::webhook::Receiver;
use testkit::{NatsServer, PgServer};
use tokio::time::Instant;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What PostgreSQL has written so far: rows per table (partitions
/// summed into their parent), commits, WAL.
#[derive(Clone, Debug, Default)]
struct Writes {
    /// `schema.table` -> (inserted, updated, of them HOT, deleted).
    tables: BTreeMap<String, [i64; 4]>,
    commits: i64,
    rollbacks: i64,
    wal_bytes: i64,
    wal_records: i64,
}

impl Writes {
    async fn read(pool: &PgPool) -> Self {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT s.schemaname || '.' || COALESCE(p.relname, s.relname),
                    sum(s.n_tup_ins)::int8, sum(s.n_tup_upd)::int8,
                    sum(s.n_tup_hot_upd)::int8, sum(s.n_tup_del)::int8
             FROM pg_stat_user_tables s
             LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
             LEFT JOIN pg_class p ON p.oid = i.inhparent
             GROUP BY 1",
        )
        .fetch_all(pool)
        .await
        .expect("pg_stat_user_tables");
        let (commits, rollbacks, wal_bytes, wal_records): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT d.xact_commit, d.xact_rollback,
                    (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8, w.wal_records
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .expect("pg_stat_database");
        Self {
            tables: rows
                .into_iter()
                .map(|(t, i, u, h, d)| (t, [i, u, h, d]))
                .collect(),
            commits,
            rollbacks,
            wal_bytes,
            wal_records,
        }
    }

    /// `self - before`.
    fn since(&self, before: &Self) -> Self {
        let tables = self
            .tables
            .iter()
            .map(|(t, now)| {
                let was = before.tables.get(t).copied().unwrap_or_default();
                (t.clone(), std::array::from_fn(|i| now[i] - was[i]))
            })
            .filter(|(_, d): &(String, [i64; 4])| d.iter().any(|v| *v != 0))
            .collect();
        Self {
            tables,
            commits: self.commits - before.commits,
            rollbacks: self.rollbacks - before.rollbacks,
            wal_bytes: self.wal_bytes - before.wal_bytes,
            wal_records: self.wal_records - before.wal_records,
        }
    }

    fn inserted(&self, table: &str) -> i64 {
        self.tables.get(table).map_or(0, |t| t[0])
    }
}

/// How long a backend may keep its counters before they reach the
/// statistics: PostgreSQL (15) flushes them when a backend goes idle, but
/// at most once a second; one that flushed less than a second ago keeps
/// them for its idle timeout, 10 s.
const STATS_FLUSH: Duration = Duration::from_secs(11);

/// Waits until `done` holds of the writes since `before` (bounded), then
/// [`STATS_FLUSH`] more.
async fn settled(pool: &PgPool, before: &Writes, done: impl Fn(&Writes) -> bool) -> Writes {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = Writes::read(pool).await;
        if done(&now.since(before)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(STATS_FLUSH).await;
    Writes::read(pool).await
}

/// The background's writes over `seconds` with nothing sent, once what
/// came before has reached the statistics.
async fn idle(pool: &PgPool, seconds: f64) -> Writes {
    tokio::time::sleep(STATS_FLUSH).await;
    let before = Writes::read(pool).await;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    Writes::read(pool).await.since(&before)
}

/// A phase: `n` requests sent in `seconds`, and what PostgreSQL wrote
/// over `window` seconds (the requests, the work they left behind, and
/// the settling).
struct Phase {
    n: usize,
    seconds: f64,
    window: f64,
    writes: Writes,
}

/// Prints a phase's table: per unit, raw and net of the idle rate.
fn report(what: &str, phase: &Phase, idle: &Writes, idle_seconds: f64) {
    let (n, seconds, run) = (phase.n as f64, phase.seconds, &phase.writes);
    let scale = phase.window / idle_seconds;
    let net = |run: i64, idle: i64| (run as f64 - idle as f64 * scale) / n;
    println!(
        "\n{what}: {n} in {seconds:.1} s ({:.0}/s), measured over {:.1} s; the idle rate ({idle_seconds:.1} s window) subtracted",
        n / seconds,
        phase.window
    );
    println!("| table | inserted per unit | updated per unit (HOT) | deleted per unit |");
    println!("|---|---:|---:|---:|");
    let mut tables: Vec<&String> = run.tables.keys().chain(idle.tables.keys()).collect();
    tables.sort();
    tables.dedup();
    for t in tables {
        let r = run.tables.get(t).copied().unwrap_or_default();
        let i = idle.tables.get(t).copied().unwrap_or_default();
        println!(
            "| {t} | {:.3} | {:.3} ({:.3}) | {:.3} |",
            net(r[0], i[0]),
            net(r[1], i[1]),
            net(r[2], i[2]),
            net(r[3], i[3])
        );
    }
    let rows: i64 = run.tables.values().map(|t| t[0] + t[1] + t[3]).sum();
    let idle_rows: i64 = idle.tables.values().map(|t| t[0] + t[1] + t[3]).sum();
    println!(
        "rows written per unit: {:.3} | commits per unit: {:.3} (raw {:.3}, idle {:.1}/s) | rollbacks: {} | WAL per unit: {:.0} bytes, {:.2} records (raw {:.0} bytes, idle {:.0} bytes/s)",
        net(rows, idle_rows),
        net(run.commits, idle.commits),
        run.commits as f64 / n,
        idle.commits as f64 / idle_seconds,
        run.rollbacks,
        net(run.wal_bytes, idle.wal_bytes),
        net(run.wal_records, idle.wal_records),
        run.wal_bytes as f64 / n,
        idle.wal_bytes as f64 / idle_seconds,
    );
}

/// Sends `n` requests from `concurrency` workers; `request(i)` makes the
/// i-th. Panics on any failure: a write that failed is not a write.
async fn drive<F, Fut>(n: usize, concurrency: usize, request: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, request) = (next.clone(), request.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                request(i).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
    started.elapsed().as_secs_f64()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn stats_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connect for statistics")
}

fn serve(targets: &str, database_url: &str, data: &std::path::Path) -> std::process::Command {
    let mut cmd = reliable();
    cmd.args(["serve", "--target", targets])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data)
        .env("RELIABLE_DATABASE_URL", database_url)
        .env("RELIABLE_LOG", "error");
    cmd
}

async fn visits(
    pool: &PgPool,
    base: &str,
    slugs: &Arc<Vec<String>>,
    n: usize,
    concurrency: usize,
) -> Phase {
    let before = Writes::read(pool).await;
    let window = Instant::now();
    let http = client();
    let (base, slugs) = (base.to_string(), slugs.clone());
    let seconds = drive(n, concurrency, move |i| {
        let url = format!("{base}/{}", slugs[i % slugs.len()]);
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("redirect");
            assert_eq!(r.status(), 302, "redirect");
        }
    })
    .await;
    let after = settled(pool, &before, |d| {
        d.inserted("shortener.visits") >= n as i64
    })
    .await;
    Phase {
        n,
        seconds,
        window: window.elapsed().as_secs_f64(),
        writes: after.since(&before),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench-pg-writes"]
async fn pg_writes_per_link_create_and_per_visit() {
    let (links, n, concurrency) = (
        env_count("BENCH_LINKS", 1000),
        env_count("BENCH_VISITS", 20_000),
        env_count("BENCH_CONCURRENCY", 16),
    );
    let pg = PgServer::start_durable().expect("PostgreSQL");
    let url = pg.create_database();
    let data = tempfile::tempdir().expect("tempdir");
    let app: Running = start(serve("shortener", &url, data.path()));
    let base = format!("http://{}", app.addr);
    let pool = stats_pool(&url).await;

    // Link creates: the DAU scenario's body (a URL and one tag).
    let idle_create = idle(&pool, 5.0).await;
    let before = Writes::read(&pool).await;
    let window = Instant::now();
    let slugs = Arc::new(std::sync::Mutex::new(Vec::with_capacity(links)));
    let (http, b, s) = (client(), base.clone(), slugs.clone());
    let seconds = drive(links, concurrency, move |i| {
        let (http, b, s) = (http.clone(), b.clone(), s.clone());
        async move {
            let r = http
                .post(format!("{b}/api/v1/links"))
                .json(&serde_json::json!({"url": format!("https://example.com/dau/{i}"), "tags": ["load-shortener-dau"]}))
                .send()
                .await
                .expect("create");
            assert_eq!(r.status(), 201, "create");
            let body: Value = r.json().await.expect("json");
            let slug = body["slug"].as_str().expect("slug").to_string();
            s.lock().expect("lock").push(slug);
        }
    })
    .await;
    let after = settled(&pool, &before, |d| {
        d.inserted("shortener.links") >= links as i64
    })
    .await;
    let phase = Phase {
        n: links,
        seconds,
        window: window.elapsed().as_secs_f64(),
        writes: after.since(&before),
    };
    report("link creates", &phase, &idle_create, 5.0);
    let slugs = Arc::new(slugs.lock().expect("lock").clone());

    // Warm-up: the cache and the pool, then visits spread evenly over
    // every link (the worst case for the count updates), then all on one.
    visits(&pool, &base, &slugs, 2_000, concurrency).await;
    let idle_visits = idle(&pool, 5.0).await;
    let spread = visits(&pool, &base, &slugs, n, concurrency).await;
    report(
        &format!("visits spread over {} links", slugs.len()),
        &spread,
        &idle_visits,
        5.0,
    );
    let hot = Arc::new(vec![slugs[0].clone()]);
    let one = visits(&pool, &base, &hot, n, concurrency).await;
    report("visits to one link", &one, &idle_visits, 5.0);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench-pg-writes"]
async fn pg_writes_per_order() {
    let (n, concurrency) = (
        env_count("BENCH_ORDERS", 3000),
        env_count("BENCH_CONCURRENCY", 16),
    );
    let pg = PgServer::start_durable().expect("PostgreSQL");
    let url = pg.create_database();
    let nats = NatsServer::start();
    let receiver = Arc::new(Receiver::start(SECRET).await);
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = serve("orders,notifier", &url, data.path());
    cmd.env("RELIABLE_NATS_URL", nats.url())
        .env("RELIABLE_NOTIFIER_WEBHOOK_URL", receiver.url())
        .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
        .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true")
        .env("RELIABLE_NOTIFIER_LOG_CHANNEL", "false");
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    let pool = stats_pool(&url).await;

    let create = |n: usize, tag: &'static str| {
        let (http, base) = (client(), base.clone());
        drive(n, concurrency, move |i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let r = http
                    .post(format!("{base}/api/v1/orders"))
                    .header("idempotency-key", format!("{tag}-{i}"))
                    .json(&order_body("bench"))
                    .send()
                    .await
                    .expect("create");
                assert_eq!(r.status(), 201, "create");
            }
        })
    };
    // Warm-up: the pools, the stream, the consumer.
    create(200, "warmup").await;
    receiver
        .wait_until(Duration::from_secs(60), "warm-up deliveries", |r| {
            r.deliveries().len() >= 200
        })
        .await;
    let idle_window = idle(&pool, 5.0).await;
    let before = Writes::read(&pool).await;
    let window = Instant::now();
    let seconds = create(n, "bench").await;
    receiver
        .wait_until(Duration::from_secs(120), "every order notified", |r| {
            r.deliveries().len() >= 200 + n
        })
        .await;
    let after = settled(&pool, &before, |d| d.inserted("orders.orders") >= n as i64).await;
    let phase = Phase {
        n,
        seconds,
        window: window.elapsed().as_secs_f64(),
        writes: after.since(&before),
    };
    report(
        "orders created, published and notified",
        &phase,
        &idle_window,
        5.0,
    );
    drop(app);
}
