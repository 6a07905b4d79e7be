//! The event-bus port: how order events travel from the outbox relay to the
//! notification worker.
//!
//! The contract both adapters keep (and `tests/conformance.rs` checks):
//! - [`Publisher::publish`] returns only once the bus holds the event (for
//!   JetStream: the stream acknowledged it), so the relay may mark the
//!   outbox row published afterwards;
//! - publishing the same [`Event::id`] twice inside the duplicate window
//!   stores it once (JetStream's `Nats-Msg-Id`), so a relay that crashed
//!   between publish and mark does not duplicate;
//! - delivery is at least once through a named durable consumer: a delivery
//!   that is not acked (nak, or dropped) comes back, with its attempt count;
//! - one consumer sees events in publish order (redeliveries aside).
//!
//! - [`memory`]: the in-process adapter for `reliable up` and tests;
//! - [`nats`]: the NATS JetStream adapter for `reliable serve`.
#![forbid(unsafe_code)]

pub mod memory;
pub mod nats;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub use memory::InProcessBus;
pub use nats::{JetStreamBus, JetStreamConfig, Placement};

/// The ids the in-process bus reports as acked
/// ([`InProcessBus::with_ack_feed`]), handed to the outbox owner as a port.
pub struct AckFeed(pub tokio::sync::mpsc::UnboundedReceiver<String>);

/// Header names carried with every event, on every adapter.
pub mod headers {
    /// JetStream's de-duplication header; set to the event id.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const TRACEPARENT: &str = "traceparent";
    pub const OCCURRED_AT: &str = "Reliable-Occurred-At";
    pub const KEY: &str = "Reliable-Key";
}

/// One event as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Globally unique; the de-duplication key end to end (outbox row,
    /// `Nats-Msg-Id`, processed-message table, webhook header).
    pub id: String,
    /// e.g. `orders.created`.
    pub subject: String,
    /// The ordering key (the order id): events of one key are published in
    /// the order they were committed.
    pub key: String,
    /// JSON body.
    pub payload: Bytes,
    /// W3C trace context of the request that caused the event.
    pub traceparent: Option<String>,
    /// When the change that produced the event committed.
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker is unreachable or did not acknowledge in time: retry later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// A message on the bus lacks what an [`Event`] needs; it is not retried.
    #[error("malformed message on the bus: {0}")]
    Malformed(String),
    #[error("event bus closed")]
    Closed,
    /// The bus's configuration cannot work against this broker (a server
    /// list that does not parse, more stream replicas than servers): an
    /// operator has to change it; retrying does not help.
    #[error("event bus configuration: {0}")]
    Config(String),
}

impl BusError {
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The relay's side of the bus.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `events` in order; returns once the bus holds all of them.
    /// On error some may have been stored: publishing them again is safe
    /// (de-duplicated by id).
    async fn publish(&self, events: &[Event]) -> Result<(), BusError>;

    /// The `messaging.system` attribute of the spans around this bus
    /// (OpenTelemetry messaging conventions); the in-process bus keeps
    /// the default.
    fn messaging_system(&self) -> &'static str {
        IN_PROCESS_SYSTEM
    }
}

/// `messaging.system` of the in-process bus.
pub const IN_PROCESS_SYSTEM: &str = "in_process";

/// The worker's side of the bus.
#[async_trait]
pub trait Subscriber: Send + Sync + 'static {
    /// Attaches to (creating if needed) the durable consumer `durable`.
    async fn subscribe(&self, durable: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// As [`Publisher::messaging_system`].
    fn messaging_system(&self) -> &'static str {
        IN_PROCESS_SYSTEM
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next delivery; waits until there is one.
    async fn next(&mut self) -> Result<Delivery, BusError>;
    /// Messages waiting for this consumer (lag), when the adapter knows.
    async fn pending(&mut self) -> Option<u64>;
}

/// One delivery of an event. Settle it with [`Delivery::ack`] once its
/// effect is durable, or [`Delivery::nak`] to have it come back later;
/// dropped unsettled, it comes back too (in-process at once, JetStream
/// after the consumer's ack wait).
pub struct Delivery {
    pub event: Event,
    /// 1 on first delivery, counting redeliveries.
    pub attempt: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    pub fn new(event: Event, attempt: u32, settle: Box<dyn Settle>) -> Self {
        Self {
            event,
            attempt,
            settle,
        }
    }

    /// Confirms processing; the bus will not deliver this event again to
    /// this consumer.
    pub async fn ack(self) -> Result<(), BusError> {
        self.settle.ack().await
    }

    /// Asks for redelivery after `delay`.
    pub async fn nak(self, delay: Duration) -> Result<(), BusError> {
        self.settle.nak(delay).await
    }
}

/// How an adapter settles one delivery.
#[async_trait]
pub trait Settle: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    async fn nak(self: Box<Self>, delay: Duration) -> Result<(), BusError>;
}
