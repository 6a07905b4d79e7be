//! Fault tests on real servers: `reliable serve --target orders,notifier`
//! on a private PostgreSQL and a private NATS JetStream, 1,000 orders
//! created by 8 clients that retry (same Idempotency-Key) until they get a
//! 201, and in the middle: (a) NATS is killed and restarted, (b) PostgreSQL
//! is stopped abruptly and restarted, (c) the reliable process is killed
//! with SIGKILL and started again. Afterwards every acknowledged order must
//! have its `orders.created` notification at the webhook receiver; (a) and
//! (b) must have no duplicate; (c) reports its duplicates (a kill between
//! a POST and its record). Each test prints its counts.

mod support;

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{kill, order_body, reliable, start, Running, SECRET};
use testkit::webhook::Receiver;
use testkit::{NatsServer, PgServer};
use tokio::time::Instant;

const ORDERS: usize = 1_000;
const CLIENTS: usize = 8;
/// Bound on the whole run of one test (creation and delivery).
const DEADLINE: Duration = Duration::from_secs(240);

struct Cluster {
    pg: PgServer,
    nats: NatsServer,
    receiver: Receiver,
    database_url: String,
    port: u16,
}

impl Cluster {
    async fn start() -> Self {
        // Durable commits: test (b) crashes the server, and a 201 must
        // survive that.
        let pg = PgServer::start_durable().expect("private PostgreSQL");
        let database_url = pg.create_database();
        Self {
            pg,
            nats: NatsServer::start(),
            receiver: Receiver::start(SECRET).await,
            database_url,
            port: testkit::free_port(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = reliable();
        cmd.args(["serve", "--target", "orders,notifier"])
            .env("RELIABLE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
            .env("RELIABLE_DATABASE_URL", &self.database_url)
            .env("RELIABLE_NATS_URL", self.nats.url())
            .env("RELIABLE_NOTIFIER_WEBHOOK_URL", self.receiver.url())
            .env("RELIABLE_NOTIFIER_WEBHOOK_SECRET", SECRET)
            .env("RELIABLE_NOTIFIER_ALLOW_PRIVATE", "true")
            .env("RELIABLE_NOTIFIER_ACK_WAIT", "2s")
            .env("RELIABLE_NOTIFIER_BACKOFF_BASE", "50ms")
            .env("RELIABLE_NOTIFIER_BACKOFF_MAX", "1s")
            .env("RELIABLE_NOTIFIER_MAX_ATTEMPTS", "1000")
            .env("RELIABLE_NOTIFIER_LOG_CHANNEL", "false")
            .env("RELIABLE_ORDERS_RELAY_POLL_INTERVAL", "50ms")
            .env("RELIABLE_LOG", "error");
        cmd
    }
}

/// The clients: each takes the next order number and retries it until a
/// 201 (connection refused and 503 are expected during faults).
struct Load {
    acked: Arc<AtomicUsize>,
    ids: Arc<Mutex<Vec<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    fn start(base: String) -> Self {
        let next = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(AtomicUsize::new(0));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (next, acked, ids, base) = (next.clone(), acked.clone(), ids.clone(), base.clone());
            tasks.spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= ORDERS {
                        return;
                    }
                    let id = create_until_acknowledged(&http, &base, i).await;
                    ids.lock().expect("lock").push(id);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Self { acked, ids, tasks }
    }

    async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.acked.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "only {} orders acknowledged",
                self.acked.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(mut self) -> Vec<String> {
        while let Some(result) = self.tasks.join_next().await {
            result.expect("client task");
        }
        let ids = self.ids.lock().expect("lock").clone();
        ids
    }
}

async fn create_until_acknowledged(http: &reqwest::Client, base: &str, i: usize) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let sent = http
            .post(format!("{base}/api/v1/orders"))
            .header("idempotency-key", format!("fault-order-{i}"))
            .json(&order_body(&format!("customer-{}", i % 50)))
            .send()
            .await;
        if let Ok(response) = sent {
            if response.status() == 201 {
                let body: Value = response.json().await.expect("json");
                return body["id"].as_str().expect("id").to_string();
            }
        }
        assert!(Instant::now() < deadline, "order {i} never acknowledged");
        // Retry pacing while the service is down, not a wait for time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every acknowledged order's `orders.created` arrived, then
/// prints and returns (missing, duplicates).
async fn verify(fault: &str, receiver: &Receiver, acked: &[String]) -> (usize, usize) {
    let created_orders = |r: &Receiver| -> HashSet<String> {
        r.deliveries()
            .iter()
            .filter(|d| d.event_type == "orders.created")
            .filter_map(|d| serde_json::from_slice::<Value>(&d.body).ok())
            .filter_map(|b| b["order"]["id"].as_str().map(str::to_string))
            .collect()
    };
    let started = Instant::now();
    let deadline = started + DEADLINE;
    loop {
        let delivered = created_orders(receiver);
        let missing = acked.iter().filter(|id| !delivered.contains(*id)).count();
        if missing == 0 || Instant::now() > deadline {
            let mut per_event: HashMap<String, usize> = HashMap::new();
            for d in receiver.deliveries() {
                *per_event.entry(d.event_id).or_default() += 1;
            }
            let duplicates: usize = per_event.values().map(|n| n - 1).sum();
            println!(
                "fault test [{fault}]: acknowledged={} delivered={} missing={missing} duplicates={duplicates} bad_signatures={} (caught up {:.1} s after the last 201)",
                acked.len(),
                delivered.len(),
                receiver.bad_signatures(),
                started.elapsed().as_secs_f64()
            );
            return (missing, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_and_duplicates_nothing() {
    let cluster = Cluster::start().await;
    let mut app = start(cluster.command());
    let load = Load::start(format!("http://{}", app.addr));
    load.wait_for(300).await;
    cluster.nats.stop();
    // Orders keep being acknowledged (they only need PostgreSQL) while the
    // broker is away; their events wait in the outbox.
    load.wait_for(500).await;
    cluster.nats.start_again().expect("restart NATS");
    let acked = load.finish().await;
    let (missing, duplicates) = verify("nats restart", &cluster.receiver, &acked).await;
    kill(&mut app);
    assert_eq!(acked.len(), ORDERS);
    assert_eq!((missing, duplicates), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_and_duplicates_nothing() {
    let cluster = Cluster::start().await;
    let mut app = start(cluster.command());
    let load = Load::start(format!("http://{}", app.addr));
    load.wait_for(300).await;
    let pg = &cluster.pg;
    tokio::task::block_in_place(|| pg.restart()).expect("restart PostgreSQL");
    let acked = load.finish().await;
    let (missing, duplicates) = verify("postgres restart", &cluster.receiver, &acked).await;
    kill(&mut app);
    assert_eq!(acked.len(), ORDERS);
    assert_eq!((missing, duplicates), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_relay_and_worker_loses_nothing() {
    let cluster = Cluster::start().await;
    let mut app: Running = start(cluster.command());
    let load = Load::start(format!("http://{}", app.addr));
    load.wait_for(300).await;
    kill(&mut app);
    let mut app = start(cluster.command());
    let acked = load.finish().await;
    let (missing, duplicates) = verify("sigkill", &cluster.receiver, &acked).await;
    kill(&mut app);
    assert_eq!(acked.len(), ORDERS);
    assert_eq!(missing, 0);
    // A duplicate needs a kill between a webhook POST and its record.
    // At most one per delivery in flight (notifier.concurrency, 32).
    assert!(duplicates <= 32, "{duplicates} duplicates");
}
