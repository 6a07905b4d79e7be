//! Visit recording off the redirect path.
//!
//! A redirect pushes its visit into an in-memory buffer (a mutex-guarded
//! `Vec`: no channel, no task wake-up per visit) and answers at once; one
//! writer task takes the whole buffer every `flush_interval`, or as soon as
//! it holds `batch_size` visits, and writes it in multi-row statements.
//! Nothing is dropped: when the buffer is full the redirect waits for the
//! writer (backpressure), and a batch that fails to write is retried with
//! backoff until it succeeds. On shutdown the recorder stops only after
//! the HTTP server has drained, then writes everything left.

use crate::domain::{anonymize_ip, is_bot, referrer_host, Visit, MAX_USER_AGENT};
use crate::storage::LinkStore;
use chrono::{DateTime, Utc};
use kit::tasks::{OnFailure, TaskSpawner};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A visit as the redirect saw it: raw header values, classified later by
/// the writer task so the redirect path only copies two strings.
#[derive(Debug, Clone)]
pub struct PendingVisit {
    pub link_id: i64,
    pub at: DateTime<Utc>,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    /// See [`Visit::counted`].
    pub counted: bool,
}

impl PendingVisit {
    fn into_visit(self, anonymize: bool) -> Visit {
        let is_bot = is_bot(self.user_agent.as_deref());
        let user_agent = self.user_agent.map(|mut ua| {
            if ua.len() > MAX_USER_AGENT {
                let mut cut = MAX_USER_AGENT;
                while !ua.is_char_boundary(cut) {
                    cut -= 1;
                }
                ua.truncate(cut);
            }
            ua
        });
        Visit {
            link_id: self.link_id,
            at: self.at,
            referrer_host: referrer_host(self.referer.as_deref()),
            client_ip: self
                .client_ip
                .map(|ip| if anonymize { anonymize_ip(ip) } else { ip }),
            user_agent,
            is_bot,
            counted: self.counted,
        }
    }
}

/// How visits are batched.
#[derive(Debug, Clone, Copy)]
pub struct RecorderSettings {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Visits held in memory before redirects wait for the writer.
    pub buffer: usize,
    /// How long the final flush may keep retrying on shutdown before giving up.
    pub shutdown_timeout: Duration,
    /// Zero the host part of client addresses before storing them.
    pub anonymize_ips: bool,
}

struct Shared {
    buffer: Mutex<Vec<PendingVisit>>,
    settings: RecorderSettings,
    store: Arc<dyn LinkStore>,
    /// Wakes the writer early when a full batch is waiting.
    batch_ready: Notify,
    /// Wakes redirects waiting for room in a full buffer.
    room: Notify,
    /// Held while a batch is taken and written, so `flush` can wait for a
    /// write in progress.
    writing: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    stop: CancellationToken,
}

#[derive(Clone)]
pub struct VisitRecorder {
    shared: Arc<Shared>,
}

impl VisitRecorder {
    /// Starts the writer task on `tasks`; it writes what is left and exits
    /// once the module is asked to stop.
    pub fn spawn(
        store: Arc<dyn LinkStore>,
        settings: RecorderSettings,
        tasks: &TaskSpawner,
    ) -> Self {
        let stop = tasks.stop_token();
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(settings.batch_size)),
            settings,
            store,
            batch_ready: Notify::new(),
            room: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            stop,
        });
        // Without the writer, redirects block once the buffer is full.
        let writer = shared.clone();
        tasks.spawn("visit-writer", OnFailure::Exit, async move {
            write_batches(writer).await;
            Ok::<(), std::convert::Infallible>(())
        });
        Self { shared }
    }

    fn try_push(&self, visit: PendingVisit) -> Result<(), PendingVisit> {
        let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() >= self.shared.settings.buffer.max(1) {
            return Err(visit);
        }
        buffer.push(visit);
        if buffer.len() == self.shared.settings.batch_size {
            self.shared.batch_ready.notify_one();
        }
        Ok(())
    }

    /// Queues a visit; waits only while the buffer is full.
    pub async fn record(&self, visit: PendingVisit) {
        if self.shared.closed.load(Ordering::Acquire) {
            // Only possible if a request outlived the server's drain.
            metrics::counter!("shortener_visits_lost_total").increment(1);
            tracing::error!("visit recorded after the recorder stopped");
            return;
        }
        // Fast path, taken by every redirect while the writer keeps up: one
        // uncontended lock. Registering as a `room` waiter costs two more
        // lock round trips, so only a full buffer pays for it.
        match self.try_push(visit) {
            Ok(()) => {}
            Err(rejected) => self.wait_for_room(rejected).await,
        }
    }

    async fn wait_for_room(&self, mut visit: PendingVisit) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Register before checking, so a wake-up between the check and
            // the await is not lost.
            room.as_mut().enable();
            match self.try_push(visit) {
                Ok(()) => return,
                Err(rejected) => visit = rejected,
            }
            metrics::counter!("shortener_visit_buffer_full_total").increment(1);
            self.shared.batch_ready.notify_one();
            room.await;
        }
    }

    /// Returns once every visit recorded before the call is written.
    pub async fn flush(&self) {
        write_buffered(&self.shared).await;
    }
}

/// Takes everything buffered and writes it (in `batch_size` chunks).
async fn write_buffered(shared: &Shared) {
    let _writing = shared.writing.lock().await;
    let taken = std::mem::take(&mut *shared.buffer.lock().unwrap_or_else(|e| e.into_inner()));
    shared.room.notify_waiters();
    if taken.is_empty() {
        return;
    }
    let anonymize = shared.settings.anonymize_ips;
    let visits: Vec<Visit> = taken.into_iter().map(|v| v.into_visit(anonymize)).collect();
    for chunk in visits.chunks(shared.settings.batch_size.max(1)) {
        write_with_retry(shared, chunk).await;
    }
}

async fn write_batches(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.settings.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.batch_ready.notified() => {}
            _ = tick.tick() => {}
            () = shared.stop.cancelled() => break,
        }
        write_buffered(&shared).await;
    }
    shared.closed.store(true, Ordering::Release);
    write_buffered(&shared).await;
    tracing::info!("visit recorder stopped");
}

/// Writes one batch, retrying with capped exponential backoff until it
/// succeeds (meanwhile the buffer fills and redirects slow down instead of
/// losing visits). Once shutdown has begun, retries stop after
/// `shutdown_timeout` so a dead database cannot hang the process.
async fn write_with_retry(shared: &Shared, batch: &[Visit]) {
    let mut backoff = Duration::from_millis(50);
    let mut stopping_since: Option<tokio::time::Instant> = None;
    loop {
        match shared.store.record_visits(batch).await {
            Ok(()) => {
                metrics::counter!("shortener_visits_recorded_total").increment(batch.len() as u64);
                return;
            }
            Err(e) => {
                metrics::counter!("shortener_visit_flush_errors_total").increment(1);
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    visits = batch.len(),
                    "writing visits failed; retrying"
                );
            }
        }
        if shared.stop.is_cancelled() {
            let since = *stopping_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= shared.settings.shutdown_timeout {
                metrics::counter!("shortener_visits_lost_total").increment(batch.len() as u64);
                tracing::error!(
                    visits = batch.len(),
                    "giving up on buffered visits at shutdown"
                );
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
