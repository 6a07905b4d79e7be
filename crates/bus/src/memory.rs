//! The in-process adapter: the bus of `reliable up`, where relay and worker
//! share one process.
//!
//! Each durable consumer has its own queue; events published before any
//! consumer exists wait for the first one. A delivery that is nak'ed comes
//! back after its delay, one dropped unsettled comes back at once.
//!
//! Memory does not survive the process, so durability comes from the
//! outbox: [`InProcessBus::with_ack_feed`] reports every acked event id,
//! the relay records it (`delivered_at`), and on start the relay re-feeds
//! events that were published but never acked. That gives `reliable up`
//! the same at-least-once contract as JetStream.

use crate::{BusError, Delivery, Event, Publisher, Settle, Subscriber, Subscription};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// How long a published id is remembered for de-duplication (JetStream's
/// default duplicate window).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Clone, Default)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    acked: Option<mpsc::UnboundedSender<String>>,
}

#[derive(Default)]
struct State {
    consumers: HashMap<String, Arc<Consumer>>,
    /// Published while no consumer existed.
    backlog: VecDeque<Queued>,
    seen: HashSet<String>,
    seen_order: VecDeque<(Instant, String)>,
}

struct Queued {
    event: Event,
    attempt: u32,
}

#[derive(Default)]
struct Consumer {
    ready: Mutex<VecDeque<Queued>>,
    in_flight: std::sync::atomic::AtomicU64,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Consumer {
    fn push(&self, queued: Queued) {
        lock(&self.ready).push_back(queued);
        self.wake.notify_one();
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus that reports the id of every acked event on the returned
    /// channel.
    pub fn with_ack_feed() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bus = Self {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                acked: Some(tx),
            }),
        };
        (bus, rx)
    }
}

impl State {
    /// True if `id` was published inside the duplicate window.
    fn is_duplicate(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.seen_order.front() {
            if now.duration_since(*at) < DUPLICATE_WINDOW {
                break;
            }
            if let Some((_, old)) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(id) {
            return true;
        }
        self.seen.insert(id.to_string());
        self.seen_order.push_back((now, id.to_string()));
        false
    }
}

#[async_trait]
impl Publisher for InProcessBus {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        for event in events {
            if state.is_duplicate(&event.id, now) {
                continue;
            }
            if state.consumers.is_empty() {
                state.backlog.push_back(Queued {
                    event: event.clone(),
                    attempt: 0,
                });
            }
            for consumer in state.consumers.values() {
                consumer.push(Queued {
                    event: event.clone(),
                    attempt: 0,
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Subscriber for InProcessBus {
    async fn subscribe(&self, durable: &str) -> Result<Box<dyn Subscription>, BusError> {
        let mut state = lock(&self.inner.state);
        let backlog: Vec<Queued> = if state.consumers.is_empty() {
            state.backlog.drain(..).collect()
        } else {
            Vec::new()
        };
        let consumer = state.consumers.entry(durable.to_string()).or_default();
        for queued in backlog {
            consumer.push(queued);
        }
        Ok(Box::new(MemorySubscription {
            consumer: consumer.clone(),
            acked: self.inner.acked.clone(),
        }))
    }
}

struct MemorySubscription {
    consumer: Arc<Consumer>,
    acked: Option<mpsc::UnboundedSender<String>>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let wake = self.consumer.wake.notified();
            let next = lock(&self.consumer.ready).pop_front();
            if let Some(Queued { event, attempt }) = next {
                self.consumer
                    .in_flight
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let attempt = attempt + 1;
                let settle = MemorySettle {
                    consumer: self.consumer.clone(),
                    acked: self.acked.clone(),
                    queued: Some(Queued {
                        event: event.clone(),
                        attempt,
                    }),
                };
                return Ok(Delivery::new(event, attempt, Box::new(settle)));
            }
            wake.await;
        }
    }

    async fn pending(&mut self) -> Option<u64> {
        let ready = lock(&self.consumer.ready).len() as u64;
        Some(
            ready
                + self
                    .consumer
                    .in_flight
                    .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

struct MemorySettle {
    consumer: Arc<Consumer>,
    acked: Option<mpsc::UnboundedSender<String>>,
    /// `None` once settled.
    queued: Option<Queued>,
}

impl MemorySettle {
    fn take(&mut self) -> Option<Queued> {
        let queued = self.queued.take();
        if queued.is_some() {
            self.consumer
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        queued
    }
}

#[async_trait]
impl Settle for MemorySettle {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        if let (Some(queued), Some(acked)) = (self.take(), &self.acked) {
            // The receiver is gone only when the relay stopped; the event
            // is then redelivered after restart, which is allowed.
            let _ = acked.send(queued.event.id);
        }
        Ok(())
    }

    async fn nak(mut self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        if let Some(queued) = self.take() {
            let consumer = self.consumer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                consumer.push(queued);
            });
        }
        Ok(())
    }
}

impl Drop for MemorySettle {
    fn drop(&mut self) {
        if let Some(queued) = self.take() {
            self.consumer.push(queued);
        }
    }
}
