//! The platform the drill writes to and recovers: the shortener and
//! orders modules, each in the `kit::http::stack` that `reliable up` puts
//! around it, on the store under test, served on a loopback port. The
//! orders relay runs (onto an in-process bus), so the outbox is exercised
//! after the restore as it is in production.

use super::run::DrError;
use axum::extract::{MatchedPath, Request};
use axum::Router;
use kit::storage::PoolConfig;
use kit::tasks::{OnFailure, Supervisor, TaskSpawner};
use kit::{Clock, SystemClock};
use std::sync::Arc;
use tower::ServiceExt;

/// Where a module's store is: its file in the data dir, or the database.
pub(super) fn url_of(store: &backup::Store, module: &str) -> String {
    match store {
        backup::Store::Sqlite { data_dir } => {
            format!(
                "sqlite://{}",
                data_dir.join(format!("{module}.db")).display()
            )
        }
        backup::Store::Postgres { url } => url.clone(),
    }
}

/// The running modules and their server.
pub(super) struct Platform {
    /// `http://127.0.0.1:PORT`.
    pub(super) base: String,
    shortener: shortener::Shortener,
    orders: orders::Orders,
    tasks: TaskSpawner,
}

impl Platform {
    /// Opens (and migrates) the stores, builds the modules and serves them.
    pub(super) async fn start(store: &backup::Store) -> Result<Self, DrError> {
        let supervisor = Supervisor::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let links =
            shortener::storage::connect(&url_of(store, shortener::SERVICE), &PoolConfig::default())
                .await
                .map_err(|e| DrError::setup("opening the shortener's store", e))?;
        let shortener = shortener::Shortener::build(
            shortener::ShortenerConfig::default(),
            links,
            clock.clone(),
            "http://127.0.0.1",
            supervisor.for_module("shortener"),
        )
        .await
        .map_err(|e| DrError::setup("starting the shortener", e))?;
        let order_store =
            orders::storage::connect(&url_of(store, orders::SERVICE), &PoolConfig::default())
                .await
                .map_err(|e| DrError::setup("opening the orders store", e))?;
        let orders = orders::Orders::build(
            orders::OrdersConfig::default(),
            order_store,
            orders::RelayTarget {
                publisher: Arc::new(bus::InProcessBus::new()),
                acked: None,
            },
            clock,
            supervisor.for_module("orders"),
        )
        .await
        .map_err(|e| DrError::setup("starting orders", e))?;
        let http = kit::http::HttpConfig::default();
        let app = dispatch(
            kit::http::stack(shortener.router(), shortener::SERVICE, &http),
            kit::http::stack(orders.router(), orders::SERVICE, &http),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DrError::setup("binding a loopback port", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DrError::setup("binding a loopback port", e))?;
        let tasks = supervisor.for_module("drill");
        let stop = tasks.stop_token();
        tasks.spawn("dr-server", OnFailure::Exit, async move {
            // The shortener reads the peer address (visits).
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(Self {
            base: format!("http://{addr}"),
            shortener,
            orders,
            tasks,
        })
    }

    /// Stops serving and shuts the modules down (their pools close).
    pub(super) async fn stop(self) {
        self.tasks.shutdown().await;
        self.shortener.shutdown().await;
        self.orders.shutdown().await;
    }
}

/// Orders' paths to orders, the rest to the shortener, without an outer
/// route (each module's router sets the route its metrics carry).
fn dispatch(shortener: Router, orders: Router) -> Router {
    let service = tower::service_fn(move |mut request: Request| {
        request.extensions_mut().remove::<MatchedPath>();
        let router = if request.uri().path().starts_with("/api/v1/orders") {
            orders.clone()
        } else {
            shortener.clone()
        };
        async move { router.oneshot(request).await }
    });
    Router::new().fallback_service(service)
}
