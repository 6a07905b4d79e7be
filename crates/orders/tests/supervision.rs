//! The orders module's background tasks under the platform's supervisor:
//! a relay that dies stops the process (its failure is fatal), a delivery
//! recorder that dies turns readiness false; both are counted.

use async_trait::async_trait;
use bus::{BusError, Event, Publisher};
use kit::health::Readiness;
use kit::tasks::Supervisor;
use kit::SystemClock;
use orders::storage::SqliteStore;
use orders::{Orders, OrdersConfig, RelayTarget};
use std::sync::Arc;

/// A broken publisher: the relay task panics the first time it publishes.
struct Panicking;

#[async_trait]
impl Publisher for Panicking {
    async fn publish(&self, _events: &[Event]) -> Result<(), BusError> {
        panic!("publisher invariant broken");
    }
}

fn failure_count(module: &str, task: &str) -> Option<u64> {
    let needle = format!("reliable_task_failures_total{{module=\"{module}\",task=\"{task}\"}} ");
    kit::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
}

#[tokio::test]
async fn dead_relay_is_fatal_and_dead_recorder_fails_readiness() {
    kit::metrics::install();
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("orders.db").display());
    let store = Arc::new(
        SqliteStore::connect(&url, &Default::default())
            .await
            .expect("sqlite"),
    );
    let supervisor = Supervisor::new();
    // The in-process bus went away: the recorder's feed ends at once.
    let (acks, acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    drop(acks);
    let module = Orders::build(
        OrdersConfig::default(),
        store,
        RelayTarget {
            publisher: Arc::new(Panicking),
            acked: Some(acked),
        },
        Arc::new(SystemClock),
        supervisor.for_module(orders::SERVICE),
    )
    .await
    .expect("orders");
    let readiness = Readiness::new();
    readiness.add_check(supervisor.readiness_check(&[orders::SERVICE]));

    let server = kit::server::HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let stop = kit::CancellationToken::new();
    let serving = tokio::task::spawn(server.serve(
        kit::http::stack(module.router(), orders::SERVICE, &Default::default()),
        stop.clone(),
    ));
    let created = reqwest::Client::new()
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "supervised-1")
        .json(&serde_json::json!({"customer_id": "c1", "currency": "EUR",
            "items": [{"sku": "s", "quantity": 1, "unit_price_minor": 100}]}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    let fatal = supervisor.fatal().await;
    assert_eq!((fatal.module, fatal.task), ("orders", "outbox-relay"));
    assert!(
        fatal.reason.contains("publisher invariant broken"),
        "{fatal}"
    );
    assert_eq!(failure_count("orders", "outbox-relay"), Some(1));

    let failures = testkit::eventually(
        "the recorder's death to show in readiness",
        std::time::Duration::from_secs(5),
        async || {
            let failures = readiness.failures().await;
            (!failures.is_empty()).then_some(failures)
        },
    )
    .await;
    assert!(
        failures[0].1.contains("orders/delivery-recorder"),
        "{failures:?}"
    );
    assert_eq!(failure_count("orders", "delivery-recorder"), Some(1));

    stop.cancel();
    serving.await.expect("join").expect("serve");
    module.shutdown().await;
}
