//! The platform pieces one scenario runs on: the real modules' routers,
//! each in the same `kit::http::stack` that `reliable up` puts around
//! them, served on a loopback port, and the load generator driving them.
//!
//! Why the modules' routers and not the gateway in front: the SLOs under
//! test are the modules' own (`service="shortener"`, `service="orders"`);
//! a gateway would add its own retries and breakers, which hide part of a
//! fault from the modules' SLIs and would make the measured ratio differ
//! from the injected one.
//!
//! Two drill-only layers sit around them:
//! - the [`FaultSwitch`] inside the shortener's stack, so the request
//!   metrics count its 500s as the shortener's;
//! - the [`Gate`] outside everything (see `gate`).

use crate::fault::FaultSwitch;
use crate::outage::{Module, OutageDrill};
use axum::extract::{MatchedPath, Request};
use axum::middleware;
use axum::response::IntoResponse;
use axum::Router;
use http::StatusCode;
use kit::tasks::{OnFailure, Supervisor, TaskSpawner};
use kit::Clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::gate::{gated, Gate, Kind};
use super::run::DrillError;

/// Links seeded before the load; the load file redirects to them.
const SEEDED_LINKS: u32 = 20;

/// The orders module behind a slot, so the drill can put a module with a
/// fresh pool in place when the database comes back (a closed pool never
/// reopens; a real one reconnects, which this stands for).
struct OrdersSlot {
    url: String,
    router: Arc<RwLock<Router>>,
    running: Option<(orders::Orders, Arc<dyn orders::storage::OrderStore>)>,
    clock: Arc<dyn Clock>,
    supervisor: Supervisor,
}

impl OrdersSlot {
    async fn start(&mut self) -> Result<(), DrillError> {
        let store = orders::storage::connect(&self.url, &kit::storage::PoolConfig::default())
            .await
            .map_err(setup)?;
        let config = orders::OrdersConfig {
            // No consumer runs in the drill; the outbox is not measured.
            relay: false,
            ..orders::OrdersConfig::default()
        };
        let target = orders::RelayTarget {
            publisher: Arc::new(bus::InProcessBus::new()),
            acked: None,
        };
        let module = orders::Orders::build(
            config,
            store.clone(),
            target,
            self.clock.clone(),
            self.supervisor.for_module("orders"),
        )
        .await
        .map_err(setup)?;
        let stacked = kit::http::stack(
            module.router(),
            orders::SERVICE,
            &kit::http::HttpConfig::default(),
        );
        *self.router.write().unwrap_or_else(|e| e.into_inner()) = stacked;
        if let Some((old, _)) = self.running.replace((module, store)) {
            old.shutdown().await;
        }
        Ok(())
    }
}

/// One scenario's running platform.
pub(super) struct Stage {
    _dir: tempfile::TempDir,
    pub(super) gate: Arc<Gate>,
    pub(super) switch: Arc<FaultSwitch>,
    orders: Option<OrdersSlot>,
    shortener: Option<shortener::Shortener>,
    tasks: TaskSpawner,
    load_stop: Arc<AtomicBool>,
    load: Option<oneshot::Receiver<Result<(), String>>>,
}

fn setup<E: std::fmt::Display>(e: E) -> DrillError {
    DrillError::Setup(e.to_string())
}

impl Stage {
    pub(super) async fn start(
        drill: &OutageDrill,
        clock: Arc<dyn Clock>,
        supervisor: &Supervisor,
    ) -> Result<Self, DrillError> {
        let dir = tempfile::tempdir().map_err(setup)?;
        // Built by the drill, so it may arm; `reliable up` never builds one.
        let switch = FaultSwitch::new(true);
        let mut shortener_app = None;
        let mut shortener_module = None;
        if drill.modules.contains(&Module::Shortener) {
            let url = format!("sqlite:{}", dir.path().join("links.db").display());
            let store = shortener::storage::connect(&url, &kit::storage::PoolConfig::default())
                .await
                .map_err(setup)?;
            let module = shortener::Shortener::build(
                shortener::ShortenerConfig::default(),
                store,
                clock.clone(),
                "http://127.0.0.1",
                supervisor.for_module("shortener"),
            )
            .await
            .map_err(setup)?;
            let app = kit::http::stack(
                switch.wrap(module.router()),
                shortener::SERVICE,
                &kit::http::HttpConfig::default(),
            );
            seed_links(&app).await?;
            shortener_app = Some(app);
            shortener_module = Some(module);
        }
        let mut orders = None;
        if drill.modules.contains(&Module::Orders) {
            let mut slot = OrdersSlot {
                url: format!("sqlite:{}", dir.path().join("orders.db").display()),
                router: Arc::new(RwLock::new(Router::new())),
                running: None,
                clock: clock.clone(),
                supervisor: supervisor.clone(),
            };
            slot.start().await?;
            orders = Some(slot);
        }
        let gate = Gate::new(Kind::quotas(drill.tick_requests, &drill.modules));
        let app = dispatch(shortener_app, orders.as_ref().map(|o| o.router.clone()));
        let app = app.layer(middleware::from_fn_with_state(gate.clone(), gated));
        let tasks = supervisor.for_module("drill");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(setup)?;
        let addr = listener.local_addr().map_err(setup)?;
        let shutdown = tasks.stop_token();
        tasks.spawn("drill-server", OnFailure::Exit, async move {
            // The shortener reads the peer address (visits, forwarded-for).
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        let target = url::Url::parse(&format!("http://{addr}")).map_err(setup)?;
        let plan = load::scenario::compile(
            &super::run::scenario_file(&drill.modules),
            &load::scenario::CompileOptions {
                target: Some(target),
            },
        )
        .map_err(setup)?;
        let load_stop = Arc::new(AtomicBool::new(false));
        let options = load::EngineOptions {
            threads: Some(1),
            stop: Some(load_stop.clone()),
        };
        let (done, load) = oneshot::channel();
        tasks.spawn("drill-load", OnFailure::Unready, async move {
            let outcome = load::run(&plan, &options, &mut [])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = done.send(outcome);
            Ok::<(), std::convert::Infallible>(())
        });
        Ok(Self {
            _dir: dir,
            gate,
            switch,
            orders,
            shortener: shortener_module,
            tasks,
            load_stop,
            load: Some(load),
        })
    }

    /// The orders database goes away: its pool is closed under load.
    pub(super) async fn cut_orders_db(&self) {
        if let Some((_, store)) = self.orders.as_ref().and_then(|o| o.running.as_ref()) {
            store.pool().close().await;
        }
    }

    /// The orders database is back: the module reconnects.
    pub(super) async fn restore_orders_db(&mut self) -> Result<(), DrillError> {
        match self.orders.as_mut() {
            Some(slot) => slot.start().await,
            None => Ok(()),
        }
    }

    /// Whether the load generator stopped before the drill asked it to.
    pub(super) fn load_failed(&mut self) -> Option<String> {
        let load = self.load.as_mut()?;
        match load.try_recv() {
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) => Some("the load generator stopped early".into()),
            Err(_) => None,
        }
    }

    /// Stops the load, the server and the modules.
    pub(super) async fn stop(mut self) {
        self.load_stop.store(true, Ordering::SeqCst);
        self.gate.close();
        if let Some(load) = self.load.take() {
            let _ = load.await;
        }
        self.tasks.shutdown().await;
        if let Some(module) = self.shortener.take() {
            module.shutdown().await;
        }
        if let Some(slot) = self.orders.as_mut() {
            if let Some((module, _)) = slot.running.take() {
                module.shutdown().await;
            }
        }
    }
}

/// The links the load redirects to, `drill-1` to `drill-20`, created
/// through the module's API before the load (and the gate) start.
async fn seed_links(app: &Router) -> Result<(), DrillError> {
    for i in 1..=SEEDED_LINKS {
        let body = format!(r#"{{"url":"https://example.com/drill/{i}","slug":"drill-{i}"}}"#);
        let mut request = http::Request::post("/api/v1/links")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .map_err(setup)?;
        // The shortener reads the peer address, as a served request has.
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))));
        let response = app.clone().oneshot(request).await.map_err(setup)?;
        if response.status() != StatusCode::CREATED {
            return Err(DrillError::Setup(format!(
                "seeding link drill-{i}: {}",
                response.status()
            )));
        }
    }
    Ok(())
}

/// Orders' paths to the orders slot, the rest to the shortener, without
/// an outer route (each module's own router sets the matched route its
/// request metrics carry).
fn dispatch(shortener: Option<Router>, orders: Option<Arc<RwLock<Router>>>) -> Router {
    let service = tower::service_fn(move |mut request: Request| {
        request.extensions_mut().remove::<MatchedPath>();
        let is_orders = request.uri().path().starts_with("/api/v1/orders");
        let router = match (&orders, &shortener) {
            (Some(slot), _) if is_orders => {
                Some(slot.read().unwrap_or_else(|e| e.into_inner()).clone())
            }
            (_, Some(app)) if !is_orders => Some(app.clone()),
            _ => None,
        };
        async move {
            match router {
                Some(router) => router.oneshot(request).await,
                None => Ok(StatusCode::NOT_FOUND.into_response()),
            }
        }
    });
    Router::new().fallback_service(service)
}
