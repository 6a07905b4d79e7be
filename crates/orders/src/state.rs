use crate::config::OrdersConfig;
use crate::domain::Action;
use crate::storage::OrderStore;
use kit::Clock;
use std::sync::Arc;
use tokio::sync::Notify;

/// Everything a handler needs, shared by all requests.
pub(crate) struct AppState {
    pub store: Arc<dyn OrderStore>,
    pub clock: Arc<dyn Clock>,
    pub config: OrdersConfig,
    /// Wakes the relay after a commit, so events leave without waiting for
    /// the next poll.
    pub wake_relay: Arc<Notify>,
    pub metrics: Metrics,
}

/// Metric handles resolved once.
pub(crate) struct Metrics {
    pub created: metrics::Counter,
    pub replayed: metrics::Counter,
    confirmed: metrics::Counter,
    shipped: metrics::Counter,
    cancelled: metrics::Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let transition = |action: &'static str| metrics::counter!("orders_transitions_total", "action" => action);
        Self {
            created: metrics::counter!("orders_created_total"),
            replayed: metrics::counter!("orders_idempotent_replays_total"),
            confirmed: transition("confirm"),
            shipped: transition("ship"),
            cancelled: transition("cancel"),
        }
    }

    pub fn transition(&self, action: Action) {
        match action {
            Action::Confirm => self.confirmed.increment(1),
            Action::Ship => self.shipped.increment(1),
            Action::Cancel => self.cancelled.increment(1),
        }
    }
}
