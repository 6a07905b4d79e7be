//! Running modules: which ones, on which adapters, in which order.
//!
//! Start order: telemetry, the ports the chosen modules declare (bus,
//! limiter), the modules in dependency order (each opens its own storage
//! and runs its migrations), then the listener; the `listening on` line is
//! printed once requests can be served. Stop order is the reverse:
//! readiness false, grace period, stop accepting and drain in-flight
//! requests, then the modules in reverse start order (each flushes its
//! buffered work and stops its supervised tasks), then telemetry.
//!
//! Every module's routes carry its own `service` label. With a fronting
//! module among the targets (the gateway, always in `up`), it takes the
//! public address and each other module becomes its in-process pool. Two
//! readiness states then exist: each module's own (what the gateway's
//! health check of its pool asks) and the front's (every check), and only
//! the front's drains on shutdown, so pools keep serving the requests that
//! still arrive during `shutdown_grace`.
//!
//! A supervised task that dies with [`OnFailure::Exit`](kit::tasks::OnFailure)
//! stops the process with an error; with `Unready` it fails `/readyz`.

use crate::registry::{self, Entry, Running};
use crate::settings::Config;
use anyhow::{bail, Context as _};
use bus::{AckFeed, InProcessBus, JetStreamBus, JetStreamConfig, Publisher, Subscriber};
use kit::config::Loaded;
use kit::health::Readiness;
use kit::module::{Colocated, Context, Port, Ports};
use kit::server::HttpServer;
use kit::tasks::{Supervisor, TaskSpawner};
use kit::{CancellationToken, Clock, SystemClock};
use std::sync::Arc;
use std::time::Instant;

/// Which modules to run, parsed from `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    names: Vec<&'static str>,
    /// Named one by one (not only through `all`): started even when their
    /// config says they have nothing to serve, so that they say why.
    named: Vec<&'static str>,
}

impl Targets {
    /// Every registered module (`up`, `--target all`).
    pub fn all() -> Self {
        Self {
            names: registry::names(),
            named: Vec::new(),
        }
    }

    /// Whether `entry` starts with `config`: a module named explicitly
    /// always does; one reached through `all` (or `up`) only when it has
    /// something to serve (the LLM gateway needs a backend).
    pub fn starts(&self, entry: &Entry, config: &Config) -> bool {
        self.named.contains(&entry.declaration.name) || (entry.configured)(config)
    }

    pub fn parse(names: &[String]) -> Result<Self, String> {
        let known = registry::names();
        let mut targets: Vec<&'static str> = Vec::new();
        let mut named: Vec<&'static str> = Vec::new();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let found = if name == "all" {
                known.clone()
            } else {
                match known.iter().find(|k| **k == name) {
                    Some(k) => {
                        named.push(*k);
                        vec![*k]
                    }
                    None => {
                        return Err(format!(
                            "unknown target `{name}`; known targets: {}, all",
                            known.join(", ")
                        ))
                    }
                }
            };
            for t in found {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        if targets.is_empty() {
            return Err("no target given".to_string());
        }
        Ok(Self {
            names: targets,
            named,
        })
    }

    /// The chosen modules' names.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The chosen modules, in registry order.
    pub fn entries(&self) -> Vec<&'static Entry> {
        registry::MODULES
            .iter()
            .filter(|e| self.names.contains(&e.declaration.name))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everything, embedded adapters.
    Up,
    /// Chosen modules, distributed adapters.
    Serve(Targets),
}

/// A module running in this process.
struct Started {
    name: &'static str,
    fronts_others: bool,
    module: Box<dyn Running>,
    tasks: TaskSpawner,
    /// Its own checks plus its tasks' liveness; never drains.
    readiness: Readiness,
}

pub async fn run(mode: Mode, loaded: Loaded<Config>) -> anyhow::Result<()> {
    let started_at = Instant::now();
    let config = loaded.config;
    let telemetry = kit::telemetry::init("reliable", &config.log)?;
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "deprecated configuration");
    }
    kit::metrics::install();
    // Handlers first: from here on SIGTERM means "drain", never "die".
    let stop_signal = kit::shutdown::signal();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let targets = match &mode {
        Mode::Up => Targets::all(),
        Mode::Serve(targets) => targets.clone(),
    };
    // `up` and `all` start what has something to serve (the LLM gateway
    // only with a backend); a module named in `--target` always starts.
    let entries: Vec<_> = targets
        .entries()
        .into_iter()
        .filter(|e| targets.starts(e, &config))
        .collect();
    let order = registry::start_order(&entries);
    let needs = |port: Port| order.iter().any(|e| e.declaration.needs.contains(&port));
    let embedded = mode == Mode::Up;
    if embedded || config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }

    let ports = Ports::new();
    wire_read_replica(&ports, &config, embedded);
    // Modules that can split traffic (the gateway's canary routes)
    // register here; a canary controller in the same process finds them.
    ports.insert(kit::traffic::SplitRegistry::new());
    let nats = if needs(Port::Bus) {
        wire_bus(&ports, &config, embedded).await?
    } else {
        None
    };
    if needs(Port::Limiter) {
        let limiter = gateway::limiter(
            config.redis_url.as_ref().map(|url| {
                let mut settings = ratelimit::RedisSettings::new(url.expose());
                settings.decision_timeout = config.gateway.rate_limit_timeout;
                settings
            }),
            config.gateway.rate_limit_when_down,
            clock.clone(),
        )
        .await
        .context("setting up the rate limiter")?;
        ports.insert(limiter);
    }

    // Kept to the end of this function: sockets opened on them (a pool's
    // database connections) stay usable while the modules stop (ADR 4).
    let connection_threads = match config.http.connection_threads() {
        0 => None,
        n => Some(
            kit::server::ConnectionThreads::start(n).context("starting the connection threads")?,
        ),
    };
    let mut server = HttpServer::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?
        .with_cost_sampling(config.http.cost_sample_every);
    if let Some(threads) = &connection_threads {
        server = server.with_connection_threads(threads.clone());
    }
    let addr = server.local_addr();
    let supervisor = Supervisor::new();
    let platform_tasks = supervisor.for_module("platform");
    // The change timeline (docs/operations/changes.md), before the modules
    // so each records through `ports`; its writer is a platform task, so
    // what modules record while stopping is written at the end.
    let change_store = changes::ChangeStore::open(
        &changes::database_url(
            config.shared_database_url().filter(|_| !embedded),
            &config.data_dir,
        ),
        &config.changes,
        clock.clone(),
        &platform_tasks,
    )
    .await
    .context("opening the change store")?;
    ports.insert(change_store.recorder());
    ports.insert(change_store.feed());
    let server = crate::mtls::secure(
        server,
        &config.tls,
        &platform_tasks,
        change_store.recorder(),
        clock.clone(),
    )?;
    let url = server.url();
    // The console: bound now (a taken port fails before modules start).
    let mut console = crate::console_wiring::ConsoleWiring::bind(&config).await?;
    let mut started: Vec<Started> = Vec::new();
    let mut fronted = Vec::new();
    for entry in &order {
        let name = entry.declaration.name;
        if entry.declaration.fronts_others {
            ports.insert(gateway::Fronted(std::mem::take(&mut fronted)));
        }
        let tasks = supervisor.for_module(name);
        let context = Context {
            tasks: tasks.clone(),
            clock: clock.clone(),
            database_url: database_url_of(&config, entry, embedded)?,
            data_dir: config.data_dir.clone(),
            public_url: url.clone(),
            http: (entry.http_limits)(&config).apply(&config.http),
            ports: ports.clone(),
        };
        let module = (entry.start)(&config, context)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("starting the {name} module"))?;
        let readiness = Readiness::new();
        for check in module.readiness_checks() {
            readiness.add_check(check);
        }
        readiness.add_check(supervisor.readiness_check(&[name]));
        let mut pool_router = None;
        if !entry.declaration.fronts_others {
            // Its pool behind a front: its own stack (metrics, traces,
            // unmatched paths labelled with its name) and its own /readyz.
            let limits = (entry.http_limits)(&config);
            // Its stack sets the security headers (`http.security_headers`):
            // the front's gateway relays its answers as they came, as it
            // relays a remote pool's.
            let http = limits.apply(&config.http);
            // With its catch-all, the paths its routes do not match go
            // around axum here too.
            let router = kit::http::front(
                module.routes().merge(readiness.routes()),
                name,
                &http,
                module.catch_all(),
            );
            pool_router = Some(router.router().clone());
            fronted.push(Colocated {
                name,
                prefixes: entry.declaration.prefixes,
                scoped_prefixes: entry.declaration.scoped_prefixes,
                router,
                http_limits: limits,
                error_dialect: entry.declaration.error_dialect,
            });
        }
        if let Some(console) = &mut console {
            console.add_module(entry, &readiness, pool_router.as_ref());
        }
        started.push(Started {
            name,
            fronts_others: entry.declaration.fronts_others,
            module,
            tasks,
            readiness,
        });
    }

    let alerts = crate::alert_store::open(&crate::alert_store::url(&config, embedded))
        .await
        .context("opening the alert history (alerts.db / schema alerts)")?;
    let live_slos =
        crate::slo_live::LiveSlos::start(&config.slo, clock.clone(), alerts, &platform_tasks)?;
    // The platform measures its own cost (docs/operations/cost.md).
    let cost_store = crate::cost_store::open(&crate::cost_store::url(&config, embedded))
        .await
        .context("opening the cost measurement (cost.db / schema cost)")?;
    let cost_live = crate::cost_live::CostLive::start(
        &config.cost,
        clock.clone(),
        cost_store,
        &platform_tasks,
    )?;
    let gateway_runs = started.iter().any(|m| m.name == "gateway");
    let cost_routes = crate::cost_api::routes(crate::cost_api::CostApiState {
        live: cost_live.clone(),
        keys: crate::cost_api::key_store(&config, embedded, gateway_runs).await?,
    });
    // Probes and the public status page (crates/probe): in `up`, and in
    // `serve` only where the public front runs, so replicas of other
    // modules do not probe (and count) the same targets again.
    let status_routes = if embedded || started.iter().any(|m| m.fronts_others) {
        let shortener_runs = started.iter().any(|m| m.name == "shortener");
        crate::status_page::start(
            &config,
            embedded,
            shortener_runs,
            &url,
            &ports,
            clock.clone(),
            &platform_tasks,
        )
        .await?
    } else {
        None
    };
    let readiness = Readiness::new();
    for module in &started {
        readiness.add_checks_of(&module.readiness);
    }
    readiness.add_check(supervisor.readiness_check(&["platform"]));
    let document = crate::openapi::document(&entries);
    // The outermost stack must not cut a module's request short: it takes
    // the longest timeout and largest body any started module asks for.
    let mut outer_http = config.http.clone();
    for entry in &order {
        let own = (entry.http_limits)(&config).apply(&config.http);
        outer_http.request_timeout = outer_http.request_timeout.max(own.request_timeout);
        outer_http.body_limit_bytes = outer_http.body_limit_bytes.max(own.body_limit_bytes);
    }
    let mut platform_routes = live_slos
        .routes()
        .merge(cost_routes)
        .merge(readiness.routes())
        .merge(kit::metrics::routes())
        .merge(crate::openapi::routes(&document));
    if let Some(status) = status_routes {
        platform_routes = platform_routes.merge(status);
    }
    let router = match (started.iter().find(|m| m.fronts_others), started.as_slice()) {
        // The front serves the platform's routes itself and everything
        // else through its pools.
        (Some(front), _) => kit::http::front(
            front.module.routes().merge(platform_routes),
            front.name,
            &outer_http,
            front.module.catch_all(),
        ),
        // A module alone: its catch-all (the shortener's redirect) is the
        // stack's, with the same way around axum. It needs no label of its
        // own: the stack's is its name, and each router layer costs every
        // request a boxed future and a service clone.
        (None, [only]) => kit::http::front(
            platform_routes.merge(only.module.routes()),
            only.name,
            &outer_http,
            only.module.catch_all(),
        ),
        // Several modules: health, metrics and unmatched paths are the
        // platform's; each module's series keep its name, and a catch-all
        // is a route of its own label, which is a route template
        // (`/{slug}`).
        (None, _) => {
            let mut router: axum::Router = platform_routes.into();
            for module in &started {
                let mut routes = module.module.router();
                if let Some(own) = module.module.catch_all() {
                    routes = routes.route_service(own.route(), own);
                }
                router = router.merge(kit::http::service_label(routes, module.name));
            }
            kit::http::stack(router, "reliable", &outer_http).into()
        }
    };

    let shutdown = CancellationToken::new();
    let console_url = match console {
        Some(console) => {
            let platform = crate::console_wiring::Platform {
                config: &config,
                embedded,
                ports: &ports,
                slos: &live_slos,
                clock: clock.clone(),
                nats,
                cost: cost_live,
            };
            Some(
                console
                    .serve(&platform, &platform_tasks, shutdown.clone())
                    .await?,
            )
        }
        None => None,
    };
    // Served from this task: its result is the process's.
    let serving = server.serve(router, shutdown.clone());
    tokio::pin!(serving);
    let names: Vec<_> = started.iter().map(|m| m.name).collect();
    tracing::info!(
        listen = %addr,
        targets = ?names,
        startup_ms = started_at.elapsed().as_secs_f64() * 1e3,
        "ready"
    );
    println!("listening on {url}");
    if let Some(console_url) = console_url {
        println!("console on {console_url}");
    }

    let mut fatal = None;
    let early_exit = tokio::select! {
        () = stop_signal => None,
        failure = supervisor.fatal() => {
            fatal = Some(failure);
            None
        }
        result = &mut serving => Some(result),
    };
    let server_result = match early_exit {
        Some(result) => result,
        None => {
            readiness.start_draining();
            if fatal.is_none() && !config.shutdown_grace.is_zero() {
                tokio::time::sleep(config.shutdown_grace).await;
            }
            shutdown.cancel();
            serving.await
        }
    };
    for module in started.into_iter().rev() {
        module.module.shutdown().await;
        module.tasks.shutdown().await;
    }
    platform_tasks.shutdown().await;
    tracing::info!("stopped");
    telemetry.shutdown();
    drop(connection_threads);
    if let Some(failure) = fatal {
        bail!("{failure}");
    }
    server_result.context("HTTP server failed")
}

/// The read replica, for the modules that read from one (the shortener):
/// only next to a PostgreSQL primary in `serve`.
fn wire_read_replica(ports: &Ports, config: &Config, embedded: bool) {
    let Some(url) = &config.database_read_url else {
        return;
    };
    if embedded || config.shared_database_url().is_none() {
        tracing::warn!(
            "database_read_url is ignored: a read replica is used only by `serve` on a PostgreSQL database_url"
        );
        return;
    }
    ports.insert(kit::storage::DatabaseReadUrl(url.clone()));
}

/// Where a module's store lives: its own SQLite file in `up` (and for a
/// lone gateway's keys without a database), else the shared PostgreSQL.
fn database_url_of(
    config: &Config,
    entry: &Entry,
    embedded: bool,
) -> anyhow::Result<Option<String>> {
    if !entry.declaration.needs.contains(&Port::Database) {
        return Ok(None);
    }
    let name = entry.declaration.name;
    let sqlite = || {
        Some(format!(
            "sqlite://{}",
            config.data_dir.join(format!("{name}.db")).display()
        ))
    };
    Ok(match (embedded, config.database_url()) {
        (true, _) => sqlite(),
        (false, Some(url)) => Some(url.to_string()),
        // One replica keeps its keys in SQLite; several need PostgreSQL.
        (false, None) if entry.declaration.fronts_others => sqlite(),
        (false, None) => {
            bail!("the {name} module needs a database: set RELIABLE_DATABASE_URL=postgres://...")
        }
    })
}

/// The bus port: in-process in `up` (its acks recorded in the outbox, so
/// a restart re-delivers what never reached the worker), NATS JetStream in
/// `serve`.
async fn wire_bus(
    ports: &Ports,
    config: &Config,
    embedded: bool,
) -> anyhow::Result<Option<JetStreamBus>> {
    let mut nats = None;
    let (publisher, subscriber): (Arc<dyn Publisher>, Arc<dyn Subscriber>) = if embedded {
        let (bus, acked) = InProcessBus::with_ack_feed();
        ports.insert(AckFeed(acked));
        (Arc::new(bus.clone()), Arc::new(bus))
    } else {
        let Some(url) = &config.nats_url else {
            bail!("orders and notifier need NATS JetStream: set RELIABLE_NATS_URL=nats://...");
        };
        let replicas = config.nats_stream_replicas;
        let bus_config = JetStreamConfig {
            ack_wait: config.notifier.ack_wait,
            replicas: usize::from(replicas),
            ..JetStreamConfig::new(url.expose())
        };
        let bus = JetStreamBus::connect(bus_config).await.with_context(|| {
            format!("connecting to NATS JetStream (RELIABLE_NATS_STREAM_REPLICAS={replicas})")
        })?;
        nats = Some(bus.clone());
        (Arc::new(bus.clone()), Arc::new(bus))
    };
    ports.insert(publisher);
    ports.insert(subscriber);
    Ok(nats)
}
