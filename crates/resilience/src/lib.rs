//! Calling a network service without letting its failures become ours.
//!
//! Every module that calls something over the network (the API gateway,
//! the LLM gateway, remote inference backends, the notifier's webhooks)
//! needs the same few mechanisms. They live here once:
//!
//! - [`failure`]: whether a failed call may be tried again and whether it
//!   is the endpoint's fault, decided from typed errors and status codes
//!   (never from error strings), plus which methods are idempotent;
//! - [`breaker`]: a circuit breaker (closed, open, half-open) on an
//!   injected clock;
//! - [`retry`]: a retry budget (retries at most a fraction of requests)
//!   and jittered exponential backoff;
//! - [`pool`]: interchangeable endpoints, power of two choices on
//!   in-flight calls, passive ejection by each endpoint's breaker;
//! - [`config`]: the `breaker` and `retry` settings every caller shares;
//! - [`health`]: active health checks that take endpoints out of a pool
//!   and bring them back;
//! - [`client`]: an HTTP/1.1 client for `http://` and `https://` (rustls,
//!   webpki roots plus an optional CA bundle) with typed errors and
//!   per-call timeouts, and an optional filter on the addresses names
//!   resolve to ([`resolve`], the SSRF guard of user-given URLs); [`body`]: streaming bodies, size limits that hold
//!   while streaming, and replayable request bodies for retries.
//!
//! What is *not* here: routing, admission, header rules. Those are the
//! caller's (the gateway keeps its own); this crate only makes the call.
#![forbid(unsafe_code)]

pub mod body;
pub mod breaker;
pub mod client;
pub mod config;
mod connections;
pub mod failure;
pub mod health;
pub mod pool;
pub mod resolve;
pub mod retry;

pub use breaker::{Breaker, BreakerState};
pub use client::{
    read_ca_bundle, use_platform_tls, BadBaseUrl, BaseUrl, ClientError, ClientSettings, HttpClient,
    TlsError,
};
pub use connections::ResponseBody;
pub use failure::{classify_status, is_idempotent, Classify, Retry, Verdict};
pub use health::HealthSchedule;
pub use pool::{Endpoint, InFlight, Pool, PoolMetrics};
pub use resolve::AddressFilter;
pub use retry::{backoff, RetryBudget};
