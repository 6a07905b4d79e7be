//! The ledger's write path: requests never wait on the database, and a
//! record once accepted is not lost or written twice.
//!
//! [`Ledger::record`] puts the record on a bounded queue and returns; when
//! the queue is full it waits (backpressure) instead of dropping. The
//! [`LedgerWriter`] task takes whatever is queued, up to [`MAX_BATCH`]
//! records, and writes it as one batch in one transaction. There is no
//! linger: a lone record is written at once, and under load batches grow
//! by themselves while the previous write is in flight.
//!
//! A failed write keeps its batch, with the same [`BatchId`], and tries it
//! again after a backoff (50 ms doubling to 5 s), whatever the error: an
//! unavailable database is the expected case; anything else is logged as
//! an error, since it may need a person, and retried too (serialization
//! failures and the like are not classed as unavailable but pass). The
//! store skips a batch it already has, so a retry after a commit whose
//! answer was lost writes nothing twice. Records queued meanwhile wait
//! behind the batch, in order.
//!
//! On stop the queue is closed (a late [`Ledger::record`] logs its record
//! as lost) and everything in it is written, until [`DRAIN_DEADLINE`];
//! what is still unwritten then is logged with its count and counted in
//! `llm_usage_records_lost_total`.

use super::{BatchId, Recorded, UsageRecord, UsageStore};
use kit::CancellationToken;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 500;
/// How long the writer keeps trying to write what is queued after stop.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Gauge: records accepted and not yet written.
const PENDING: &str = "llm_usage_records_pending";
/// Counter: records written.
const WRITTEN: &str = "llm_usage_records_written_total";
/// Counter: failed batch writes, by `error` (`unavailable` or `other`).
const WRITE_FAILURES: &str = "llm_usage_write_failures_total";
/// Counter: records given up (shutdown deadline, or recorded after stop).
const LOST: &str = "llm_usage_records_lost_total";
/// Histogram: records per written batch.
const BATCH_SIZE: &str = "llm_usage_write_batch_size";

/// The handle requests record their usage through; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<UsageRecord>,
    shared: Arc<Shared>,
}

/// Writes what the [`Ledger`]s queue; run it as a supervised task.
pub struct LedgerWriter {
    queue: mpsc::Receiver<UsageRecord>,
    store: Arc<dyn UsageStore>,
    shared: Arc<Shared>,
    retry: Backoff,
}

struct Shared {
    /// Accepted by [`Ledger::record`] and not yet written.
    pending: AtomicUsize,
    pending_gauge: metrics::Gauge,
    lost: metrics::Counter,
}

impl Shared {
    fn add(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::Relaxed);
        self.pending_gauge.increment(n as f64);
    }

    fn remove(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::Relaxed);
        self.pending_gauge.decrement(n as f64);
    }
}

/// A ledger writing to `store`, whose queue holds up to `capacity` records
/// (at least one) besides the batch being written.
pub fn ledger(store: Arc<dyn UsageStore>, capacity: usize) -> (Ledger, LedgerWriter) {
    describe();
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared {
        pending: AtomicUsize::new(0),
        pending_gauge: metrics::gauge!(PENDING),
        lost: metrics::counter!(LOST),
    });
    (
        Ledger {
            queue: sender,
            shared: shared.clone(),
        },
        LedgerWriter {
            queue: receiver,
            store,
            shared,
            retry: Backoff::new(),
        },
    )
}

fn describe() {
    metrics::describe_gauge!(PENDING, "Usage records accepted and not yet written");
    metrics::describe_counter!(WRITTEN, "Usage records written to the database");
    metrics::describe_counter!(
        WRITE_FAILURES,
        "Usage batch writes that failed (and are retried)"
    );
    metrics::describe_counter!(
        LOST,
        "Usage records given up at shutdown or recorded after it"
    );
    metrics::describe_histogram!(BATCH_SIZE, "Usage records per written batch");
}

impl Ledger {
    /// Queues `record` for writing; waits while the queue is full. After
    /// the writer has stopped the record is logged as lost. A caller
    /// dropped while waiting for room has recorded nothing: record from a
    /// task that is not cancelled with the client's request.
    pub async fn record(&self, record: UsageRecord) {
        match self.queue.reserve().await {
            Ok(room) => {
                self.shared.add(1);
                room.send(record);
            }
            Err(_) => self.lost_after_stop(&record),
        }
    }

    fn lost_after_stop(&self, record: &UsageRecord) {
        self.shared.lost.increment(1);
        tracing::error!(
            key = %record.key,
            model = %record.model,
            backend = %record.backend,
            prompt_tokens = record.prompt_tokens,
            completion_tokens = record.completion_tokens,
            "usage record lost: the ledger writer has stopped"
        );
    }

    /// Records queued and not yet written. Once the writer has ended, what
    /// it could not write before its drain deadline.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }
}

/// Records written (or retried) together under one id.
struct Batch {
    id: BatchId,
    records: Vec<UsageRecord>,
}

impl LedgerWriter {
    /// Writes queued records until `stop`, then drains the queue (see the
    /// module docs). Returns only after `stop`.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), Infallible> {
        let mut held = None;
        loop {
            let batch = match held.take() {
                Some(batch) => batch,
                None => match self.next_batch(&stop).await {
                    Some(batch) => batch,
                    None => break,
                },
            };
            if self.write(&batch).await {
                continue;
            }
            held = Some(batch);
            tokio::select! {
                () = tokio::time::sleep(self.retry.next()) => {}
                () = stop.cancelled() => break,
            }
        }
        self.drain(held).await;
        Ok(())
    }

    /// The next batch; none once `stop` is cancelled. Waits for stop when
    /// every [`Ledger`] is gone: the task's end means shutdown.
    async fn next_batch(&mut self, stop: &CancellationToken) -> Option<Batch> {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            first = self.queue.recv() => first,
        };
        let Some(first) = first else {
            stop.cancelled().await;
            return None;
        };
        Some(self.batch_from(first))
    }

    /// `first` and whatever else is queued now, up to [`MAX_BATCH`].
    fn batch_from(&mut self, first: UsageRecord) -> Batch {
        let mut records = vec![first];
        while records.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(record) => records.push(record),
                Err(_) => break,
            }
        }
        Batch {
            id: BatchId::random(),
            records,
        }
    }

    /// One attempt; true if the batch is stored (now or before).
    async fn write(&mut self, batch: &Batch) -> bool {
        let count = batch.records.len();
        match self.store.record(batch.id, &batch.records).await {
            Ok(recorded) => {
                if recorded == Recorded::AlreadyWritten {
                    tracing::info!(
                        batch = %batch.id,
                        records = count,
                        "usage batch was already written (its commit's answer was lost)"
                    );
                } else {
                    metrics::counter!(WRITTEN).increment(count as u64);
                    metrics::histogram!(BATCH_SIZE).record(count as f64);
                }
                self.shared.remove(count);
                self.retry.reset();
                true
            }
            Err(e) => {
                let unavailable = e.is_unavailable();
                let kind = if unavailable { "unavailable" } else { "other" };
                metrics::counter!(WRITE_FAILURES, "error" => kind).increment(1);
                let error = &e as &dyn std::error::Error;
                if unavailable {
                    tracing::warn!(
                        error,
                        records = count,
                        "usage database unavailable; keeping the batch"
                    );
                } else {
                    tracing::error!(
                        error,
                        records = count,
                        "writing usage failed; keeping the batch"
                    );
                }
                false
            }
        }
    }

    /// Closes the queue and writes everything in it (and `held`) until
    /// [`DRAIN_DEADLINE`].
    async fn drain(mut self, mut held: Option<Batch>) {
        self.queue.close();
        let deadline = Instant::now() + DRAIN_DEADLINE;
        loop {
            let batch = match held.take() {
                Some(batch) => batch,
                // After close, recv returns what is queued, then None.
                None => match tokio::time::timeout_at(deadline, self.queue.recv()).await {
                    Ok(Some(first)) => self.batch_from(first),
                    Ok(None) => {
                        tracing::info!("usage ledger drained");
                        return;
                    }
                    Err(_) => break,
                },
            };
            let written = tokio::time::timeout_at(deadline, self.write(&batch)).await;
            if matches!(written, Ok(true)) {
                continue;
            }
            held = Some(batch);
            let retry_at = Instant::now() + self.retry.next();
            if retry_at >= deadline {
                break;
            }
            tokio::time::sleep_until(retry_at).await;
        }
        let mut left = held.map_or(0, |batch| batch.records.len());
        while self.queue.try_recv().is_ok() {
            left += 1;
        }
        self.shared.lost.increment(left as u64);
        tracing::error!(
            records = left,
            deadline = ?DRAIN_DEADLINE,
            "usage records not written by the shutdown deadline are lost"
        );
    }
}

/// Capped exponential backoff between attempts at one batch.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: RETRY_FIRST }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        now
    }

    fn reset(&mut self) {
        self.next = RETRY_FIRST;
    }
}

#[cfg(test)]
mod tests;
