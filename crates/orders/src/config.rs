//! Options of the orders module (the `[orders]` table of the config file,
//! `RELIABLE_ORDERS__*` in the environment).

use kit::config::ConfigError;
use kit::storage::PoolConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// How long an `Idempotency-Key` is remembered; a replay after that
    /// creates a new order.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Run the outbox relay in this process (every replica may: rows are
    /// locked while they are published).
    pub relay: bool,
    /// Events published per relay round trip.
    pub relay_batch_size: u32,
    /// How often the relay looks for events committed by other replicas;
    /// events committed by this process wake it at once.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub relay_poll_interval: Duration,
    /// Published outbox rows are deleted after this long.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub outbox_retention: Duration,
    /// The order database's connection pool (`[orders.database]`).
    pub database: PoolConfig,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            relay: true,
            relay_batch_size: 256,
            relay_poll_interval: Duration::from_millis(200),
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
            database: PoolConfig::with_max_connections(16),
        }
    }
}

impl OrdersConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("orders.idempotency_ttl", self.idempotency_ttl),
            ("orders.relay_poll_interval", self.relay_poll_interval),
            ("orders.outbox_retention", self.outbox_retention),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be above zero"));
            }
        }
        if !(1..=10_000).contains(&self.relay_batch_size) {
            return Err(ConfigError::invalid(
                "orders.relay_batch_size",
                "must be between 1 and 10000",
            ));
        }
        self.database.validate("orders.database")?;
        Ok(())
    }
}
