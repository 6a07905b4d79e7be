//! Module wiring: which modules run, on which adapters, in which order.
//!
//! Start order: telemetry, storage (migrations), modules, then the
//! listener; the `listening on` line is printed once requests can be
//! served. Stop order is the reverse: readiness false, grace period, stop
//! accepting and drain in-flight requests, flush module background work
//! (buffered visits; the notifier's in-flight deliveries, then the outbox
//! relay), flush telemetry. The event path is wired in [`crate::event_path`].
//!
//! With the gateway among the targets (always in `up`), it takes the
//! public address and the other modules become its in-process pool
//! ([`crate::gateway_front`]). Two readiness states then exist: the
//! modules' own (what the gateway's health check of the pool asks) and the
//! front's (the modules' checks plus the key database), and only the
//! front's drains on shutdown, so the pool keeps serving the requests that
//! still arrive during `shutdown_grace`.

use crate::event_path::{EventPath, Plan};
use crate::settings::Config;
use anyhow::{bail, Context};
use axum::Router;
use kit::health::Readiness;
use kit::server::HttpServer;
use kit::{CancellationToken, SystemClock};
use shortener::Shortener;
use std::sync::Arc;
use std::time::Instant;

/// A module `serve --target` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Shortener,
    Orders,
    Notifier,
    /// The API gateway; in front of the co-located modules (gateway_front.rs).
    Gateway,
}

impl Target {
    const ALL: &'static [Target] = &[
        Target::Shortener,
        Target::Orders,
        Target::Notifier,
        Target::Gateway,
    ];
    /// `up`: every module, behind the gateway (in-process, no TCP hop).
    const UP: &'static [Target] = Self::ALL;

    fn name(self) -> &'static str {
        match self {
            Target::Shortener => "shortener",
            Target::Orders => "orders",
            Target::Notifier => "notifier",
            Target::Gateway => "gateway",
        }
    }

    pub fn parse_all(names: &[String]) -> Result<Vec<Target>, String> {
        let mut targets = Vec::new();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let found: Vec<Target> = match name {
                "all" => Self::ALL.to_vec(),
                _ => match Self::ALL.iter().find(|t| t.name() == name) {
                    Some(t) => vec![*t],
                    None => {
                        let known: Vec<_> = Self::ALL.iter().map(|t| t.name()).collect();
                        return Err(format!(
                            "unknown target `{name}`; known targets: {}, all",
                            known.join(", ")
                        ));
                    }
                },
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
        Ok(targets)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everything, embedded adapters.
    Up,
    /// Chosen modules, distributed adapters.
    Serve(Vec<Target>),
}

pub async fn run(mode: Mode, config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let telemetry = kit::telemetry::init("reliable", &config.log)?;
    kit::metrics::install();
    // Handlers first: from here on SIGTERM means "drain", never "die".
    let stop_signal = kit::shutdown::signal();

    let targets = match &mode {
        Mode::Up => Target::UP.to_vec(),
        Mode::Serve(targets) => targets.clone(),
    };
    let database_url = match &mode {
        Mode::Up => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
            format!(
                "sqlite://{}",
                config.data_dir.join("shortener.db").display()
            )
        }
        Mode::Serve(targets) => match &config.database_url {
            Some(url) => url.clone(),
            // A lone gateway keeps its keys in SQLite under the data dir
            // (one replica; several need the shared PostgreSQL).
            None if targets == &[Target::Gateway] => {
                std::fs::create_dir_all(&config.data_dir)
                    .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
                crate::gateway_front::keys_url(None, &config.data_dir)
            }
            None => bail!("`serve` needs a database: set RELIABLE_DATABASE_URL=postgres://..."),
        },
    };

    let server = HttpServer::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = server.local_addr();
    let modules_ready = Readiness::new();
    let mut router = Router::new();
    let mut shortener = None;
    for target in &targets {
        match target {
            Target::Shortener => {
                let store = shortener::storage::connect(&database_url, &config.shortener.database)
                    .await
                    .context("opening the link database")?;
                let module = Shortener::build(
                    config.shortener.clone(),
                    store,
                    Arc::new(SystemClock),
                    &format!("http://{addr}"),
                )
                .await;
                modules_ready.add_check(module.readiness_check());
                router = router.merge(module.router());
                shortener = Some(module);
            }
            Target::Orders | Target::Notifier | Target::Gateway => {}
        }
    }
    let plan = Plan {
        orders: targets.contains(&Target::Orders),
        notifier: targets.contains(&Target::Notifier),
        database_url: match &mode {
            Mode::Up => None,
            Mode::Serve(_) => Some(database_url.as_str()),
        },
    };
    let has_events = plan.orders || plan.notifier;
    let (event_path, event_routes) = EventPath::start(plan, &config, &modules_ready).await?;
    let fronted = targets.contains(&Target::Gateway);
    // Behind a co-located gateway the event modules are a pool of their
    // own (gateway_front.rs); without one, everything shares the router.
    let events = if fronted && has_events {
        let events = event_routes.merge(modules_ready.routes());
        Some(kit::http::stack(
            events,
            Target::Orders.name(),
            &config.http,
        ))
    } else {
        router = router.merge(event_routes);
        None
    };
    let slo_stop = CancellationToken::new();
    let live_slos =
        crate::slo_live::LiveSlos::start(&config.slo, Arc::new(SystemClock), slo_stop.clone())?;
    let router = router
        .merge(live_slos.routes())
        .merge(modules_ready.routes())
        .merge(kit::metrics::routes());
    // Routes of modules without their own label (the shortener, health,
    // metrics) carry the first target's name.
    let default_service = targets.first().map_or("reliable", |t| t.name());
    let router = kit::http::stack(router, default_service, &config.http);

    let shutdown = CancellationToken::new();
    let (router, readiness) = if fronted {
        let keys_url = crate::gateway_front::keys_url(
            matches!(mode, Mode::Serve(_)).then_some(database_url.as_str()),
            &config.data_dir,
        );
        let modules = targets.iter().any(|t| *t != Target::Gateway).then_some(
            crate::gateway_front::Colocated {
                local: router,
                events,
            },
        );
        let gateway = crate::gateway_front::build(&config, modules, &keys_url).await?;
        let readiness = Readiness::new();
        readiness.add_checks_of(&modules_ready);
        if let Some(check) = gateway.readiness_check() {
            readiness.add_check(check);
        }
        let checks = gateway.clone();
        let token = shutdown.clone();
        tokio::spawn(async move { checks.health_checks(token).await });
        let public = gateway
            .router()
            .merge(readiness.routes())
            .merge(kit::metrics::routes());
        (
            kit::http::stack(public, gateway::SERVICE, &config.http),
            readiness,
        )
    } else {
        (router, modules_ready)
    };
    let mut server_task = tokio::spawn(server.serve(router, shutdown.clone()));
    let names: Vec<_> = targets.iter().map(|t| t.name()).collect();
    tracing::info!(
        listen = %addr,
        targets = ?names,
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "ready"
    );
    println!("listening on http://{addr}");

    let early_exit = tokio::select! {
        () = stop_signal => None,
        result = &mut server_task => Some(result),
    };
    let server_result = match early_exit {
        Some(result) => result,
        None => {
            readiness.start_draining();
            if !config.shutdown_grace.is_zero() {
                tokio::time::sleep(config.shutdown_grace).await;
            }
            shutdown.cancel();
            server_task.await
        }
    };
    slo_stop.cancel();
    if let Some(module) = shortener {
        module.shutdown().await;
    }
    event_path.shutdown().await;
    tracing::info!("stopped");
    telemetry.shutdown();
    match server_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("HTTP server failed")),
        Err(e) => Err(anyhow::Error::new(e).context("HTTP server task panicked")),
    }
}
