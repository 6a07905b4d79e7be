//! The writer's batching, retries and drain against a scripted store, on
//! tokio's paused clock.

use super::*;
use crate::usage::{Outcome, StoreError, UsageQuery, UsageRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::storage::Pool;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What the scripted store does on its next `record` calls.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Fails with an unavailable database.
    Down,
    /// Fails with an error that is not "unavailable".
    Broken,
    /// Commits, then answers as if the connection dropped.
    CommitThenDown,
    /// Never answers.
    Hang,
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Step>>,
    /// Every call: the batch id and its size.
    calls: Mutex<Vec<(BatchId, usize)>>,
    stored: Mutex<HashMap<BatchId, Vec<UsageRecord>>>,
    /// When set, every call fails this way (after the script).
    always: Mutex<Option<Step>>,
}

impl Fake {
    fn new(script: &[Step]) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.iter().copied().collect()),
            ..Self::default()
        })
    }

    fn stored(&self) -> Vec<UsageRecord> {
        let mut all: Vec<_> = self
            .stored
            .lock()
            .expect("lock")
            .values()
            .flatten()
            .cloned()
            .collect();
        all.sort_by_key(|r| r.prompt_tokens);
        all
    }

    fn calls(&self) -> Vec<(BatchId, usize)> {
        self.calls.lock().expect("lock").clone()
    }
}

fn unavailable() -> StoreError {
    StoreError::Database(sqlx::Error::PoolTimedOut)
}

#[async_trait]
impl UsageStore for Fake {
    async fn record(
        &self,
        batch: BatchId,
        records: &[UsageRecord],
    ) -> Result<Recorded, StoreError> {
        self.calls
            .lock()
            .expect("lock")
            .push((batch, records.len()));
        let step = self
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .or(*self.always.lock().expect("lock"));
        let store = || match self.stored.lock().expect("lock").entry(batch) {
            Entry::Occupied(_) => Recorded::AlreadyWritten,
            Entry::Vacant(slot) => {
                slot.insert(records.to_vec());
                Recorded::Written
            }
        };
        match step {
            None => Ok(store()),
            Some(Step::Down) => Err(unavailable()),
            Some(Step::Broken) => Err(StoreError::Corrupt("scripted".into())),
            Some(Step::CommitThenDown) => {
                store();
                Err(unavailable())
            }
            Some(Step::Hang) => std::future::pending().await,
        }
    }

    async fn summary(&self, _: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        Ok(Vec::new())
    }

    fn pool(&self) -> Pool {
        unreachable!("not used by the writer")
    }
}

/// Record number `n`: told apart by its prompt tokens.
fn record(n: u64) -> UsageRecord {
    UsageRecord {
        at: DateTime::<Utc>::from_timestamp(1_900_000_000, 0).expect("time"),
        key: "ci".into(),
        model: "m".into(),
        backend: "b".into(),
        prompt_tokens: n,
        completion_tokens: 1,
        estimated: false,
        outcome: Outcome::Ok,
    }
}

fn numbers(records: &[UsageRecord]) -> Vec<u64> {
    records.iter().map(|r| r.prompt_tokens).collect()
}

/// Queues records `0..count`.
async fn queue(ledger: &Ledger, count: u64) {
    for n in 0..count {
        ledger.record(record(n)).await;
    }
}

/// Waits (on the paused clock) until everything queued is written.
async fn wait_written(ledger: &Ledger) {
    while ledger.pending() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn batches_take_what_is_queued_up_to_the_maximum() {
    let fake = Fake::new(&[]);
    let (ledger, writer) = super::ledger(fake.clone(), 2_000);
    queue(&ledger, 1_201).await;
    assert_eq!(ledger.pending(), 1_201);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    wait_written(&ledger).await;
    let sizes: Vec<_> = fake.calls().iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 201]);
    assert_eq!(numbers(&fake.stored()), (0..1_201).collect::<Vec<_>>());
    // A lone record is written at once, in its own batch.
    ledger.record(record(5_000)).await;
    wait_written(&ledger).await;
    assert_eq!(fake.calls().last().map(|(_, n)| *n), Some(1));
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_store_keeps_the_batch_and_backs_off() {
    let fake = Fake::new(&[Step::Down, Step::Down, Step::Down, Step::Down]);
    let (ledger, writer) = super::ledger(fake.clone(), 100);
    queue(&ledger, 10).await;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(writer.run(stop.clone()));
    wait_written(&ledger).await;
    // 50 + 100 + 200 + 400 ms between the five attempts.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(750) && waited < Duration::from_millis(800),
        "{waited:?}"
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 5);
    assert!(
        calls.iter().all(|c| *c == calls[0]),
        "same id and records: {calls:?}"
    );
    assert_eq!(numbers(&fake.stored()), (0..10).collect::<Vec<_>>());
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

#[tokio::test(start_paused = true)]
async fn a_lost_commit_answer_writes_nothing_twice() {
    let fake = Fake::new(&[Step::CommitThenDown]);
    let (ledger, writer) = super::ledger(fake.clone(), 100);
    queue(&ledger, 3).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    wait_written(&ledger).await;
    assert_eq!(fake.calls().len(), 2, "retried once");
    assert_eq!(numbers(&fake.stored()), [0, 1, 2]);
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_retried_too_and_later_records_wait_in_order() {
    let fake = Fake::new(&[Step::Broken, Step::Down, Step::Broken]);
    let (ledger, writer) = super::ledger(fake.clone(), 100);
    ledger.record(record(0)).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    // Let the first attempt fail, then queue more behind the held batch.
    tokio::time::sleep(Duration::from_millis(1)).await;
    queue_from(&ledger, 1..4).await;
    wait_written(&ledger).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert!(calls[..4].iter().all(|c| *c == (calls[0].0, 1)));
    assert_eq!(calls[4].1, 3, "the records queued meanwhile, in one batch");
    assert_eq!(numbers(&fake.stored()), [0, 1, 2, 3]);
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

async fn queue_from(ledger: &Ledger, numbers: std::ops::Range<u64>) {
    for n in numbers {
        ledger.record(record(n)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn stop_drains_everything_queued() {
    let fake = Fake::new(&[]);
    let (ledger, writer) = super::ledger(fake.clone(), 2_000);
    queue(&ledger, 1_100).await;
    let stop = CancellationToken::new();
    stop.cancel();
    writer.run(stop).await.expect("infallible");
    assert_eq!(ledger.pending(), 0);
    assert_eq!(fake.stored().len(), 1_100);
    // The queue is closed now: a late record returns at once, unwritten.
    ledger.record(record(9_999)).await;
    assert_eq!(ledger.pending(), 0);
    assert_eq!(fake.stored().len(), 1_100);
}

#[tokio::test(start_paused = true)]
async fn stop_keeps_retrying_a_held_batch_until_it_is_written() {
    let fake = Fake::new(&[Step::Down; 6]);
    let (ledger, writer) = super::ledger(fake.clone(), 100);
    queue(&ledger, 4).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    while fake.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.cancel();
    task.await.expect("join").expect("infallible");
    assert_eq!(numbers(&fake.stored()), [0, 1, 2, 3]);
    assert_eq!(ledger.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_drain_gives_up_at_its_deadline_and_counts_what_is_left() {
    for never in [Step::Down, Step::Hang] {
        let fake = Fake::new(&[]);
        *fake.always.lock().expect("lock") = Some(never);
        let (ledger, writer) = super::ledger(fake.clone(), 2_000);
        queue(&ledger, 700).await;
        let stop = CancellationToken::new();
        stop.cancel();
        let started = Instant::now();
        writer.run(stop).await.expect("infallible");
        assert!(started.elapsed() <= DRAIN_DEADLINE, "{never:?}");
        assert_eq!(ledger.pending(), 700, "{never:?}: reported, not forgotten");
        assert!(fake.stored().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_callers_wait_instead_of_dropping() {
    let fake = Fake::new(&[]);
    let (ledger, writer) = super::ledger(fake.clone(), 2);
    queue(&ledger, 2).await;
    let third = tokio::time::timeout(Duration::from_secs(60), ledger.record(record(2))).await;
    assert!(third.is_err(), "the third record waits for room");
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    ledger.record(record(2)).await;
    wait_written(&ledger).await;
    assert_eq!(numbers(&fake.stored()), [0, 1, 2]);
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

#[tokio::test(start_paused = true)]
async fn the_writer_ends_only_on_stop_even_when_every_ledger_is_gone() {
    let fake = Fake::new(&[]);
    let (ledger, writer) = super::ledger(fake.clone(), 10);
    ledger.record(record(1)).await;
    drop(ledger);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!task.is_finished());
    assert_eq!(fake.stored().len(), 1);
    stop.cancel();
    task.await.expect("join").expect("infallible");
}

#[test]
fn backoff_doubles_to_its_cap_and_resets() {
    let mut backoff = Backoff::new();
    let first: Vec<_> = (0..9).map(|_| backoff.next().as_millis()).collect();
    assert_eq!(first, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    backoff.reset();
    assert_eq!(backoff.next(), RETRY_FIRST);
}
