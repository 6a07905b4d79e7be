//! Wiring of the event path: orders (with its outbox relay) and the
//! notifier, on the bus the mode calls for.
//!
//! `up`: both modules on SQLite files under the data dir and the
//! in-process bus, whose acks are recorded in the orders outbox so a
//! restart re-delivers what never reached the worker. `serve`: PostgreSQL
//! (`RELIABLE_DATABASE_URL`) and NATS JetStream (`RELIABLE_NATS_URL`); each
//! module may run in its own process.

use crate::settings::Config;
use anyhow::{bail, Context};
use axum::Router;
use bus::{InProcessBus, JetStreamBus, JetStreamConfig, Publisher, Subscriber};
use kit::health::Readiness;
use kit::SystemClock;
use notifier::Notifier;
use orders::{Orders, RelayTarget};
use std::sync::Arc;

/// The running event-path modules of this process.
#[derive(Default)]
pub struct EventPath {
    orders: Option<Orders>,
    notifier: Option<Notifier>,
}

/// What to run and where its state lives.
pub struct Plan<'a> {
    pub orders: bool,
    pub notifier: bool,
    /// `None` in `up`: embedded SQLite files and the in-process bus.
    pub database_url: Option<&'a str>,
}

impl EventPath {
    /// Starts the planned modules, registers their readiness checks and
    /// returns their routes (labelled with their own `service`).
    pub async fn start(
        plan: Plan<'_>,
        config: &Config,
        readiness: &Readiness,
    ) -> anyhow::Result<(Self, Router)> {
        let mut path = Self::default();
        let mut router = Router::new();
        if !plan.orders && !plan.notifier {
            return Ok((path, router));
        }
        let (publisher, subscriber, acked): (Arc<dyn Publisher>, Arc<dyn Subscriber>, _) =
            match plan.database_url {
                None => {
                    let (bus, acked) = InProcessBus::with_ack_feed();
                    (Arc::new(bus.clone()), Arc::new(bus), Some(acked))
                }
                Some(_) => {
                    let Some(url) = &config.nats_url else {
                        bail!("orders and notifier need NATS JetStream: set RELIABLE_NATS_URL=nats://...");
                    };
                    let bus_config = JetStreamConfig {
                        ack_wait: config.notifier.ack_wait,
                        ..JetStreamConfig::new(url.as_str())
                    };
                    let bus = JetStreamBus::connect(bus_config)
                        .await
                        .context("connecting to NATS JetStream")?;
                    (Arc::new(bus.clone()), Arc::new(bus), None)
                }
            };
        let url_of = |file: &str| match plan.database_url {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}", config.data_dir.join(file).display()),
        };
        if plan.orders {
            let store = orders::storage::connect(&url_of("orders.db"), &config.orders.database)
                .await
                .context("opening the orders database")?;
            let module = Orders::build(
                config.orders.clone(),
                store,
                RelayTarget { publisher, acked },
                Arc::new(SystemClock),
            )
            .await
            .context("starting the orders module")?;
            readiness.add_check(module.readiness_check());
            router = router.merge(kit::http::service_label(module.router(), orders::SERVICE));
            path.orders = Some(module);
        }
        if plan.notifier {
            let store =
                notifier::storage::connect(&url_of("notifier.db"), &config.notifier.database)
                    .await
                    .context("opening the notifier database")?;
            let module = Notifier::build(
                config.notifier.clone(),
                config.webhook()?,
                store,
                subscriber,
                Arc::new(SystemClock),
            )
            .context("starting the notifier")?;
            readiness.add_check(module.readiness_check());
            router = router.merge(kit::http::service_label(module.router(), notifier::SERVICE));
            path.notifier = Some(module);
        }
        Ok((path, router))
    }

    /// The worker first (its last acks reach the outbox), then the relay.
    pub async fn shutdown(self) {
        if let Some(notifier) = self.notifier {
            notifier.shutdown().await;
        }
        if let Some(orders) = self.orders {
            orders.shutdown().await;
        }
    }
}
