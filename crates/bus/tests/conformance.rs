//! One conformance suite for the event bus, run against the in-process
//! adapter and against a real NATS JetStream server that the harness
//! starts privately (one server per test, so streams never mix).

use bus::{
    Delivery, Event, InProcessBus, JetStreamBus, JetStreamConfig, Publisher, Subscriber,
    Subscription,
};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use testkit::NatsServer;

/// A bus under test; keeps its server alive.
struct Bus {
    publisher: Arc<dyn Publisher>,
    subscriber: Arc<dyn Subscriber>,
    _server: Option<NatsServer>,
}

fn in_process() -> Bus {
    let bus = InProcessBus::new();
    Bus {
        publisher: Arc::new(bus.clone()),
        subscriber: Arc::new(bus),
        _server: None,
    }
}

async fn jetstream() -> Bus {
    let server = NatsServer::start();
    // A delivery left unsettled by a subscription that went away (a crashed
    // worker) comes back after ack_wait; short here to keep tests quick.
    let config = JetStreamConfig {
        ack_wait: Duration::from_secs(1),
        ..JetStreamConfig::new(server.url())
    };
    let bus = JetStreamBus::connect(config).await.expect("connect");
    Bus {
        publisher: Arc::new(bus.clone()),
        subscriber: Arc::new(bus),
        _server: Some(server),
    }
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-02T03:04:05.123456Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn event(id: &str) -> Event {
    Event {
        id: id.to_string(),
        subject: "orders.created".into(),
        key: format!("order-of-{id}"),
        payload: format!("{{\"id\":\"{id}\"}}").into(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        occurred_at: at(),
    }
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match sub.next().await {
                Ok(delivery) => return delivery,
                Err(e) => eprintln!("retrying after: {e}"),
            }
        }
    })
    .await
    .expect("a delivery within 20 s")
}

/// Nothing is delivered for a while (bounded): used after acking everything.
async fn assert_quiet(sub: &mut Box<dyn Subscription>) {
    let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    if let Ok(Ok(delivery)) = got {
        panic!("unexpected delivery of {}", delivery.event.id);
    }
}

async fn delivers_in_publish_order_with_headers(bus: Bus) {
    let events: Vec<Event> = (1..=5).map(|i| event(&format!("e{i}"))).collect();
    bus.publisher.publish(&events).await.expect("publish");
    let mut sub = bus.subscriber.subscribe("worker").await.expect("subscribe");
    for expected in &events {
        let delivery = next(&mut sub).await;
        assert_eq!(&delivery.event, expected);
        assert_eq!(delivery.attempt, 1);
        delivery.ack().await.expect("ack");
    }
    assert_quiet(&mut sub).await;
}

async fn republished_ids_are_stored_once(bus: Bus) {
    bus.publisher
        .publish(&[event("a"), event("b")])
        .await
        .expect("publish");
    // A relay that crashed before marking publishes the same events again.
    bus.publisher
        .publish(&[event("a"), event("b"), event("c")])
        .await
        .expect("republish");
    let mut sub = bus.subscriber.subscribe("worker").await.expect("subscribe");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut sub).await;
        ids.push(delivery.event.id.clone());
        delivery.ack().await.expect("ack");
    }
    assert_eq!(ids, ["a", "b", "c"]);
    assert_quiet(&mut sub).await;
}

async fn nak_redelivers_with_the_attempt_count(bus: Bus) {
    bus.publisher.publish(&[event("n")]).await.expect("publish");
    let mut sub = bus.subscriber.subscribe("worker").await.expect("subscribe");
    let first = next(&mut sub).await;
    assert_eq!(first.attempt, 1);
    first.nak(Duration::from_millis(10)).await.expect("nak");
    let second = next(&mut sub).await;
    assert_eq!(second.event.id, "n");
    assert_eq!(second.attempt, 2);
    second.ack().await.expect("ack");
    assert_quiet(&mut sub).await;
}

async fn a_durable_consumer_resumes_after_the_last_ack(bus: Bus) {
    bus.publisher
        .publish(&[event("r1"), event("r2")])
        .await
        .expect("publish");
    {
        let mut sub = bus.subscriber.subscribe("worker").await.expect("subscribe");
        let d = next(&mut sub).await;
        assert_eq!(d.event.id, "r1");
        d.ack().await.expect("ack");
    }
    bus.publisher
        .publish(&[event("r3")])
        .await
        .expect("publish");
    let mut sub = bus
        .subscriber
        .subscribe("worker")
        .await
        .expect("resubscribe");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = next(&mut sub).await;
        ids.push(d.event.id.clone());
        d.ack().await.expect("ack");
    }
    // r2 was handed to the first subscription unacked: it comes back
    // (after ack_wait on JetStream), possibly after r3.
    ids.sort();
    assert_eq!(ids, ["r2", "r3"]);
}

async fn pending_counts_the_backlog(bus: Bus) {
    let events: Vec<Event> = (1..=3).map(|i| event(&format!("p{i}"))).collect();
    bus.publisher.publish(&events).await.expect("publish");
    let mut sub = bus.subscriber.subscribe("worker").await.expect("subscribe");
    let pending = sub.pending().await.expect("pending known");
    assert!(pending <= 3, "pending {pending}");
    for _ in 0..3 {
        next(&mut sub).await.ack().await.expect("ack");
    }
    testkit::eventually("no pending messages", Duration::from_secs(10), async || {
        (sub.pending().await == Some(0)).then_some(())
    })
    .await;
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::in_process()).await;
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::jetstream().await).await;
                }
            )*
        }
    };
}

conformance!(
    delivers_in_publish_order_with_headers,
    republished_ids_are_stored_once,
    nak_redelivers_with_the_attempt_count,
    a_durable_consumer_resumes_after_the_last_ack,
    pending_counts_the_backlog,
);

#[tokio::test]
async fn in_process_redelivers_a_dropped_delivery_at_once() {
    let bus = InProcessBus::new();
    bus.publish(&[event("d")]).await.expect("publish");
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    drop(next(&mut sub).await);
    let again = next(&mut sub).await;
    assert_eq!((again.event.id.as_str(), again.attempt), ("d", 2));
}

#[tokio::test]
async fn in_process_reports_acked_ids() {
    let (bus, mut acked) = InProcessBus::with_ack_feed();
    bus.publish(&[event("x")]).await.expect("publish");
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    next(&mut sub).await.ack().await.expect("ack");
    assert_eq!(acked.recv().await.as_deref(), Some("x"));
}

#[tokio::test]
async fn jetstream_survives_a_broker_restart() {
    let server = NatsServer::start();
    let bus = JetStreamBus::connect(JetStreamConfig::new(server.url()))
        .await
        .expect("connect");
    bus.publish(&[event("before")]).await.expect("publish");
    server.stop();
    server.start_again().expect("restart");
    // Publishing retries until the client has reconnected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = bus.publish(&[event("after")]).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reconnected: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = next(&mut sub).await;
        ids.push(d.event.id.clone());
        d.ack().await.expect("ack");
    }
    assert_eq!(ids, ["before", "after"], "the stream is file-backed");
}
