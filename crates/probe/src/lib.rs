//! Synthetic probes and the public status page.
//!
//! Why a crate of its own: probes watch the platform from outside, the way
//! a user meets it (a URL answering, a port open, a name resolving), and
//! the status page tells the public what they found; neither belongs to
//! one service module, and the binary wires both.
//!
//! - [`config`]: the `[probes]` and `[status]` sections, validated at start;
//! - [`check`]: one HTTP(S) / TCP / DNS check into an [`check::Outcome`]
//!   (TLS expiry read from the peer's certificate);
//! - [`runner`]: one supervised task per probe; metrics `probe_success`,
//!   `probe_duration_seconds`, `probe_checks_total`,
//!   `probe_ssl_earliest_cert_expiry`; latest results; daily totals;
//! - [`store`]: daily totals (90 days) and incident notes, SQLite or
//!   PostgreSQL through [`kit::storage`];
//! - [`incident`]: incident notes, parsed and bounded;
//! - [`report`] and [`page`]: the report per public component and its HTML;
//! - [`http`]: `/status`, `/api/v1/status`, the incidents API, caching;
//! - [`builtin`]: the shortener redirect probe `reliable up` runs.
#![forbid(unsafe_code)]

pub mod builtin;
pub mod check;
pub mod config;
pub mod http;
pub mod incident;
pub mod page;
pub mod report;
pub mod runner;
pub mod store;

pub use config::{ProbeSpec, ProbesConfig, StatusConfig};
pub use http::{AuthFailure, StatusPage, WriteAuthorizer, WRITE_SCOPE};
pub use runner::{Latest, Results};
pub use store::ProbeStore;
