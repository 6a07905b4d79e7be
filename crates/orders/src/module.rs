//! The orders module as the platform's registry sees it.

use crate::{storage, Orders, OrdersConfig, RelayTarget, SERVICE};
use axum::Router;
use bus::{AckFeed, Publisher};
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, ModuleConfig, Port, StartError};
use std::sync::Arc;

impl ModuleConfig for OrdersConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        OrdersConfig::validate(self)
    }
}

impl Module for Orders {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        prefixes: &["/api/v1/orders"],
        scoped_prefixes: &[],
        needs: &[Port::Database, Port::Bus],
        after: &[],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::Problem,
    };
    type Config = OrdersConfig;

    /// The publisher comes from the bus port; with the in-process bus, its
    /// ack feed too (acks are recorded in the outbox).
    async fn start(config: OrdersConfig, context: Context) -> Result<Self, StartError> {
        let url = context.database_url.ok_or("orders needs a database")?;
        let publisher = context.ports.get::<Arc<dyn Publisher>>()?;
        let acked = context.ports.take::<AckFeed>().map(|feed| feed.0);
        let store = storage::connect(&url, &config.database).await?;
        let target = RelayTarget { publisher, acked };
        Ok(Orders::build(config, store, target, context.clock, context.tasks).await?)
    }

    fn router(&self) -> Router {
        Orders::router(self)
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![self.readiness_check()]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        crate::http::openapi()
    }

    async fn shutdown(self) {
        Orders::shutdown(self).await;
    }
}
