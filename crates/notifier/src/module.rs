//! The notifier as the platform's registry sees it.

use crate::{storage, Notifier, NotifierConfig, SERVICE};
use axum::Router;
use bus::Subscriber;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, ModuleConfig, Port, StartError};
use std::sync::Arc;

impl ModuleConfig for NotifierConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        NotifierConfig::validate(self)
    }
}

impl Module for Notifier {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        prefixes: &["/api/v1/notifications"],
        scoped_prefixes: &[],
        needs: &[Port::Database, Port::Bus],
        // Co-located with orders on the in-process bus, the worker stops
        // first, so its last acks reach the outbox before the relay stops.
        after: &["orders"],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::Problem,
    };
    type Config = NotifierConfig;

    async fn start(config: NotifierConfig, context: Context) -> Result<Self, StartError> {
        let url = context
            .database_url
            .ok_or("the notifier needs a database")?;
        let subscriber = context.ports.get::<Arc<dyn Subscriber>>()?;
        let webhook = config.webhook()?;
        let store = storage::connect(&url, &config.database).await?;
        Ok(Notifier::build(
            config,
            webhook,
            store,
            subscriber,
            context.clock,
            context.tasks,
        )?)
    }

    fn router(&self) -> Router {
        Notifier::router(self)
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![self.readiness_check()]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        crate::http::openapi()
    }

    async fn shutdown(self) {
        Notifier::shutdown(self).await;
    }
}
