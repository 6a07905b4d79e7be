//! The JetStream adapter against a private three-node cluster and against
//! servers that are down or too few: replicated streams, their replica
//! count changed in place, a leader killed under publishing, and the
//! errors an operator sees.

use bus::{BusError, Event, JetStreamBus, JetStreamConfig, Publisher, Subscriber, Subscription};
use chrono::Utc;
use std::collections::BTreeSet;
use std::time::Duration;
use testkit::{NatsCluster, NatsServer};

fn event(id: &str) -> Event {
    Event {
        id: id.to_string(),
        subject: "orders.created".into(),
        key: format!("order-of-{id}"),
        payload: format!("{{\"id\":\"{id}\"}}").into(),
        traceparent: None,
        occurred_at: Utc::now(),
    }
}

fn config(url: String, replicas: usize) -> JetStreamConfig {
    JetStreamConfig {
        replicas,
        ack_wait: Duration::from_secs(2),
        ..JetStreamConfig::new(url)
    }
}

/// Waits (bounded) until the consumer `durable` of the stream `ORDERS`
/// has `followers` servers besides its leader, as JetStream reports it.
async fn consumer_followers(url: &str, durable: &str, followers: usize) {
    let first = url.split(',').next().expect("a server");
    let client = async_nats::connect(first).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    testkit::eventually(
        "the consumer's replicas",
        Duration::from_secs(30),
        async || {
            let stream = js.get_stream("ORDERS").await.ok()?;
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer(durable).await.ok()?;
            let info = consumer.info().await.ok()?;
            let replicas = info.cluster.as_ref()?.replicas.len();
            (replicas == followers).then_some(())
        },
    )
    .await;
}

async fn cluster() -> NatsCluster {
    tokio::task::spawn_blocking(NatsCluster::start)
        .await
        .expect("join")
}

/// Publishes until the bus takes it (a leader election in between),
/// bounded.
async fn publish_retrying(bus: &JetStreamBus, events: &[Event]) {
    testkit::eventually(
        "a publish to be acknowledged",
        Duration::from_secs(60),
        async || match bus.publish(events).await {
            Ok(()) => Some(()),
            Err(e) => {
                eprintln!("retrying after: {e}");
                None
            }
        },
    )
    .await;
}

/// Reads and acks until `ids` distinct event ids have come, bounded;
/// returns every id delivered (with repeats).
async fn drain(sub: &mut Box<dyn Subscription>, distinct: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut unique = BTreeSet::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while unique.len() < distinct {
            match sub.next().await {
                Ok(delivery) => {
                    seen.push(delivery.event.id.clone());
                    unique.insert(delivery.event.id.clone());
                    let _ = delivery.ack().await;
                }
                Err(e) => {
                    eprintln!("retrying after: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {distinct} events delivered", unique.len()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_a_cluster_is_replicated_and_its_consumer_follows() {
    let cluster = cluster().await;
    let bus = JetStreamBus::connect(config(cluster.url(), 3))
        .await
        .expect("connect");
    let placement = bus.placement().await.expect("placement");
    assert_eq!(placement.replicas, 3);
    assert_eq!(placement.followers.len(), 2, "{placement:?}");
    let leader = placement.leader.expect("a leader");
    assert_eq!(cluster.stream_leader("ORDERS").as_deref(), Some(&*leader));
    publish_retrying(&bus, &[event("a"), event("b")]).await;
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    assert_eq!(drain(&mut sub, 2).await, ["a", "b"]);
    consumer_followers(&cluster.url(), "worker", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_changes_its_replica_count_in_place() {
    let cluster = cluster().await;
    let one = JetStreamBus::connect(config(cluster.url(), 1))
        .await
        .expect("connect with R1");
    publish_retrying(&one, &[event("kept")]).await;
    assert_eq!(one.placement().await.expect("placement").replicas, 1);
    drop(one.subscribe("worker").await.expect("an R1 consumer"));
    consumer_followers(&cluster.url(), "worker", 0).await;

    let three = JetStreamBus::connect(config(cluster.url(), 3))
        .await
        .expect("connect with R3");
    let placement = three.placement().await.expect("placement");
    assert_eq!(placement.replicas, 3, "{placement:?}");
    // The consumer made under R1 follows the stream to three copies.
    consumer_followers(&cluster.url(), "worker", 2).await;
    let mut sub = three.subscribe("worker").await.expect("subscribe");
    assert_eq!(
        drain(&mut sub, 1).await,
        ["kept"],
        "the stream kept its events"
    );
}

#[tokio::test]
async fn three_replicas_on_a_single_server_name_the_cluster_size() {
    let server = NatsServer::start();
    let error = match JetStreamBus::connect(config(server.url(), 3)).await {
        Ok(_) => panic!("R3 accepted on a single server"),
        Err(e) => e,
    };
    assert!(matches!(error, BusError::Config(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("wants 3 replicas")
            && text.contains("single NATS server")
            && text.contains("cluster size 1"),
        "{text}"
    );

    // An R1 stream that exists is not silently "updated" either (a single
    // server would take the update and keep one copy).
    JetStreamBus::connect(config(server.url(), 1))
        .await
        .expect("R1 is fine");
    let again = JetStreamBus::connect(config(server.url(), 3)).await;
    let text = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("cluster size 1"), "{text}");
    let one = JetStreamBus::connect(config(server.url(), 1))
        .await
        .expect("R1 again");
    assert_eq!(one.placement().await.expect("placement").replicas, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_replicas_than_servers_name_the_cluster() {
    let cluster = cluster().await;
    let error = match JetStreamBus::connect(config(cluster.url(), 5)).await {
        Ok(_) => panic!("R5 accepted on three servers"),
        Err(e) => e,
    };
    let text = error.to_string();
    assert!(matches!(error, BusError::Config(_)), "{error:?}");
    assert!(
        text.contains("wants 5 replicas")
            && text.contains(testkit::nats_cluster::CLUSTER_NAME)
            && text.contains("has 3 servers up"),
        "{text}"
    );
}

#[tokio::test]
async fn every_server_down_at_start_connects_later() {
    let first = NatsServer::start();
    let second = NatsServer::start();
    first.stop();
    second.stop();
    let url = format!("{},{}", first.url(), second.url());
    let bus = JetStreamBus::connect(config(url, 1))
        .await
        .expect("starts without any server");
    assert!(!bus.is_connected());
    let error = bus.publish(&[event("early")]).await.expect_err("no server");
    assert!(matches!(error, BusError::Unavailable(_)), "{error:?}");

    second.start_again().expect("start the second");
    publish_retrying(&bus, &[event("early")]).await;
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    assert_eq!(drain(&mut sub, 1).await, ["early"]);
}

#[tokio::test]
async fn a_bad_server_list_is_refused_without_its_text() {
    for list in [
        "nats://a:4222,,nats://b:4222",
        "nats://u:hunter2@a:4222,http://b",
    ] {
        let error = match JetStreamBus::connect(config(list.to_string(), 1)).await {
            Ok(_) => panic!("{list} accepted"),
            Err(e) => e,
        };
        assert!(matches!(error, BusError::Config(_)), "{error:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

/// The stream leader is killed while events are published: every event
/// whose publish was acknowledged, before or after, is delivered, and
/// re-publishing the unacknowledged ones (same ids) stores each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_no_acknowledged_event() {
    let cluster = cluster().await;
    let bus = JetStreamBus::connect(config(cluster.url(), 3))
        .await
        .expect("connect");
    let before: Vec<Event> = (0..50).map(|i| event(&format!("before-{i}"))).collect();
    publish_retrying(&bus, &before).await;
    let leader = bus
        .placement()
        .await
        .expect("placement")
        .leader
        .expect("leader");
    let killing = tokio::task::spawn_blocking({
        let cluster_leader = leader.clone();
        move || {
            cluster.kill(&cluster_leader);
            cluster
        }
    });
    // Published while the leader dies: each batch is retried until it is
    // acknowledged, as the outbox relay does.
    let during: Vec<Event> = (0..50).map(|i| event(&format!("during-{i}"))).collect();
    for batch in during.chunks(10) {
        publish_retrying(&bus, batch).await;
    }
    let cluster = killing.await.expect("join");
    testkit::eventually("a new stream leader", Duration::from_secs(60), async || {
        let placement = bus.placement().await.ok()?;
        placement.leader.filter(|new| *new != leader).map(|_| ())
    })
    .await;
    // As the notifier does: subscribing again until the consumer's own
    // leader is elected.
    let mut sub = testkit::eventually("a subscription", Duration::from_secs(60), async || {
        bus.subscribe("worker").await.ok()
    })
    .await;
    let seen = drain(&mut sub, 100).await;
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 100);
    assert_eq!(seen.len(), 100, "an event was stored twice: {seen:?}");

    // The killed node comes back on its store and catches up: its
    // `/healthz` answers ok only once its copies are current.
    tokio::task::spawn_blocking(move || cluster.restart(&leader))
        .await
        .expect("join")
        .expect("the old leader back and current");
}

/// The connection drops while a publish waits for its acknowledgement (the
/// node the client is on stopped): the publish fails at once instead of
/// waiting out `publish_timeout` (an hour here, so a wait would hang the
/// test), and publishing it again once the link is back stores it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_connection_drops_fails_at_once_and_lands_when_retried() {
    let server = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("join");
    let upstream = server.url().trim_start_matches("nats://").to_string();
    let link = testkit::fault_proxy(upstream).await;
    let bus = JetStreamBus::connect(JetStreamConfig {
        publish_timeout: Duration::from_secs(3600),
        ..config(format!("nats://{}", link.addr()), 1)
    })
    .await
    .expect("connect");
    bus.publish(&[event("before")])
        .await
        .expect("a first publish");

    // What the client sends vanishes, and the connection closes soon after.
    link.timeout(200).await;
    let in_flight =
        tokio::time::timeout(Duration::from_secs(120), bus.publish(&[event("in-flight")]))
            .await
            .expect(
                "the publish kept waiting for its acknowledgement after the connection dropped",
            );
    match in_flight {
        Err(BusError::Unavailable(why)) => assert!(why.contains("dropped"), "{why}"),
        other => panic!("expected the connection's loss, got {other:?}"),
    }

    link.clear().await;
    publish_retrying(&bus, &[event("in-flight")]).await;
    let client = async_nats::connect(server.url()).await.expect("connect");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("ORDERS")
        .await
        .expect("the stream");
    let stored = stream.info().await.expect("stream info").state.messages;
    assert_eq!(stored, 2, "each event stored once");
}
