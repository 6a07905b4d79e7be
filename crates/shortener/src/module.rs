//! The shortener as the platform's registry sees it.

use crate::storage::LinkStore;
use crate::{storage, Shortener, ShortenerConfig, SERVICE};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, ModuleConfig, Port, StartError};
use kit::storage::{DatabaseReadUrl, ReadReplica};
use std::sync::Arc;

impl ModuleConfig for ShortenerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ShortenerConfig::validate(self)
    }
}

impl Module for Shortener {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        // `/{slug}` takes every path the other modules do not.
        prefixes: &["/"],
        scoped_prefixes: &[],
        needs: &[Port::Database],
        after: &[],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::Problem,
    };
    type Config = ShortenerConfig;

    async fn start(mut config: ShortenerConfig, context: Context) -> Result<Self, StartError> {
        config.trusted_proxies = context.http.trusted();
        config.security_headers = context.http.security_headers;
        let url = context
            .database_url
            .ok_or("the shortener needs a database")?;
        let mut store = storage::connect(&url, &config.database).await?;
        // The `-ro` endpoint, when the binary was given one (`serve` on
        // PostgreSQL): redirect look-ups read there.
        if let Ok(read_url) = context.ports.get::<DatabaseReadUrl>() {
            let replica = ReadReplica::open(
                read_url.0.expose(),
                &config.database,
                SERVICE,
                config.replica_settings(),
            )?;
            let routed: Arc<dyn LinkStore> = Arc::new(storage::ReplicaRouted::new(store, replica)?);
            store = routed;
        }
        Ok(Shortener::build(
            config,
            store,
            context.clock,
            &context.public_url,
            context.tasks,
        )
        .await?)
    }

    /// The redirect is the catch-all, not a route (see
    /// [`Shortener::redirect_catch_all`]).
    fn router(&self) -> Router {
        Shortener::api_router(self)
    }

    fn routes(&self) -> kit::http::Routes {
        Shortener::api_routes(self)
    }

    fn catch_all(&self) -> Option<kit::http::CatchAll> {
        Some(Shortener::redirect_catch_all(self))
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![self.readiness_check()]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        crate::http::openapi()
    }

    async fn shutdown(self) {
        Shortener::shutdown(self).await;
    }
}
