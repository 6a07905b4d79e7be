//! The one writer task: events arrive on a bounded queue, are written in
//! batches (one transaction each), and the store is pruned to its bounds.
//!
//! Why a queue and one writer: [`kit::changes::ChangeLog::record`] is
//! called from request handlers and controllers in the middle of the
//! change it describes, so it must never wait for a database. When the
//! queue is full, or a batch cannot be written, the events are dropped and
//! counted ([`DROPPED`]) instead; a warning is logged at most once a
//! minute so a database outage does not flood the log.
//!
//! On shutdown the writer stops taking new events and writes what is
//! queued before it returns, so a change made during shutdown (a model
//! unloaded) is still on the timeline.

use crate::config::ChangesConfig;
use crate::sql;
use chrono::{DateTime, Utc};
use kit::changes::ChangeEvent;
use kit::storage::Pool;
use kit::CancellationToken;
use kit::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The counter of events that never reached the store, by `reason`
/// (`queue_full`, `store_error`, `stopped`).
pub const DROPPED: &str = "platform_changes_dropped_total";

/// How often at most a drop is logged.
const WARN_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Tuning of the queue and writer (not user configuration: the defaults
/// suit every deployment; tests shrink them).
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Events waiting for the writer at most; more are dropped.
    pub queue_capacity: usize,
    /// Events written in one transaction at most.
    pub batch_size: usize,
    /// How often the bounds are enforced (by the injected clock's time).
    pub prune_every: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            batch_size: 256,
            prune_every: Duration::from_secs(60),
        }
    }
}

pub(crate) enum Message {
    Event(ChangeEvent),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Why an event was dropped: the metric's `reason` label (a closed set).
#[derive(Debug, Clone, Copy)]
pub(crate) enum DropReason {
    QueueFull,
    StoreError,
    Stopped,
}

impl DropReason {
    fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::StoreError => "store_error",
            DropReason::Stopped => "stopped",
        }
    }
}

/// Counts drops and rate-limits their warning.
pub(crate) struct Drops {
    total: AtomicU64,
    last_warning: Mutex<Option<DateTime<Utc>>>,
    clock: Arc<dyn Clock>,
}

impl Drops {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        metrics::describe_counter!(
            DROPPED,
            "Change events not stored (queue full, store error, or after shutdown)"
        );
        Self {
            total: AtomicU64::new(0),
            last_warning: Mutex::new(None),
            clock,
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn count(
        &self,
        reason: DropReason,
        events: usize,
        cause: Option<&dyn std::error::Error>,
    ) {
        let n = u64::try_from(events).unwrap_or(u64::MAX);
        self.total.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(DROPPED, "reason" => reason.label()).increment(n);
        let now = self.clock.now();
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| now - at >= WARN_EVERY) {
            *last = Some(now);
            let error = cause.map(|e| e.to_string());
            tracing::warn!(
                reason = reason.label(),
                events,
                error = error.as_deref(),
                "change events dropped (counted in {DROPPED}); further drops are not logged for a minute"
            );
        }
    }
}

/// The writer's state between batches.
pub(crate) struct Writer {
    pub pool: Pool,
    pub config: ChangesConfig,
    pub options: WriterOptions,
    pub clock: Arc<dyn Clock>,
    pub drops: Arc<Drops>,
    last_prune: Option<DateTime<Utc>>,
    written_since_prune: u64,
}

impl Writer {
    pub fn new(
        pool: Pool,
        config: ChangesConfig,
        options: WriterOptions,
        clock: Arc<dyn Clock>,
        drops: Arc<Drops>,
    ) -> Self {
        Self {
            pool,
            config,
            options,
            clock,
            drops,
            last_prune: None,
            written_since_prune: 0,
        }
    }

    /// Runs until `stop`, then writes what is queued and returns.
    pub async fn run(
        mut self,
        mut queue: mpsc::Receiver<Message>,
        stop: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut tick =
            tokio::time::interval(self.options.prune_every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What aged out while the platform was down goes first.
        self.prune_if_due().await;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                message = queue.recv() => match message {
                    Some(first) => self.drain(first, &mut queue).await,
                    // Every sender is gone: nothing more can arrive.
                    None => {
                        stop.cancelled().await;
                        break;
                    }
                },
                _ = tick.tick() => self.prune_if_due().await,
            }
        }
        // Shutdown: no new events; write the queued ones.
        queue.close();
        while let Some(first) = queue.recv().await {
            self.drain(first, &mut queue).await;
        }
        Ok(())
    }

    /// Writes `first` and whatever else is queued, a batch at a time,
    /// answering flushes in order.
    async fn drain(&mut self, first: Message, queue: &mut mpsc::Receiver<Message>) {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Event(event) => {
                    batch.push(event);
                    if batch.len() >= self.options.batch_size {
                        self.write(&mut batch).await;
                    }
                }
                Message::Flush(done) => {
                    self.write(&mut batch).await;
                    self.prune_if_due().await;
                    let _ = done.send(());
                }
            }
            next = queue.try_recv().ok();
        }
        self.write(&mut batch).await;
        self.prune_if_due().await;
    }

    async fn write(&mut self, batch: &mut Vec<ChangeEvent>) {
        if batch.is_empty() {
            return;
        }
        match sql::insert(&self.pool, batch).await {
            Ok(()) => {
                self.written_since_prune += u64::try_from(batch.len()).unwrap_or(u64::MAX);
            }
            Err(e) => self
                .drops
                .count(DropReason::StoreError, batch.len(), Some(&e)),
        }
        batch.clear();
    }

    /// Prunes when `prune_every` has passed on the clock, or when a tenth
    /// of `max_events` was written since the last prune (so a burst cannot
    /// outgrow the count bound by more than that).
    async fn prune_if_due(&mut self) {
        let now = self.clock.now();
        let every =
            chrono::Duration::from_std(self.options.prune_every).unwrap_or(chrono::Duration::MAX);
        let due_by_time = self.last_prune.is_none_or(|at| now - at >= every);
        let due_by_count = self.written_since_prune >= (self.config.max_events / 10).max(1);
        if !(due_by_time || due_by_count) {
            return;
        }
        let max_age =
            chrono::Duration::from_std(self.config.max_age).unwrap_or(chrono::Duration::MAX);
        let oldest = now
            .checked_sub_signed(max_age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let keep = i64::try_from(self.config.max_events).unwrap_or(i64::MAX);
        match sql::prune(&self.pool, oldest, keep).await {
            Ok(removed) => {
                if removed > 0 {
                    tracing::debug!(removed, "pruned change events");
                }
                self.last_prune = Some(now);
                self.written_since_prune = 0;
            }
            // Tried again at the next tick; the bounds hold once it works.
            Err(e) => tracing::warn!(
                error = &e as &dyn std::error::Error,
                "pruning change events failed"
            ),
        }
    }
}
