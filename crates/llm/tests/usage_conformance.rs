//! One conformance suite for every `UsageStore` adapter: SQLite in a temp
//! file, PostgreSQL on the harness's private server (a fresh database per
//! test). Then the ledger against PostgreSQL going away: unreachable for a
//! while (a proxy that refuses and cuts connections) and restarted
//! abruptly; every record must arrive exactly once.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use kit::CancellationToken;
use llm::usage::{
    ledger, BatchId, Outcome, PostgresUsageStore, Recorded, SqliteUsageStore, UsageQuery,
    UsageRecord, UsageRow, UsageStore, ANONYMOUS,
};
use std::sync::Arc;
use std::time::Duration;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn usage(key: &str, model: &str, backend: &str, prompt: u64, completion: u64) -> UsageRecord {
    UsageRecord {
        at: at("2030-01-01T12:00:00Z"),
        key: key.into(),
        model: model.into(),
        backend: backend.into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        estimated: false,
        outcome: Outcome::Ok,
    }
}

fn row(key: &str, model: &str, backend: &str, sums: [u64; 4]) -> UsageRow {
    let [requests, prompt_tokens, completion_tokens, estimated_requests] = sums;
    UsageRow {
        key: key.into(),
        model: model.into(),
        backend: backend.into(),
        requests,
        prompt_tokens,
        completion_tokens,
        estimated_requests,
    }
}

/// The whole of 2030.
fn all(key: Option<&str>) -> UsageQuery {
    UsageQuery {
        key: key.map(str::to_string),
        from: at("2030-01-01T00:00:00Z"),
        to: at("2031-01-01T00:00:00Z"),
    }
}

async fn write(store: &dyn UsageStore, records: &[UsageRecord]) {
    let done = store
        .record(BatchId::random(), records)
        .await
        .expect("record");
    assert_eq!(done, Recorded::Written);
}

async fn summary_sums_per_key_model_and_backend(store: Arc<dyn UsageStore>) {
    let estimated = UsageRecord {
        estimated: true,
        outcome: Outcome::StreamAbort,
        ..usage("bob", "llama", "vllm-a", 7, 0)
    };
    write(
        store.as_ref(),
        &[
            usage("bob", "llama", "vllm-a", 10, 20),
            usage(ANONYMOUS, "llama", "vllm-b", 1, 2),
            estimated,
            usage("alice", "llama", "vllm-a", 100, 200),
        ],
    )
    .await;
    let fallback = UsageRecord {
        outcome: Outcome::Fallback,
        ..usage("bob", "llama", "vllm-b", 3, 4)
    };
    write(
        store.as_ref(),
        &[
            fallback,
            usage("alice", "gpt-4o", "openai", 5, 6),
            usage("bob", "llama", "vllm-a", 1000, 2000),
            usage("ünïcode key", "m/α", "b", 1, 1),
        ],
    )
    .await;
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(
        summary,
        [
            row("alice", "gpt-4o", "openai", [1, 5, 6, 0]),
            row("alice", "llama", "vllm-a", [1, 100, 200, 0]),
            row(ANONYMOUS, "llama", "vllm-b", [1, 1, 2, 0]),
            row("bob", "llama", "vllm-a", [3, 1017, 2020, 1]),
            row("bob", "llama", "vllm-b", [1, 3, 4, 0]),
            row("ünïcode key", "m/α", "b", [1, 1, 1, 0]),
        ]
    );
}

async fn the_window_is_from_inclusive_to_exclusive(store: Arc<dyn UsageStore>) {
    let from = at("2030-03-01T00:00:00Z");
    let to = at("2030-03-02T00:00:00Z");
    let micro = TimeDelta::microseconds(1);
    let times = [from - micro, from, from + micro, to - micro, to];
    let records: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| UsageRecord {
            at: *t,
            ..usage("k", "m", "b", 1 << i, 0)
        })
        .collect();
    write(store.as_ref(), &records).await;
    let window = |from, to| UsageQuery {
        key: None,
        from,
        to,
    };
    let summary = store.summary(&window(from, to)).await.expect("summary");
    assert_eq!(summary, [row("k", "m", "b", [3, 2 + 4 + 8, 0, 0])]);
    for (from, to) in [(to, from), (from, from)] {
        let empty = store.summary(&window(from, to)).await.expect("summary");
        assert!(empty.is_empty(), "{from}..{to}: {empty:?}");
    }
}

async fn the_key_filter_selects_one_key(store: Arc<dyn UsageStore>) {
    write(
        store.as_ref(),
        &[
            usage("alice", "m", "b", 1, 1),
            usage("bob", "m", "b", 2, 2),
            usage("bob", "m", "c", 3, 3),
            usage(ANONYMOUS, "m", "b", 4, 4),
        ],
    )
    .await;
    let bob = store.summary(&all(Some("bob"))).await.expect("bob");
    assert_eq!(
        bob,
        [
            row("bob", "m", "b", [1, 2, 2, 0]),
            row("bob", "m", "c", [1, 3, 3, 0])
        ]
    );
    let anonymous = store.summary(&all(Some(ANONYMOUS))).await.expect("anon");
    assert_eq!(anonymous, [row(ANONYMOUS, "m", "b", [1, 4, 4, 0])]);
    for nobody in ["carol", "Bob", "bob ", "", "%"] {
        let none = store.summary(&all(Some(nobody))).await.expect("none");
        assert!(none.is_empty(), "{nobody:?}: {none:?}");
    }
}

async fn an_empty_ledger_has_an_empty_summary(store: Arc<dyn UsageStore>) {
    assert!(store.summary(&all(None)).await.expect("all").is_empty());
    assert!(store
        .summary(&all(Some("alice")))
        .await
        .expect("alice")
        .is_empty());
    store.pool().ping().await.expect("ping");
}

async fn token_counts_up_to_i64_max_add_up_exactly(store: Arc<dyn UsageStore>) {
    let max = i64::MAX as u64;
    write(
        store.as_ref(),
        &[
            usage("two", "m", "b", max, 1),
            usage("two", "m", "b", max, max),
            usage("three", "m", "b", max, 0),
            usage("three", "m", "b", max, 0),
            // Beyond BIGINT: stored as i64::MAX.
            usage("three", "m", "b", u64::MAX, 0),
        ],
    )
    .await;
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(
        summary,
        [
            // 3 * i64::MAX does not fit a u64: saturated.
            row("three", "m", "b", [3, u64::MAX, 0, 0]),
            row("two", "m", "b", [2, 2 * max, max + 1, 0]),
        ]
    );
}

async fn a_batch_is_written_once(store: Arc<dyn UsageStore>) {
    let id = BatchId::random();
    let records = [usage("k", "m", "b", 1, 2), usage("k", "m", "b", 3, 4)];
    assert_eq!(
        store.record(id, &records).await.expect("first"),
        Recorded::Written
    );
    assert_eq!(
        store.record(id, &records).await.expect("again"),
        Recorded::AlreadyWritten
    );
    write(store.as_ref(), &records).await;
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(summary, [row("k", "m", "b", [4, 8, 12, 0])]);
}

async fn a_large_batch_is_one_transaction(store: Arc<dyn UsageStore>) {
    let records: Vec<_> = (0..1_201).map(|i| usage("k", "m", "b", i, 1)).collect();
    write(store.as_ref(), &records).await;
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(
        summary,
        [row("k", "m", "b", [1_201, 1_200 * 1_201 / 2, 1_201, 0])]
    );
}

async fn concurrent_batches_all_arrive(store: Arc<dyn UsageStore>) {
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16u64 {
        let store = store.clone();
        writers.spawn(async move {
            for b in 0..4u64 {
                let records: Vec<_> = (0..10)
                    .map(|i| usage(&format!("k{w}"), "m", "b", w * 1000 + b * 10 + i, 1))
                    .collect();
                write(store.as_ref(), &records).await;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(summary.len(), 16);
    for row in &summary {
        let w: u64 = row.key[1..].parse().expect("key");
        assert_eq!(row.requests, 40, "{row:?}");
        assert_eq!(row.prompt_tokens, 40 * w * 1000 + (0..40).sum::<u64>());
    }
}

async fn the_ledger_writes_everything_on_stop(store: Arc<dyn UsageStore>) {
    let (ledger, writer) = ledger(store.clone(), 2_000);
    for i in 0..1_234 {
        ledger.record(usage("k", "m", "b", i, 1)).await;
    }
    assert_eq!(ledger.pending(), 1_234);
    let stop = CancellationToken::new();
    stop.cancel();
    writer.run(stop).await.expect("infallible");
    assert_eq!(ledger.pending(), 0);
    let summary = store.summary(&all(None)).await.expect("summary");
    assert_eq!(
        summary,
        [row("k", "m", "b", [1_234, 1_233 * 1_234 / 2, 1_234, 0])]
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("llm.db").display());
                    let store = super::SqliteUsageStore::connect(&url, &Default::default())
                        .await
                        .expect("sqlite");
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let url = testkit::postgres().create_database();
                    let store = super::PostgresUsageStore::connect(&url, &Default::default())
                        .await
                        .expect("postgres");
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

conformance!(
    summary_sums_per_key_model_and_backend,
    the_window_is_from_inclusive_to_exclusive,
    the_key_filter_selects_one_key,
    an_empty_ledger_has_an_empty_summary,
    token_counts_up_to_i64_max_add_up_exactly,
    a_batch_is_written_once,
    a_large_batch_is_one_transaction,
    concurrent_batches_all_arrive,
    the_ledger_writes_everything_on_stop,
);

#[tokio::test]
async fn connect_picks_the_adapter_from_the_url_and_migrates_once() {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!("sqlite://{}", dir.path().join("llm.db").display());
    let postgres = testkit::postgres().create_database();
    for url in [sqlite, postgres] {
        let first = llm::usage::connect(&url, &Default::default())
            .await
            .expect("first");
        write(first.as_ref(), &[usage("k", "m", "b", 1, 1)]).await;
        let again = llm::usage::connect(&url, &Default::default())
            .await
            .expect("a second start migrates nothing");
        let summary = again.summary(&all(None)).await.expect("summary");
        assert_eq!(summary, [row("k", "m", "b", [1, 1, 1, 0])], "{url}");
    }
    assert!(llm::usage::connect("mysql://h/db", &Default::default())
        .await
        .is_err());
}

/// One record per key `r{n}`, so a summary shows each one's count.
fn numbered(n: usize) -> UsageRecord {
    usage(&format!("r{n:05}"), "m", "b", n as u64, 1)
}

/// Every record `0..count` is there exactly once.
async fn assert_each_once(store: &dyn UsageStore, count: usize) {
    let summary = store.summary(&all(None)).await.expect("summary");
    let twice: Vec<_> = summary.iter().filter(|r| r.requests != 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    let keys: Vec<_> = summary.iter().map(|r| r.key.clone()).collect();
    let expected: Vec<_> = (0..count).map(|n| numbered(n).key).collect();
    assert_eq!(keys.len(), expected.len(), "records missing");
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn the_ledger_keeps_records_while_postgres_is_unreachable() {
    let url = testkit::postgres().create_database();
    let proxy = support::Proxy::start(&url).await;
    let config = support::quick_pool();
    let direct = PostgresUsageStore::connect(&url, &config)
        .await
        .expect("direct");
    let observed = Arc::new(support::Observed::new(
        PostgresUsageStore::connect(&proxy.url(), &config)
            .await
            .expect("through the proxy"),
    ));
    let (ledger, writer) = ledger(observed.clone(), 10_000);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));

    for n in 0..100 {
        ledger.record(numbered(n)).await;
    }
    support::written(&ledger).await;

    proxy.cut();
    for n in 100..400 {
        ledger.record(numbered(n)).await;
    }
    testkit::eventually(
        "failed writes while down",
        Duration::from_secs(30),
        async || (observed.unavailable() >= 2).then_some(()),
    )
    .await;
    assert!(ledger.pending() > 0, "kept while down");
    assert_eq!(observed.other_errors(), 0);
    proxy.restore();

    support::written(&ledger).await;
    stop.cancel();
    task.await.expect("join").expect("infallible");
    assert_each_once(&direct, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_and_duplicates_nothing() {
    // Durable commits: an acknowledged batch must survive the crash.
    let pg = testkit::PgServer::start_durable().expect("private PostgreSQL");
    let url = pg.create_database();
    let store = Arc::new(support::Observed::new(
        PostgresUsageStore::connect(&url, &support::quick_pool())
            .await
            .expect("postgres"),
    ));
    let (ledger, writer) = ledger(store.clone(), 10_000);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));

    // Requests keep completing before, during and after the restart.
    let restarted = CancellationToken::new();
    let feeder = {
        let (ledger, restarted) = (ledger.clone(), restarted.clone());
        tokio::spawn(async move {
            let mut after = 0;
            let mut n = 0;
            while after < 300 && n < 50_000 {
                ledger.record(numbered(n)).await;
                n += 1;
                if restarted.is_cancelled() {
                    after += 1;
                }
                // Pacing of the load, not a wait for a condition.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            n
        })
    };
    testkit::eventually(
        "the first records written",
        Duration::from_secs(30),
        async || {
            let written = store.summary(&all(None)).await.ok()?.len();
            (written >= 100).then_some(())
        },
    )
    .await;
    tokio::task::block_in_place(|| pg.restart()).expect("restart PostgreSQL");
    restarted.cancel();
    let recorded = feeder.await.expect("feeder");

    support::written(&ledger).await;
    stop.cancel();
    task.await.expect("join").expect("infallible");
    assert_each_once(store.as_ref(), recorded).await;
    println!(
        "postgres restart: {recorded} records, {} failed writes, each written once",
        store.unavailable() + store.other_errors()
    );
}

/// A proxy that can make PostgreSQL unreachable, and a store that counts
/// its failures.
mod support {
    use super::*;
    use async_trait::async_trait;
    use kit::storage::{Pool, PoolConfig, StoreError};
    use llm::usage::Ledger;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::net::{TcpListener, TcpStream};

    /// Fails fast while the database is away.
    pub fn quick_pool() -> PoolConfig {
        PoolConfig {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(1),
            ..PoolConfig::default()
        }
    }

    /// Waits until the ledger has written everything it accepted.
    pub async fn written(ledger: &Ledger) {
        testkit::eventually(
            "every record written",
            Duration::from_secs(60),
            async || (ledger.pending() == 0).then_some(()),
        )
        .await;
    }

    /// Forwards TCP to PostgreSQL; [`Proxy::cut`] closes every connection
    /// and refuses new ones until [`Proxy::restore`].
    pub struct Proxy {
        url: String,
        up: Arc<AtomicBool>,
        cut: Arc<Mutex<CancellationToken>>,
        accepting: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        /// A proxy to the server of `url` (`postgres://USER@HOST:PORT/DB`).
        pub async fn start(url: &str) -> Self {
            let (user, rest) = url.rsplit_once('@').expect("user@");
            let (upstream, database) = rest.split_once('/').expect("/db");
            let upstream = upstream.to_string();
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let up = Arc::new(AtomicBool::new(true));
            let cut = Arc::new(Mutex::new(CancellationToken::new()));
            let accepting = tokio::spawn({
                let (up, cut) = (up.clone(), cut.clone());
                async move {
                    // Dropped (aborting every connection) with the proxy.
                    let mut connections = tokio::task::JoinSet::new();
                    while let Ok((mut client, _)) = listener.accept().await {
                        if !up.load(Ordering::SeqCst) {
                            continue;
                        }
                        let cut = cut.lock().expect("lock").clone();
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                () = cut.cancelled() => {}
                            }
                        });
                        while connections.try_join_next().is_some() {}
                    }
                }
            });
            Self {
                url: format!("{user}@127.0.0.1:{port}/{database}"),
                up,
                cut,
                accepting,
            }
        }

        pub fn url(&self) -> String {
            self.url.clone()
        }

        pub fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            let mut cut = self.cut.lock().expect("lock");
            cut.cancel();
            *cut = CancellationToken::new();
        }

        pub fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.accepting.abort();
        }
    }

    /// A store that counts its failed writes by kind.
    pub struct Observed<S> {
        inner: S,
        unavailable: AtomicUsize,
        other: AtomicUsize,
    }

    impl<S> Observed<S> {
        pub fn new(inner: S) -> Self {
            Self {
                inner,
                unavailable: AtomicUsize::new(0),
                other: AtomicUsize::new(0),
            }
        }

        pub fn unavailable(&self) -> usize {
            self.unavailable.load(Ordering::SeqCst)
        }

        pub fn other_errors(&self) -> usize {
            self.other.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl<S: UsageStore> UsageStore for Observed<S> {
        async fn record(
            &self,
            batch: BatchId,
            records: &[UsageRecord],
        ) -> Result<Recorded, StoreError> {
            let result = self.inner.record(batch, records).await;
            if let Err(e) = &result {
                let counter = if e.is_unavailable() {
                    &self.unavailable
                } else {
                    &self.other
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
            result
        }

        async fn summary(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
            self.inner.summary(query).await
        }

        fn pool(&self) -> Pool {
            self.inner.pool()
        }
    }
}
