//! The notifier module: turns order events into notifications.
//!
//! - `worker`: the durable-consumer loop, idempotency, retries with
//!   backoff and jitter, dead-lettering;
//! - `channel`: the signed webhook and the log channel;
//! - [`target`]: webhook URL validation and the SSRF guard;
//! - [`storage`]: processed events and dead letters, on SQLite or
//!   PostgreSQL;
//! - `http`: the dead-letter list and replay API.
//!
//! [`Notifier`] is the module as the binary sees it: build it with a bus
//! subscriber and a store; call [`Notifier::shutdown`] after the HTTP
//! server has drained: in-flight deliveries finish, unacked ones come back
//! after restart.
#![forbid(unsafe_code)]

pub mod channel;
pub mod config;
mod http;
mod module;
pub mod storage;
pub mod target;
mod worker;

pub use config::{NotifierConfig, Secret, WebhookConfig};
pub use worker::RetryPolicy;

use axum::Router;
use bus::Subscriber;
use channel::{Channel, LogChannel, WebhookChannel};
use kit::health::ReadinessCheck;
use kit::storage::DatabaseReady;
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use std::sync::Arc;
use storage::NotificationStore;
use worker::{Metrics, Worker};

pub const SERVICE: &str = "notifier";

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("cannot build the webhook client")]
    Client(#[from] resilience::TlsError),
}

/// A running notifier module.
pub struct Notifier {
    worker: Arc<Worker>,
    tasks: TaskSpawner,
}

impl Notifier {
    /// Starts the worker on `subscriber`'s durable consumer.
    pub fn build(
        config: NotifierConfig,
        webhook: Option<WebhookConfig>,
        store: Arc<dyn NotificationStore>,
        subscriber: Arc<dyn Subscriber>,
        clock: Arc<dyn Clock>,
        tasks: TaskSpawner,
    ) -> Result<Self, NotifierError> {
        kit::metrics::install();
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(webhook) = webhook {
            channels.push(Arc::new(WebhookChannel::new(
                webhook,
                config.webhook_timeout,
                config.webhook_events.clone(),
            )?));
        }
        if config.log_channel {
            channels.push(Arc::new(LogChannel));
        }
        let worker = Arc::new(Worker {
            store,
            channels,
            clock,
            policy: RetryPolicy {
                max_attempts: config.max_attempts,
                base: config.backoff_base,
                max: config.backoff_max,
            },
            metrics: Metrics::new(),
            claims: Default::default(),
        });
        let consuming = worker.clone().run(
            subscriber,
            config.consumer.clone(),
            config.concurrency,
            tasks.stop_token(),
        );
        // The worker is the notifier's whole job.
        tasks.spawn("worker", OnFailure::Exit, async move {
            consuming.await;
            Ok::<(), std::convert::Infallible>(())
        });
        Ok(Self { worker, tasks })
    }

    pub fn router(&self) -> Router {
        http::routes(self.worker.clone())
    }

    /// `notifier-database`: ready while the notification database answers.
    pub fn readiness_check(&self) -> Arc<dyn ReadinessCheck> {
        Arc::new(DatabaseReady::new(SERVICE, self.worker.store.pool()))
    }

    /// Stops taking deliveries and waits for those in flight.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}
