//! The orders module: an idempotent order API whose every state change
//! leaves through a transactional outbox.
//!
//! - [`domain`]: ids, money, line items, the state machine and the event
//!   contract, parsed once at the edge;
//! - [`storage`]: the [`OrderStore`](storage::OrderStore) port with SQLite
//!   and PostgreSQL adapters; order, idempotency key and outbox event are
//!   written in one transaction;
//! - `relay`: publishes outbox events to the bus and keeps outbox metrics;
//! - `http`: `/api/v1/orders`.
//!
//! [`Orders`] is the module as the binary sees it: build it from a config,
//! a store, the bus publisher and a clock; mount its router; call
//! [`Orders::shutdown`] after the HTTP server has drained (and after the
//! notifier, when it shares the in-process bus).
#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
mod http;
mod module;
mod relay;
mod state;
pub mod storage;

pub use config::OrdersConfig;
pub use http::parse_create_body;

use axum::Router;
use bus::Publisher;
use kit::health::ReadinessCheck;
use kit::storage::DatabaseReady;
use kit::tasks::TaskSpawner;
use kit::Clock;
use relay::OutboxRelay;
use state::{AppState, Metrics};
use std::sync::Arc;
use storage::{OrderStore, StoreError};
use tokio::sync::{mpsc, Notify};

pub const SERVICE: &str = "orders";

/// Where the relay sends events.
pub struct RelayTarget {
    pub publisher: Arc<dyn Publisher>,
    /// With the in-process bus: the ids it reports as acked
    /// ([`bus::InProcessBus::with_ack_feed`]); `None` for JetStream, whose
    /// acknowledgement of a publish is already durable.
    pub acked: Option<mpsc::UnboundedReceiver<String>>,
}

/// A running orders module.
pub struct Orders {
    state: Arc<AppState>,
    tasks: TaskSpawner,
}

impl Orders {
    /// Starts the relay (when `config.relay`). With the in-process bus,
    /// events published before a restart but never acked are published
    /// again first.
    pub async fn build(
        config: OrdersConfig,
        store: Arc<dyn OrderStore>,
        target: RelayTarget,
        clock: Arc<dyn Clock>,
        tasks: TaskSpawner,
    ) -> Result<Self, StoreError> {
        kit::metrics::install();
        let wake_relay = Arc::new(Notify::new());
        if let Some(acked) = target.acked {
            let requeued = store.requeue_undelivered().await?;
            if requeued > 0 {
                tracing::info!(
                    requeued,
                    "re-publishing events never delivered before restart"
                );
            }
            relay::spawn_delivery_recorder(store.clone(), clock.clone(), acked, &tasks);
        }
        if config.relay {
            OutboxRelay {
                store: store.clone(),
                publisher: target.publisher,
                clock: clock.clone(),
                wake: wake_relay.clone(),
                batch_size: config.relay_batch_size,
                poll_interval: config.relay_poll_interval,
                retention: config.outbox_retention,
            }
            .spawn(&tasks);
        }
        let state = Arc::new(AppState {
            store,
            clock,
            config,
            wake_relay,
            metrics: Metrics::new(),
        });
        Ok(Self { state, tasks })
    }

    /// The module's routes, without the platform middleware.
    pub fn router(&self) -> Router {
        http::routes(self.state.clone())
    }

    /// `orders-database`: ready while the order database answers.
    pub fn readiness_check(&self) -> Arc<dyn ReadinessCheck> {
        Arc::new(DatabaseReady::new(SERVICE, self.state.store.pool()))
    }

    /// Stops the relay and the delivery recorder. Events not yet published
    /// stay in the outbox for the next start.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}
