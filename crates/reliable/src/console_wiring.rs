//! The console's listener in `up` and `serve`: bound before any module
//! starts (a taken port is a startup error naming
//! `RELIABLE_CONSOLE_LISTEN`), told about each module as it starts, and
//! served on the platform's shutdown token once the platform serves.
//!
//! Why its own listener: the console is for operators, bound to loopback
//! by default so nothing on the public address exposes it; on any other
//! address every request needs a `console:read` key ([`console::Access`]),
//! checked against the gateway's key store.

use crate::console_sources::{
    error_budget_policy, Adapters, GatewayKeys, ModuleView, PlatformView, RouterApi,
};
use crate::registry::Entry;
use crate::settings::Config;
use crate::slo_live::LiveSlos;
use anyhow::Context as _;
use axum::Router;
use console::sources::{KeyVerifier, ModuleApi, Sources};
use console::Access;
use kit::changes::ChangeFeed;
use kit::health::Readiness;
use kit::module::{Port, Ports};
use kit::server::HttpServer;
use kit::tasks::{OnFailure, TaskSpawner};
use kit::{CancellationToken, Clock};
use std::sync::Arc;

/// The console being wired: its bound listener and what it learnt of the
/// started modules.
pub struct ConsoleWiring {
    server: HttpServer,
    modules: Vec<ModuleView>,
    canaries: Option<Router>,
    models: Option<Router>,
}

impl ConsoleWiring {
    /// Binds `console_listen` when `console.enabled`.
    pub async fn bind(config: &Config) -> anyhow::Result<Option<Self>> {
        if !config.console.enabled {
            return Ok(None);
        }
        let addr = config.console_listen;
        let server = HttpServer::bind(addr).await.with_context(|| {
            format!(
                "the console cannot listen on {addr} (console_listen, RELIABLE_CONSOLE_LISTEN; \
                 another address, port 0 for any, or console.enabled = false)"
            )
        })?;
        Ok(Some(Self {
            server: server.with_cost_sampling(config.http.cost_sample_every),
            modules: Vec::new(),
            canaries: None,
            models: None,
        }))
    }

    /// A started module, in start order, with its own readiness; `pool` is
    /// its in-process router (with its own stack) when it has one.
    pub fn add_module(&mut self, entry: &Entry, readiness: &Readiness, pool: Option<&Router>) {
        let declaration = &entry.declaration;
        match declaration.name {
            "canary" => self.canaries = pool.cloned(),
            "inference" => self.models = pool.cloned(),
            _ => {}
        }
        self.modules.push(ModuleView {
            name: declaration.name,
            readiness: readiness.clone(),
            needs: declaration.needs,
            fronts_others: declaration.fronts_others,
            serves_routes: !declaration.prefixes.is_empty(),
        });
    }

    /// Serves the console on a task of `tasks` until `shutdown`; its URL.
    pub async fn serve(
        self,
        platform: &Platform<'_>,
        tasks: &TaskSpawner,
        shutdown: CancellationToken,
    ) -> anyhow::Result<String> {
        let config = platform.config;
        let url = self.server.url();
        let needs: Vec<Port> = [Port::Database, Port::Bus, Port::Limiter]
            .into_iter()
            .filter(|p| self.modules.iter().any(|m| m.needs.contains(p)))
            .collect();
        let addr = self.server.local_addr();
        let access = Access::for_listener(addr, false);
        let keys = match access {
            Access::Loopback => None,
            Access::Remote { .. } => Some(platform.keys().await?),
        };
        let view = PlatformView::new(self.modules, platform.adapters(&needs));
        view.sample_traffic(config.slo.tick, platform.clock.clone(), tasks);
        let api = |what, router: Option<Router>| {
            router.map(|r| Arc::new(RouterApi::new(what, r)) as Arc<dyn ModuleApi>)
        };
        let sources = Sources {
            platform: Arc::new(view),
            slos: Arc::new(platform.slos.clone()),
            // Whoever wires a change store puts its feed in the ports.
            changes: platform.ports.get::<Arc<dyn ChangeFeed>>().ok(),
            canaries: api("canary", self.canaries),
            models: api("inference", self.models),
            policy: Some(error_budget_policy()?),
            // The platform's own measurement (docs/operations/cost.md).
            cost: Some(Arc::new(platform.cost.clone())),
            keys,
            clock: platform.clock.clone(),
        };
        let router = console::router_with_config(sources, access, &config.console);
        // Its own stack: request ids, timeouts, body limit, and metrics
        // under `service="console"`.
        let router = kit::http::stack(router, "console", &config.http);
        let stop = tasks.stop_token();
        // A console that stopped serving fails readiness so someone looks;
        // the modules keep serving.
        tasks.spawn("console", OnFailure::Unready, async move {
            let served = self.server.serve(router, shutdown).await;
            // Ends with the platform's tasks, not before (that would count
            // as a death).
            stop.cancelled().await;
            served
        });
        Ok(url)
    }
}

/// What the console reads of the running platform.
pub struct Platform<'a> {
    pub config: &'a Config,
    pub embedded: bool,
    pub ports: &'a Ports,
    pub slos: &'a LiveSlos,
    pub clock: Arc<dyn Clock>,
    /// The NATS client when the bus is JetStream.
    pub nats: Option<bus::JetStreamBus>,
    /// The platform's cost measurement, for the cost page.
    pub cost: crate::cost_live::CostLive,
}

impl Platform<'_> {
    /// The adapters behind the ports the started modules `needs`.
    fn adapters(&self, needs: &[Port]) -> Adapters {
        let postgres = !self.embedded && self.config.database_url.is_some();
        Adapters {
            database: needs.contains(&Port::Database).then_some(if postgres {
                "postgresql"
            } else {
                "sqlite"
            }),
            bus: needs.contains(&Port::Bus).then(|| self.nats.clone()),
            limiter: needs
                .contains(&Port::Limiter)
                .then_some(if self.config.redis_url.is_some() {
                    "redis"
                } else {
                    "in-process"
                }),
        }
    }

    /// The gateway's key store, where the gateway keeps it in this mode.
    async fn keys(&self) -> anyhow::Result<Arc<dyn KeyVerifier>> {
        let url = self.config.gateway_keys_url(self.embedded);
        let store = gateway::keys::connect(&url, &self.config.gateway.database)
            .await
            .context("opening the gateway's key store for the console's access check")?;
        Ok(Arc::new(GatewayKeys::new(store)))
    }
}
