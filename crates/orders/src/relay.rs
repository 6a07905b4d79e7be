//! The outbox relay: moves committed events from the outbox table to the
//! bus, oldest first, and keeps the outbox metrics.
//!
//! A request that commits an event wakes the relay at once (low latency
//! inside one process); a poll every `relay_poll_interval` picks up events
//! committed by other replicas. A failed publish (broker or database down)
//! is retried with capped exponential backoff; nothing is lost because the
//! rows stay unpublished until the bus has acknowledged them.
//!
//! Each event is published in a PRODUCER span ([`TracedPublisher`]) that
//! continues the trace of the request that committed it (the outbox row
//! keeps the request's `traceparent`); the message carries the producer
//! span's `traceparent`, so the consumer's span is its child.

use crate::storage::OrderStore;
use async_trait::async_trait;
use bus::{BusError, Event, Publisher};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::telemetry::Hop;
use kit::trace_context::TraceParent;
use kit::{CancellationToken, Clock};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

const MAX_BACKOFF: Duration = Duration::from_secs(2);
const METRICS_INTERVAL: Duration = Duration::from_secs(1);
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

pub(crate) struct OutboxRelay {
    pub store: Arc<dyn OrderStore>,
    pub publisher: Arc<dyn Publisher>,
    pub clock: Arc<dyn Clock>,
    pub wake: Arc<Notify>,
    pub batch_size: u32,
    pub poll_interval: Duration,
    pub retention: Duration,
}

impl OutboxRelay {
    /// Without the relay nothing leaves the outbox: its death stops the
    /// process, so the orchestrator restarts it.
    pub fn spawn(mut self, tasks: &TaskSpawner) {
        self.publisher = Arc::new(TracedPublisher {
            inner: self.publisher,
        });
        let relay = Arc::new(self);
        let stop = tasks.stop_token();
        let publishing = relay.clone().publish_loop(stop.clone());
        tasks.spawn("outbox-relay", OnFailure::Exit, async move {
            publishing.await;
            Ok::<(), Infallible>(())
        });
        let observing = relay.observe_loop(stop);
        tasks.spawn("outbox-metrics", OnFailure::Unready, async move {
            observing.await;
            Ok::<(), Infallible>(())
        });
    }

    async fn publish_loop(self: Arc<Self>, stop: CancellationToken) {
        let published = metrics::counter!("orders_outbox_published_total");
        let errors = metrics::counter!("orders_outbox_publish_errors_total");
        let mut backoff = Duration::from_millis(20);
        loop {
            let woken = self.wake.notified();
            match self
                .store
                .relay_batch(self.batch_size, self.publisher.as_ref(), self.clock.now())
                .await
            {
                Ok(0) => {
                    backoff = Duration::from_millis(20);
                    if stop.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(self.poll_interval) => {}
                        () = stop.cancelled() => {}
                    }
                }
                Ok(n) => {
                    published.increment(n as u64);
                    backoff = Duration::from_millis(20);
                }
                Err(e) => {
                    errors.increment(1);
                    tracing::warn!(error = %e, retry_in = ?backoff, "outbox relay failed; retrying");
                    if stop.is_cancelled() {
                        // Shutdown with the bus down: the rows stay
                        // unpublished and the next start publishes them.
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Backlog gauges every second, purge of old rows every ten minutes.
    async fn observe_loop(self: Arc<Self>, stop: CancellationToken) {
        let backlog = metrics::gauge!("orders_outbox_backlog_events");
        let oldest_age = metrics::gauge!("orders_outbox_oldest_age_seconds");
        let mut since_purge = PURGE_INTERVAL;
        loop {
            if let Ok(now_backlog) = self.store.backlog().await {
                backlog.set(now_backlog.unpublished as f64);
                let age = now_backlog
                    .oldest
                    .map(|at| (self.clock.now() - at).num_milliseconds().max(0) as f64 / 1e3)
                    .unwrap_or(0.0);
                oldest_age.set(age);
            }
            if since_purge >= PURGE_INTERVAL {
                since_purge = Duration::ZERO;
                let now = self.clock.now();
                let before = now - chrono::Duration::from_std(self.retention).unwrap_or_default();
                if let Err(e) = self.store.purge(before, now).await {
                    tracing::warn!(error = %e, "outbox purge failed");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(METRICS_INTERVAL) => since_purge += METRICS_INTERVAL,
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Publishes through `inner`, each event in its own PRODUCER span
/// (OpenTelemetry messaging conventions), and sends the events on with
/// their span's `traceparent`.
struct TracedPublisher {
    inner: Arc<dyn Publisher>,
}

impl TracedPublisher {
    fn hop_of(&self, event: &Event) -> Hop {
        let span = tracing::info_span!(
            "publish",
            otel.name = format!("publish {}", event.subject),
            otel.kind = "producer",
            messaging.system = self.inner.messaging_system(),
            messaging.destination.name = %event.subject,
            messaging.operation.type = "publish",
            messaging.operation.name = "publish",
            messaging.message.id = %event.id,
        );
        let committed_by = event.traceparent.as_deref().and_then(TraceParent::parse);
        Hop::continuing(span, crate::SERVICE, committed_by)
    }
}

#[async_trait]
impl Publisher for TracedPublisher {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        let hops: Vec<Hop> = events.iter().map(|e| self.hop_of(e)).collect();
        let traced: Vec<Event> = events
            .iter()
            .zip(&hops)
            .map(|(event, hop)| Event {
                traceparent: Some(hop.traceparent().to_string()),
                ..event.clone()
            })
            .collect();
        let published = self.inner.publish(&traced).await;
        if let Err(e) = &published {
            let error_type = match e {
                BusError::Unavailable(_) => "unavailable",
                BusError::Malformed(_) => "malformed",
                BusError::Closed => "closed",
                BusError::Config(_) => "config",
            };
            for hop in &hops {
                hop.fail(error_type);
            }
        }
        published
    }

    fn messaging_system(&self) -> &'static str {
        self.inner.messaging_system()
    }
}

/// With the in-process bus: records each acked event as delivered, so a
/// restart re-publishes only what never reached the worker.
pub(crate) fn spawn_delivery_recorder(
    store: Arc<dyn OrderStore>,
    clock: Arc<dyn Clock>,
    mut acked: mpsc::UnboundedReceiver<String>,
    tasks: &TaskSpawner,
) {
    let stop = tasks.stop_token();
    tasks.spawn("delivery-recorder", OnFailure::Unready, async move {
        let mut batch = Vec::new();
        loop {
            let stopping = tokio::select! {
                n = acked.recv_many(&mut batch, 512) => n == 0,
                () = stop.cancelled() => true,
            };
            if stopping {
                // The worker stopped first: record what it acked last.
                while let Ok(id) = acked.try_recv() {
                    batch.push(id);
                }
            }
            let mut backoff = Duration::from_millis(20);
            while let Err(e) = store.mark_delivered(&batch, clock.now()).await {
                tracing::warn!(error = %e, "recording deliveries failed; retrying");
                tokio::time::sleep(backoff).await;
                if stopping && backoff >= MAX_BACKOFF {
                    // Unrecorded deliveries are delivered again after restart.
                    return Ok::<(), Infallible>(());
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            batch.clear();
            if stopping {
                return Ok::<(), Infallible>(());
            }
        }
    });
}
