//! The fault proxy: TCP proxies that inject faults ("toxics") between a
//! module and a dependency, driven through Shopify toxiproxy's HTTP API.
//!
//! - [`toxic`]: the toxic types and their attributes, parsed and
//!   range-checked once; [`spec`]: proxies as the API takes and shows them.
//! - [`Proxies`]: the set of proxies, changed by the API or directly from
//!   Rust (tests put PostgreSQL, NATS, Redis or a webhook receiver behind
//!   one without going through HTTP).
//! - `link` and `pump`: the listener, the connections and the per-direction
//!   forwarding loop, cheap while no toxic is active (see `pump`).
//! - [`ProxyServer`] and [`router`]: toxiproxy's HTTP API.
//!
//! docs/tools/chaos.md is the user's page: API, toxics, differences from
//! toxiproxy, performance.

mod api;
mod error;
mod link;
mod proxies;
mod pump;
pub mod spec;
pub mod toxic;

pub use api::{router, ProxyServer, VERSION};
pub use error::ApiError;
pub use proxies::{Proxies, ProxyCounters};
pub use spec::{ProxyInfo, ProxySpec, ProxyUpdate, DEFAULT_LISTEN};
pub use toxic::{Stream, ToxicKind, ToxicSpec};
