//! One storage conformance suite, run against every `OrderStore` adapter:
//! SQLite in a temp file and PostgreSQL on the harness's private server
//! (a fresh database per test).

use async_trait::async_trait;
use bus::{BusError, Event, InProcessBus, Publisher, Subscriber};
use chrono::{DateTime, Duration, Utc};
use orders::domain::{
    Action, Currency, CustomerId, IdempotencyKey, LineItem, NewOrder, Order, OrderEvent, OrderId,
    OrderStatus, Quantity, Sku,
};
use orders::storage::{
    CreateOutcome, IdempotentCreate, OrderStore, PostgresStore, TransitionOutcome,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2030-01-01T00:00:00.123456Z")
}

fn new_order(customer: &str, qty: i64) -> NewOrder {
    let item = LineItem::new(
        Sku::parse("sku-1").expect("sku"),
        Quantity::parse(qty).expect("qty"),
        250,
    )
    .expect("item");
    NewOrder::new(
        CustomerId::parse(customer).expect("customer"),
        Currency::parse("EUR").expect("eur"),
        vec![item],
    )
    .expect("order")
}

/// Creates an order under `key` as the HTTP handler does.
async fn create(
    store: &dyn OrderStore,
    key: &str,
    request: NewOrder,
    when: DateTime<Utc>,
) -> (Order, CreateOutcome) {
    let fingerprint = request.fingerprint();
    let order = request.into_order(OrderId::generate(), when);
    let event = OrderEvent::of(&order, None, when);
    let key = IdempotencyKey::parse(key).expect("key");
    let body = format!("{{\"id\":\"{}\"}}", order.id);
    let record = IdempotentCreate {
        key: &key,
        fingerprint: &fingerprint,
        response_status: 201,
        response_body: &body,
        expires_at: when + Duration::hours(24),
    };
    let outcome = store
        .create(&order, &event, &record, when)
        .await
        .expect("create");
    (order, outcome)
}

async fn orders_of(store: &dyn OrderStore, customer: &str) -> Vec<Order> {
    let customer = CustomerId::parse(customer).expect("customer");
    store
        .list(&customer, 0, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

async fn create_then_find_round_trips(store: Arc<dyn OrderStore>) {
    let (order, outcome) = create(store.as_ref(), "k1", new_order("c1", 3), now()).await;
    assert_eq!(outcome, CreateOutcome::Created);
    let found = store.find(&order.id).await.expect("find").expect("exists");
    assert_eq!(found, order);
    assert_eq!(found.total_minor, 750);
    assert_eq!(found.status, OrderStatus::Pending);
    assert!(store
        .find(&OrderId::generate())
        .await
        .expect("find")
        .is_none());
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 1);
}

async fn a_replayed_key_returns_the_original_and_a_changed_body_is_refused(
    store: Arc<dyn OrderStore>,
) {
    let (first, _) = create(store.as_ref(), "same", new_order("c1", 1), now()).await;
    let (_, replay) = create(store.as_ref(), "same", new_order("c1", 1), now()).await;
    assert_eq!(
        replay,
        CreateOutcome::Replayed {
            status: 201,
            body: format!("{{\"id\":\"{}\"}}", first.id)
        }
    );
    let (_, reused) = create(store.as_ref(), "same", new_order("c1", 2), now()).await;
    assert_eq!(reused, CreateOutcome::KeyReused);
    assert_eq!(orders_of(store.as_ref(), "c1").await.len(), 1);
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 1);
}

async fn an_expired_key_creates_a_new_order(store: Arc<dyn OrderStore>) {
    create(store.as_ref(), "old", new_order("c1", 1), now()).await;
    let later = now() + Duration::hours(25);
    let (_, outcome) = create(store.as_ref(), "old", new_order("c1", 2), later).await;
    assert_eq!(outcome, CreateOutcome::Created);
    assert_eq!(orders_of(store.as_ref(), "c1").await.len(), 2);
}

async fn concurrent_requests_with_one_key_create_one_order(store: Arc<dyn OrderStore>) {
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                create(store.as_ref(), "race", new_order("c1", 1), now())
                    .await
                    .1
            })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.expect("join") {
            CreateOutcome::Created => created += 1,
            CreateOutcome::Replayed { status, .. } => assert_eq!(status, 201),
            CreateOutcome::KeyReused => panic!("same body must replay"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(orders_of(store.as_ref(), "c1").await.len(), 1);
}

async fn transitions_follow_the_state_machine_and_write_events(store: Arc<dyn OrderStore>) {
    let (order, _) = create(store.as_ref(), "t", new_order("c1", 1), now()).await;
    let later = now() + Duration::seconds(5);
    let confirmed = store
        .transition(&order.id, Action::Confirm, None, later)
        .await
        .expect("confirm");
    let TransitionOutcome::Done(confirmed) = confirmed else {
        panic!("{confirmed:?}")
    };
    assert_eq!(
        (confirmed.status, confirmed.version),
        (OrderStatus::Confirmed, 2)
    );
    assert_eq!(confirmed.updated_at, later);
    let shipped = store
        .transition(&order.id, Action::Ship, None, later)
        .await
        .expect("ship");
    assert!(matches!(shipped, TransitionOutcome::Done(ref o) if o.status == OrderStatus::Shipped));
    let refused = store
        .transition(&order.id, Action::Cancel, None, later)
        .await
        .expect("cancel");
    assert!(matches!(refused, TransitionOutcome::Illegal(i) if i.from == OrderStatus::Shipped));
    let missing = store
        .transition(&OrderId::generate(), Action::Cancel, None, later)
        .await;
    assert_eq!(missing.expect("missing"), TransitionOutcome::NotFound);
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 3);
}

async fn lists_page_by_customer(store: Arc<dyn OrderStore>) {
    for i in 0..5 {
        create(
            store.as_ref(),
            &format!("p{i}"),
            new_order("pager", 1),
            now(),
        )
        .await;
    }
    create(store.as_ref(), "other", new_order("someone-else", 1), now()).await;
    let customer = CustomerId::parse("pager").expect("customer");
    let first = store.list(&customer, 0, 3).await.expect("page 1");
    let second = store.list(&customer, first[2].0, 3).await.expect("page 2");
    assert_eq!((first.len(), second.len()), (3, 2));
    assert!(first[2].0 < second[0].0);
}

/// Records what it is asked to publish; fails while `failing` is set.
#[derive(Default)]
struct Recorder {
    published: Mutex<Vec<Event>>,
    failing: Mutex<bool>,
}

#[async_trait]
impl Publisher for Recorder {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        if *self.failing.lock().expect("lock") {
            return Err(BusError::Unavailable("test".into()));
        }
        tokio::task::yield_now().await;
        self.published
            .lock()
            .expect("lock")
            .extend_from_slice(events);
        Ok(())
    }
}

async fn drain(store: &dyn OrderStore, publisher: &dyn Publisher) {
    while store.relay_batch(2, publisher, now()).await.expect("relay") > 0 {}
}

async fn the_relay_publishes_each_order_in_order_and_keeps_failed_events(
    store: Arc<dyn OrderStore>,
) {
    let (a, _) = create(store.as_ref(), "a", new_order("c1", 1), now()).await;
    let (b, _) = create(store.as_ref(), "b", new_order("c1", 1), now()).await;
    store
        .transition(&a.id, Action::Confirm, None, now())
        .await
        .expect("confirm");
    store
        .transition(&a.id, Action::Cancel, None, now())
        .await
        .expect("cancel");
    let recorder = Recorder::default();
    *recorder.failing.lock().expect("lock") = true;
    assert!(store.relay_batch(10, &recorder, now()).await.is_err());
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 4);
    *recorder.failing.lock().expect("lock") = false;
    drain(store.as_ref(), &recorder).await;
    let published = recorder.published.lock().expect("lock").clone();
    let of = |id: &OrderId| -> Vec<String> {
        published
            .iter()
            .filter(|e| e.key == id.as_str())
            .map(|e| e.subject.clone())
            .collect()
    };
    assert_eq!(
        of(&a.id),
        ["orders.created", "orders.confirmed", "orders.cancelled"]
    );
    assert_eq!(of(&b.id), ["orders.created"]);
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!((backlog.unpublished, backlog.oldest), (0, None));
}

async fn undelivered_events_are_requeued_for_the_in_process_bus(store: Arc<dyn OrderStore>) {
    create(store.as_ref(), "x", new_order("c1", 1), now()).await;
    create(store.as_ref(), "y", new_order("c1", 1), now()).await;
    let bus = InProcessBus::new();
    drain(store.as_ref(), &bus).await;
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    let delivered = sub.next().await.expect("delivery").event.id;
    store
        .mark_delivered(&[delivered], now())
        .await
        .expect("delivered");
    assert_eq!(store.requeue_undelivered().await.expect("requeue"), 1);
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 1);
    // Purge keeps unexpired keys and unpublished rows.
    store
        .purge(now() + Duration::days(1), now())
        .await
        .expect("purge");
    assert_eq!(store.backlog().await.expect("backlog").unpublished, 1);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("dir");
                    let url = format!("sqlite://{}", dir.path().join("orders.db").display());
                    let store = std::sync::Arc::new(orders::storage::SqliteStore::connect(&url, &Default::default()).await.expect("sqlite"));
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let url = testkit::postgres().create_database();
                    let store = std::sync::Arc::new(orders::storage::PostgresStore::connect(&url, &Default::default()).await.expect("postgres"));
                    super::$name(store).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_find_round_trips,
    a_replayed_key_returns_the_original_and_a_changed_body_is_refused,
    an_expired_key_creates_a_new_order,
    concurrent_requests_with_one_key_create_one_order,
    transitions_follow_the_state_machine_and_write_events,
    lists_page_by_customer,
    the_relay_publishes_each_order_in_order_and_keeps_failed_events,
    undelivered_events_are_requeued_for_the_in_process_bus,
);

/// PostgreSQL only (SQLite runs one relay per process): four relays on one
/// database publish every event exactly once.
#[tokio::test]
async fn postgres_relay_replicas_never_publish_an_event_twice() {
    let url = testkit::postgres().create_database();
    let store: Arc<dyn OrderStore> = Arc::new(
        PostgresStore::connect(&url, &Default::default())
            .await
            .expect("pg"),
    );
    for i in 0..120 {
        create(store.as_ref(), &format!("r{i}"), new_order("c1", 1), now()).await;
    }
    let recorder = Arc::new(Recorder::default());
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let (store, recorder) = (store.clone(), recorder.clone());
            tokio::spawn(async move {
                while store
                    .relay_batch(7, recorder.as_ref(), now())
                    .await
                    .expect("relay")
                    > 0
                {}
            })
        })
        .collect();
    for relay in relays {
        relay.await.expect("join");
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in recorder.published.lock().expect("lock").iter() {
        *counts.entry(event.id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 120);
    assert!(
        counts.values().all(|&n| n == 1),
        "an event was published twice"
    );
}
