//! The NATS JetStream adapter: the bus of `reliable serve`.
//!
//! Events go to one file-backed stream (`ORDERS` by default) on subjects
//! `<prefix>.<event>`, with the event id as `Nats-Msg-Id` so a republished
//! event inside the duplicate window is stored once. The worker reads
//! through a durable pull consumer with explicit acks: a message not acked
//! within `ack_wait` (the worker died) is delivered again, and JetStream
//! counts the deliveries for the retry policy.
//!
//! - `servers`: the comma-separated server list, shown without credentials;
//! - `stream`: creating the stream with its replica count, updating it, and
//!   saying why JetStream refused.
//!
//! In a cluster the stream's leader can move (a node killed or restarted):
//! until a new leader is elected, publishes fail fast ("no responders") or
//! time out, and the relay retries them (the duplicate window makes a
//! publish that did land a no-op); the pull consumer notices the silence by
//! its idle heartbeat and pulls again from the new leader.
//!
//! A publish waiting for its acknowledgement when the connection drops
//! (the node the client is on stopped) fails at once instead of waiting
//! out `publish_timeout`: the message or its acknowledgement went with the
//! connection, and the relay publishes again on the next one.

mod servers;
mod stream;

use crate::{headers, BusError, Delivery, Event, Publisher, Settle, Subscriber, Subscription};
use async_nats::jetstream::{self, consumer, AckKind};
use async_nats::HeaderMap;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use servers::Servers;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OnceCell};

/// Where the stream lives and how it behaves.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// One NATS URL or several, comma-separated; may carry credentials,
    /// so it is never logged.
    pub url: String,
    /// Stream name, e.g. `ORDERS`.
    pub stream: String,
    /// Subjects the stream captures: `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// Servers that keep a copy of every message (1 on a single server,
    /// 3 on a three-node cluster); consumers inherit it.
    pub replicas: usize,
    /// Re-publishing an event id within this window is a no-op.
    pub duplicate_window: Duration,
    /// An unacked delivery comes back after this long.
    pub ack_wait: Duration,
    /// How long a publish waits for the stream's acknowledgement.
    pub publish_timeout: Duration,
    /// The server sends an idle heartbeat this often on a pull; two
    /// missed (the consumer's leader died) start a fresh pull.
    pub pull_heartbeat: Duration,
}

impl JetStreamConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "ORDERS".into(),
            subject_prefix: "orders".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(5),
            pull_heartbeat: Duration::from_secs(1),
        }
    }
}

/// A connection to JetStream with the stream created.
#[derive(Clone)]
pub struct JetStreamBus {
    context: jetstream::Context,
    client: async_nats::Client,
    config: JetStreamConfig,
    /// Set once the stream is known to exist as configured; until then
    /// (no server answered at start) the first publish checks it.
    stream_ready: Arc<OnceCell<()>>,
    /// Counts the connection's losses (the client's `Disconnected`
    /// events); kept here so that the count outlives any receiver.
    disconnects: Arc<watch::Sender<u64>>,
}

/// Where the stream lives now, as JetStream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The configured replica count.
    pub replicas: usize,
    /// The server that leads the stream (orders its writes).
    pub leader: Option<String>,
    /// The other servers holding a copy.
    pub followers: Vec<String>,
}

impl JetStreamBus {
    /// Connects to any server of the list and makes sure the stream
    /// exists with its replica count.
    ///
    /// When no server of the list answers, that is logged as an error and
    /// the client keeps trying in the background: the process starts (the
    /// outbox accepts events) and the stream is checked on first use. A
    /// stream JetStream refuses (more replicas than servers) is an error
    /// here when a server answers at start.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, BusError> {
        // A `tls://` URL needs a process-wide rustls provider; this build
        // links two (ring here, aws-lc-rs for the webhook client).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let servers = Servers::parse(&config.url)?;
        let disconnects = Arc::new(watch::Sender::new(0u64));
        let options = || {
            let disconnects = disconnects.clone();
            async_nats::ConnectOptions::new()
                .name("reliable")
                .connection_timeout(Duration::from_secs(5))
                .max_reconnects(None)
                .event_callback(move |event| {
                    if matches!(event, async_nats::Event::Disconnected) {
                        disconnects.send_modify(|lost| *lost += 1);
                    }
                    std::future::ready(())
                })
        };
        let client = match options().connect(servers.addrs()).await {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(
                    servers = %servers.shown(),
                    error = %e,
                    "none of the {} NATS servers in the list answers ({}); connecting in the \
                     background, events wait in the outbox until one does",
                    servers.len(),
                    servers.shown()
                );
                options()
                    .retry_on_initial_connect()
                    .connect(servers.addrs())
                    .await
                    .map_err(BusError::unavailable)?
            }
        };
        let mut context = jetstream::new(client.clone());
        context.set_timeout(config.publish_timeout);
        let bus = Self {
            context,
            client,
            config,
            stream_ready: Arc::new(OnceCell::new()),
            disconnects,
        };
        if bus.is_connected() {
            match bus.stream_ready().await {
                Ok(()) => {}
                Err(e @ BusError::Config(_)) => return Err(e),
                // A cluster still electing its leader: checked on first use.
                Err(e) => tracing::warn!(error = %e, "stream not checked yet; will retry"),
            }
        }
        Ok(bus)
    }

    /// Ensures the stream once per process (again after a failure).
    async fn stream_ready(&self) -> Result<(), BusError> {
        self.stream_ready
            .get_or_try_init(|| async { self.ensure_stream().await.map(|_| ()) })
            .await
            .map(|_| ())
    }

    /// True while the client is connected to the server.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The stream's replica count, leader and followers now.
    pub async fn placement(&self) -> Result<Placement, BusError> {
        let mut stream = self
            .context
            .get_stream(&self.config.stream)
            .await
            .map_err(BusError::unavailable)?;
        let info = stream.info().await.map_err(BusError::unavailable)?;
        let cluster = info.cluster.clone().unwrap_or_default();
        Ok(Placement {
            replicas: info.config.num_replicas,
            leader: cluster.leader,
            followers: cluster.replicas.into_iter().map(|p| p.name).collect(),
        })
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
        self.stream_ready().await?;
        // A loss of the connection from here on fails the acks' wait.
        let mut lost = self.disconnects.subscribe();
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
            tokio::select! {
                biased;
                acked = ack.into_future() => {
                    acked.map_err(BusError::unavailable)?;
                }
                // The sender lives in `self`, so this only ends on a loss.
                _ = lost.changed() => return Err(BusError::Unavailable(
                    "the connection to NATS dropped before the stream acknowledged the publish"
                        .into(),
                )),
            }
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
            heartbeat: self.config.pull_heartbeat,
        }))
    }
}

struct JetStreamSubscription {
    consumer: consumer::PullConsumer,
    messages: Option<consumer::pull::Stream>,
    heartbeat: Duration,
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
                    // Short pulls with frequent heartbeats: a pull left with
                    // a dead leader is noticed in two heartbeats.
                    let messages = self
                        .consumer
                        .stream()
                        .expires(self.heartbeat * 10)
                        .heartbeat(self.heartbeat)
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
