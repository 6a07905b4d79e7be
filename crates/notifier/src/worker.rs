//! The notification worker: reads events from the durable consumer and
//! sends each to its channels, with exactly-once effect as far as the
//! processed-events table can give it.
//!
//! Per delivery: skip (ack) if the event is already processed; otherwise
//! send to every channel that wants it; on success record the event as
//! processed, retrying the record until it is durable, and only then ack.
//! A failure is nak'ed with exponential backoff and jitter, so the bus
//! redelivers it; after `max_attempts` deliveries (or a permanent failure)
//! the event goes to the dead-letter store, which also marks it processed.
//! A crash between a webhook POST and its record is the one way a receiver
//! sees an event twice: it de-duplicates on `Reliable-Event-Id`.
//!
//! Deliveries run concurrently, so a second delivery of an event can
//! arrive while the first is still sending (JetStream redelivers once its
//! ack wait passes, or after a broker restart, while the worker is busy).
//! The table cannot catch that: the event is not processed yet. The worker
//! therefore claims an event id for the time it handles it; a delivery of
//! an id already claimed is nak'ed for a short delay and comes back when
//! the first has settled, as a skip or as a retry. The claim is per
//! process: two replicas only race if a send outlives the ack wait.

use crate::channel::{Channel, DeliveryError};
use crate::storage::NotificationStore;
use bus::{Delivery, Event, Subscriber, Subscription};
use kit::telemetry::Hop;
use kit::trace_context::TraceParent;
use kit::{CancellationToken, Clock, TaskTracker};
use rand::Rng;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

const LAG_INTERVAL: Duration = Duration::from_secs(1);
const STORE_RETRY_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay after the `attempt`-th failure: `base * 2^(attempt-1)` capped at
    /// `max`, then a uniformly random share of it between 50% and 100%
    /// ("equal jitter"), so retries of many events spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let capped = exp.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

pub(crate) struct Worker {
    pub store: Arc<dyn NotificationStore>,
    pub channels: Vec<Arc<dyn Channel>>,
    pub clock: Arc<dyn Clock>,
    pub policy: RetryPolicy,
    pub metrics: Metrics,
    pub claims: Claims,
}

/// Event ids being handled in this process (see the module doc).
#[derive(Default)]
pub(crate) struct Claims(Arc<Mutex<HashSet<String>>>);

/// Holds an event id's claim until dropped.
struct Claim {
    ids: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Claims {
    /// The claim on `id`, or None while another delivery holds it.
    fn take(&self, id: &str) -> Option<Claim> {
        let mut ids = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ids.insert(id.to_string()).then(|| Claim {
            ids: self.0.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.remove(&self.id);
    }
}

pub(crate) struct Metrics {
    pub end_to_end: metrics::Histogram,
    pub duplicates: metrics::Counter,
    pub deferred: metrics::Counter,
    pub dead_letters: metrics::Gauge,
    pub lag: metrics::Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            end_to_end: metrics::histogram!("notifier_end_to_end_duration_seconds"),
            duplicates: metrics::counter!("notifier_duplicates_skipped_total"),
            deferred: metrics::counter!("notifier_deliveries_deferred_total"),
            dead_letters: metrics::gauge!("notifier_dead_letters"),
            lag: metrics::gauge!("notifier_consumer_lag_messages"),
        }
    }
}

fn attempt_counter(channel: &'static str, outcome: &'static str) -> metrics::Counter {
    metrics::counter!("notifier_delivery_attempts_total", "channel" => channel, "outcome" => outcome)
}

impl Worker {
    /// Sends `event` to every channel that wants it. Used for deliveries
    /// and for operator replays of dead letters.
    pub async fn send(&self, event: &Event) -> Result<(), DeliveryError> {
        for channel in &self.channels {
            if !channel.wants(event) {
                continue;
            }
            match channel.send(event).await {
                Ok(()) => attempt_counter(channel.name(), "success").increment(1),
                Err(e) => {
                    let outcome = match e {
                        DeliveryError::Retryable(_) => "retryable_error",
                        DeliveryError::Permanent(_) => "permanent_error",
                    };
                    attempt_counter(channel.name(), outcome).increment(1);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Runs until `stop`, then waits for in-flight deliveries.
    pub async fn run(
        self: Arc<Self>,
        subscriber: Arc<dyn Subscriber>,
        consumer: String,
        concurrency: usize,
        stop: CancellationToken,
    ) {
        if let Ok(n) = self.store.dead_count().await {
            self.metrics.dead_letters.set(n as f64);
        }
        let system = subscriber.messaging_system();
        let in_flight = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut backoff = Duration::from_millis(50);
        'subscribe: while !stop.is_cancelled() {
            let mut subscription = match subscriber.subscribe(&consumer).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe; retrying");
                    self.pause(&mut backoff, &stop).await;
                    continue;
                }
            };
            let mut lag_tick = tokio::time::interval(LAG_INTERVAL);
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break 'subscribe;
                };
                let next = tokio::select! {
                    next = subscription.next() => next,
                    _ = lag_tick.tick() => {
                        self.observe_lag(subscription.as_mut()).await;
                        continue;
                    }
                    () = stop.cancelled() => break 'subscribe,
                };
                match next {
                    Ok(delivery) => {
                        backoff = Duration::from_millis(50);
                        let worker = self.clone();
                        let stop = stop.clone();
                        in_flight.spawn(async move {
                            worker.handle(delivery, system, &stop).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "receiving from the bus failed; retrying");
                        self.pause(&mut backoff, &stop).await;
                        if matches!(e, bus::BusError::Closed) {
                            continue 'subscribe;
                        }
                    }
                }
            }
        }
        in_flight.close();
        in_flight.wait().await;
    }

    async fn observe_lag(&self, subscription: &mut dyn Subscription) {
        if let Some(pending) = subscription.pending().await {
            self.metrics.lag.set(pending as f64);
        }
    }

    async fn pause(&self, backoff: &mut Duration, stop: &CancellationToken) {
        tokio::select! {
            () = tokio::time::sleep(*backoff) => {}
            () = stop.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(STORE_RETRY_MAX);
    }

    /// Processes one delivery in a CONSUMER span (OpenTelemetry messaging
    /// conventions) that continues the message's trace: its log lines and
    /// webhook calls belong to the trace of the request that caused it.
    async fn handle(&self, delivery: Delivery, system: &'static str, stop: &CancellationToken) {
        let event = &delivery.event;
        let span = tracing::info_span!(
            "process",
            otel.name = format!("process {}", event.subject),
            otel.kind = "consumer",
            messaging.system = system,
            messaging.destination.name = %event.subject,
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.message.id = %event.id,
            event_id = %event.id,
        );
        let published_by = event.traceparent.as_deref().and_then(TraceParent::parse);
        let hop = Hop::continuing(span, crate::SERVICE, published_by);
        hop.run(self.handle_in_span(delivery, stop)).await;
    }

    async fn handle_in_span(&self, delivery: Delivery, stop: &CancellationToken) {
        let event = delivery.event.clone();
        let Some(_claim) = self.claims.take(&event.id) else {
            tracing::debug!("another delivery of this event is in flight; deferred");
            self.metrics.deferred.increment(1);
            settle(delivery.nak(self.policy.base).await);
            return;
        };
        match self.store.is_processed(&event.id).await {
            Ok(true) => {
                self.metrics.duplicates.increment(1);
                settle(delivery.ack().await);
                return;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "processed-events lookup failed; will retry");
                settle(delivery.nak(self.policy.base).await);
                return;
            }
        }
        let attempt = delivery.attempt.max(1);
        match self.send(&event).await {
            Ok(()) => {
                let recorded = self
                    .until_stored(stop, || {
                        self.store.mark_processed(&event.id, self.clock.now())
                    })
                    .await;
                if recorded {
                    let latency = (self.clock.now() - event.occurred_at)
                        .to_std()
                        .unwrap_or_default();
                    self.metrics.end_to_end.record(latency.as_secs_f64());
                    settle(delivery.ack().await);
                }
            }
            Err(e)
                if matches!(e, DeliveryError::Permanent(_))
                    || attempt >= self.policy.max_attempts =>
            {
                tracing::warn!(error = %e, attempt, "notification failed for good; dead-lettered");
                let message = e.to_string();
                let stored = self
                    .until_stored(stop, || {
                        self.store
                            .dead_letter(&event, attempt, &message, self.clock.now())
                    })
                    .await;
                if stored {
                    self.metrics.dead_letters.increment(1.0);
                    settle(delivery.ack().await);
                }
            }
            Err(e) => {
                let delay = self.policy.backoff(attempt);
                tracing::info!(error = %e, attempt, retry_in = ?delay, "notification failed; will retry");
                settle(delivery.nak(delay).await);
            }
        }
    }

    /// Retries a store write until it succeeds (a database restart must not
    /// turn a delivered notification into a duplicate) or the process
    /// stops; false if it gave up.
    async fn until_stored<F, Fut>(&self, stop: &CancellationToken, mut write: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::storage::StoreError>>,
    {
        let mut backoff = Duration::from_millis(20);
        loop {
            match write().await {
                Ok(()) => return true,
                Err(e) if !stop.is_cancelled() => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "notification store write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(STORE_RETRY_MAX);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stopping before the notification was recorded; it will be redelivered");
                    return false;
                }
            }
        }
    }
}

/// An ack or nak that fails (broker gone) is harmless: the message comes
/// back and the processed-events table turns it into a no-op.
fn settle(result: Result<(), bus::BusError>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "settling a delivery failed; it will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use tokio::sync::Notify;

    /// A channel that counts sends and holds each until the gate opens.
    #[derive(Default)]
    struct GatedChannel {
        sends: Mutex<u32>,
        entered: Notify,
        gate: Notify,
    }

    #[async_trait]
    impl Channel for GatedChannel {
        fn name(&self) -> &'static str {
            "gated"
        }
        fn wants(&self, _: &Event) -> bool {
            true
        }
        async fn send(&self, _: &Event) -> Result<(), DeliveryError> {
            *self.sends.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            self.entered.notify_one();
            self.gate.notified().await;
            Ok(())
        }
    }

    /// Records how each delivery was settled.
    struct Recorder(Arc<Mutex<Vec<&'static str>>>);

    #[async_trait]
    impl bus::Settle for Recorder {
        async fn ack(self: Box<Self>) -> Result<(), bus::BusError> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push("ack");
            Ok(())
        }
        async fn nak(self: Box<Self>, _: Duration) -> Result<(), bus::BusError> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push("nak");
            Ok(())
        }
    }

    fn twin() -> Event {
        Event {
            id: "twin".into(),
            subject: "orders.created".into(),
            key: "ord_1".into(),
            payload: "{}".into(),
            traceparent: None,
            occurred_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_second_delivery_while_the_first_is_sending_is_deferred_not_sent() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let store = crate::storage::connect(&url, &Default::default())
            .await
            .expect("store");
        let channel = Arc::new(GatedChannel::default());
        let worker = Arc::new(Worker {
            store: store.clone(),
            channels: vec![channel.clone()],
            clock: Arc::new(kit::SystemClock),
            policy: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            metrics: Metrics::new(),
            claims: Claims::default(),
        });
        let settled = Arc::new(Mutex::new(Vec::new()));
        let delivery =
            |attempt| Delivery::new(twin(), attempt, Box::new(Recorder(settled.clone())));
        let stop = CancellationToken::new();

        let first = worker.handle_in_span(delivery(1), &stop);
        let second = async {
            channel.entered.notified().await;
            // The redelivery arrives while the first is inside its send.
            // Were it sent too, it would wait at the gate: bounded, so
            // that shows as a failure rather than a hang.
            tokio::time::timeout(
                Duration::from_secs(10),
                worker.handle_in_span(delivery(2), &stop),
            )
            .await
            .expect("the second delivery was sent while the first was");
            assert_eq!(*settled.lock().expect("settled"), ["nak"]);
            channel.gate.notify_one();
        };
        tokio::join!(first, second);
        assert_eq!(*settled.lock().expect("settled"), ["nak", "ack"]);
        // When the deferred delivery comes back, it is a skip.
        worker.handle_in_span(delivery(3), &stop).await;
        assert_eq!(*settled.lock().expect("settled"), ["nak", "ack", "ack"]);
        assert_eq!(*channel.sends.lock().expect("sends"), 1);
        assert!(store.is_processed("twin").await.expect("lookup"));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = policy.backoff(3);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let late = policy.backoff(40);
            assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&late));
        }
    }
}
