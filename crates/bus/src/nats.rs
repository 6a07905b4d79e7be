//! The NATS JetStream adapter: the bus of `reliable serve`.
//!
//! Events go to one file-backed stream (`ORDERS` by default) on subjects
//! `<prefix>.<event>`, with the event id as `Nats-Msg-Id` so a republished
//! event inside the duplicate window is stored once. The worker reads
//! through a durable pull consumer with explicit acks: a message not acked
//! within `ack_wait` (the worker died) is delivered again, and JetStream
//! counts the deliveries for the retry policy.

use crate::{headers, BusError, Delivery, Event, Publisher, Settle, Subscriber, Subscription};
use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_nats::HeaderMap;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::time::Duration;

/// Where the stream lives and how it behaves.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    pub url: String,
    /// Stream name, e.g. `ORDERS`.
    pub stream: String,
    /// Subjects the stream captures: `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// Re-publishing an event id within this window is a no-op.
    pub duplicate_window: Duration,
    /// An unacked delivery comes back after this long.
    pub ack_wait: Duration,
    /// How long a publish waits for the stream's acknowledgement.
    pub publish_timeout: Duration,
}

impl JetStreamConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "ORDERS".into(),
            subject_prefix: "orders".into(),
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection to JetStream with the stream created.
#[derive(Clone)]
pub struct JetStreamBus {
    context: jetstream::Context,
    client: async_nats::Client,
    config: JetStreamConfig,
}

impl JetStreamBus {
    /// Connects (retrying in the background if the server is not up yet is
    /// the client's job after the first connection) and creates the stream
    /// if it does not exist.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, BusError> {
        // A `tls://` URL needs a process-wide rustls provider; this build
        // links two (ring here, aws-lc-rs for the webhook client).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = async_nats::ConnectOptions::new()
            .name("reliable")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .connect(config.url.as_str())
            .await
            .map_err(BusError::unavailable)?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(config.publish_timeout);
        let bus = Self {
            context,
            client,
            config,
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    async fn ensure_stream(&self) -> Result<stream::Stream, BusError> {
        self.context
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(BusError::unavailable)
    }

    /// True while the client is connected to the server.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

fn headers_of(event: &Event) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(headers::MSG_ID, event.id.as_str());
    map.insert(headers::KEY, event.key.as_str());
    map.insert(
        headers::OCCURRED_AT,
        event.occurred_at.to_rfc3339().as_str(),
    );
    if let Some(tp) = &event.traceparent {
        map.insert(headers::TRACEPARENT, tp.as_str());
    }
    map
}

#[async_trait]
impl Publisher for JetStreamBus {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        // Pipelined: send every message, then wait for the acks in order.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let ack = self
                .context
                .publish_with_headers(
                    event.subject.clone(),
                    headers_of(event),
                    event.payload.clone(),
                )
                .await
                .map_err(BusError::unavailable)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(BusError::unavailable)?;
        }
        Ok(())
    }

    fn messaging_system(&self) -> &'static str {
        NATS_SYSTEM
    }
}

/// `messaging.system` of JetStream (not in the conventions' list of
/// well-known values, which allows others).
const NATS_SYSTEM: &str = "nats";

#[async_trait]
impl Subscriber for JetStreamBus {
    fn messaging_system(&self) -> &'static str {
        NATS_SYSTEM
    }

    async fn subscribe(&self, durable: &str) -> Result<Box<dyn Subscription>, BusError> {
        let stream = self.ensure_stream().await?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    filter_subject: format!("{}.>", self.config.subject_prefix),
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::unavailable)?;
        Ok(Box::new(JetStreamSubscription {
            consumer,
            messages: None,
        }))
    }
}

struct JetStreamSubscription {
    consumer: consumer::PullConsumer,
    messages: Option<consumer::pull::Stream>,
}

fn event_of(message: &jetstream::Message) -> Result<Event, BusError> {
    let headers = message
        .headers
        .as_ref()
        .ok_or_else(|| BusError::Malformed("no headers".into()))?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let id = header(headers::MSG_ID).ok_or_else(|| BusError::Malformed("no message id".into()))?;
    let occurred_at = header(headers::OCCURRED_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| BusError::Malformed(format!("event {id}: no occurred-at")))?;
    Ok(Event {
        key: header(headers::KEY).unwrap_or_default(),
        traceparent: header(headers::TRACEPARENT),
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
        occurred_at,
        id,
    })
}

#[async_trait]
impl Subscription for JetStreamSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => {
                    let messages = self
                        .consumer
                        .messages()
                        .await
                        .map_err(BusError::unavailable)?;
                    self.messages.insert(messages)
                }
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    let attempt = message
                        .info()
                        .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
                        .unwrap_or(1);
                    let event = match event_of(&message) {
                        Ok(event) => event,
                        Err(e) => {
                            // Not ours to retry: terminate so it never comes back.
                            tracing::error!(error = %e, subject = %message.subject, "dropping malformed message");
                            let _ = message.ack_with(AckKind::Term).await;
                            continue;
                        }
                    };
                    return Ok(Delivery::new(
                        event,
                        attempt,
                        Box::new(JetStreamSettle(message)),
                    ));
                }
                Some(Err(e)) => {
                    // Missed heartbeats or a reconnect: start a fresh pull.
                    self.messages = None;
                    return Err(BusError::unavailable(e));
                }
                None => {
                    self.messages = None;
                    return Err(BusError::Unavailable("message stream ended".into()));
                }
            }
        }
    }

    async fn pending(&mut self) -> Option<u64> {
        self.consumer.info().await.ok().map(|info| info.num_pending)
    }
}

struct JetStreamSettle(jetstream::Message);

#[async_trait]
impl Settle for JetStreamSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        // Double ack: the server confirms, so an ack lost in a broker
        // restart shows up here (and the redelivery is a no-op upstream).
        self.0.double_ack().await.map_err(BusError::unavailable)
    }

    async fn nak(self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        self.0
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(BusError::unavailable)
    }
}
