//! The chassis every Reliable module is built on.
//!
//! A module (shortener, orders, gateway, ...) should only describe its
//! domain, its routes and its storage; everything that must behave the same
//! in every module lives here, so operators learn it once:
//!
//! - [`changes`]: the change-event port (who changed what, when) the
//!   console's timeline reads;
//! - [`config`]: layered configuration (defaults < TOML file < `RELIABLE_*`
//!   environment < CLI flags), validated at start with errors that name the key;
//! - [`telemetry`]: JSON logs with `trace_id`/`span_id`, optional OTLP export
//!   with span kinds across processes ([`telemetry::Hop`]) and each module's
//!   own `service.name`;
//! - [`trace_context`]: W3C `traceparent` parsing and generation;
//! - [`metrics`]: the Prometheus recorder, `/metrics` rendering, process metrics;
//! - [`cpu_cost`] and [`memory`]: CPU by module, route, model version and
//!   background task, and memory by module, for cost attribution;
//! - [`http`]: the middleware stack (request id, tracing, RED metrics,
//!   timeout, body limit, panic to 500) and the problem+json JSON extractor;
//! - [`forwarded`]: the client's address behind trusted proxies (`X-Forwarded-For`);
//! - [`net`]: which addresses are public (the SSRF guards of every module);
//! - [`problem`]: RFC 9457 `application/problem+json` errors;
//! - [`health`]: `/healthz`, `/readyz` (dependency checks, draining);
//! - [`server`]: binding (port 0 for tests) and graceful serving;
//! - [`storage`]: pools, per-module schema or file, migrations, the one
//!   `StoreError`, database readiness and the stored-time convention;
//! - [`shutdown`]: SIGTERM/SIGINT and the cancellation token passed everywhere;
//! - [`clock`]: injected time, so windows and expiries are testable without sleeping;
//! - [`module`]: the [`module::Module`] trait every service module implements;
//! - [`openapi`]: OpenAPI documents from the handlers, and the responses every
//!   operation may give;
//! - [`tasks`]: supervised background tasks (a dead task fails readiness or the process);
//! - [`traffic`]: the traffic-split port (baseline and canary, the canary's
//!   share changed at runtime) and the registry the canary controller finds it in;
//! - [`tls`]: the `[tls]` settings (identity, platform CA, client
//!   certificates, allow-list by peer identity) over the `tls` crate.
#![forbid(unsafe_code)]

pub mod changes;
pub mod clock;
pub mod config;
pub mod cpu_cost;
pub mod deadline;
pub mod forwarded;
pub mod health;
pub mod http;
pub mod ids;
pub mod memory;
pub mod metrics;
pub mod module;
pub mod net;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod trace_context;
pub mod traffic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use problem::Problem;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;
