//! The in-process adapter: the bus of `reliable up`, where relay and worker
//! share one process.
//!
//! Each durable consumer has its own queue; events published before any
//! consumer exists wait for the first one. A delivery that is nak'ed comes
//! back after its delay, one dropped unsettled comes back at once.
//!
//! A nak'ed delivery waits in the consumer's own state with the instant it
//! is due, not in a timer task: a task could die or be dropped and lose the
//! redelivery unseen, and shutdown could not account for it. Receiving
//! moves due deliveries to the ready queue (as does publishing, so a
//! redelivery keeps its place among events published after it fell due),
//! and a receiver with nothing ready sleeps until the earliest is due.
//!
//! Memory does not survive the process, so durability comes from the
//! outbox: [`InProcessBus::with_ack_feed`] reports every acked event id,
//! the relay records it (`delivered_at`), and on start the relay re-feeds
//! events that were published but never acked. That gives `reliable up`
//! the same at-least-once contract as JetStream.

use crate::{BusError, Delivery, Event, Publisher, Settle, Subscriber, Subscription};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// How long a published id is remembered for de-duplication (JetStream's
/// default duplicate window).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where a nak's delay is capped: about thirty years.
const FOREVER: Duration = Duration::from_secs(86_400 * 365 * 30);

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
    queues: Mutex<Queues>,
    in_flight: std::sync::atomic::AtomicU64,
    wake: Notify,
}

#[derive(Default)]
struct Queues {
    ready: VecDeque<Queued>,
    /// Nak'ed deliveries by due instant; the sequence number keeps those
    /// due at the same instant in nak order.
    delayed: BTreeMap<(Instant, u64), Queued>,
    next_sequence: u64,
}

impl Queues {
    /// Moves every delayed delivery due at `now` to the ready queue,
    /// earliest first.
    fn release_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let queued = entry.remove();
            self.ready.push_back(queued);
        }
    }

    fn earliest_due(&self) -> Option<Instant> {
        self.delayed.first_key_value().map(|((due, _), _)| *due)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Consumer {
    fn push(&self, queued: Queued) {
        let mut queues = lock(&self.queues);
        queues.release_due(Instant::now());
        queues.ready.push_back(queued);
        drop(queues);
        self.wake.notify_one();
    }

    /// Holds `queued` back until `due`.
    fn push_delayed(&self, queued: Queued, due: Instant) {
        let mut queues = lock(&self.queues);
        let sequence = queues.next_sequence;
        queues.next_sequence += 1;
        queues.delayed.insert((due, sequence), queued);
        drop(queues);
        // A waiting receiver learns of the new (perhaps earlier) due time.
        self.wake.notify_one();
    }

    /// The next ready delivery, and otherwise when the earliest delayed
    /// one falls due.
    fn pop(&self) -> (Option<Queued>, Option<Instant>) {
        let mut queues = lock(&self.queues);
        queues.release_due(Instant::now());
        (queues.ready.pop_front(), queues.earliest_due())
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
            let (next, earliest_due) = self.consumer.pop();
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
            match earliest_due {
                Some(due) => {
                    tokio::select! {
                        () = wake => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => wake.await,
            }
        }
    }

    async fn pending(&mut self) -> Option<u64> {
        // Delayed deliveries count once due, as they did when a timer put
        // them back in the queue.
        let ready = {
            let mut queues = lock(&self.consumer.queues);
            queues.release_due(Instant::now());
            queues.ready.len() as u64
        };
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
            let now = Instant::now();
            // A delay too long to represent is as good as forever (tokio's
            // own sleep caps the same way).
            let due = now.checked_add(delay).unwrap_or(now + FOREVER);
            self.consumer.push_delayed(queued, due);
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

#[cfg(test)]
mod tests;
