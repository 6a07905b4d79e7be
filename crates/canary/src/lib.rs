//! Progressive delivery: a canary controller with a statistical judge.
//!
//! - [`spec`]: canary specs (YAML in Git) compiled into a plan;
//! - [`judge`]: the statistics: two proportions, Mann-Whitney U with an
//!   effect floor, Kayenta-style scoring, the SLO burn-rate guard;
//! - [`metrics`]: the two sides' numbers, from this process's registry or
//!   from Prometheus;
//! - [`target`]: what traffic is shifted on (gateway routes, model
//!   versions), in process or over their admin APIs;
//! - [`controller`]: steps, looks, decisions, rollbacks, resumption;
//! - [`store`]: runs and decisions in the module's database;
//! - [`http`], [`judge_api`]: the controller's API and the stateless judge
//!   Argo Rollouts calls; [`watch`]: specs started from a directory;
//! - [`module`]: the controller as a platform module (`canary`).
#![forbid(unsafe_code)]

pub mod config;
pub mod controller;
pub mod http;
pub mod judge;
pub mod judge_api;
pub mod metrics;
mod module;
pub mod spec;
pub mod store;
pub mod target;
pub mod watch;

pub use config::CanaryConfig;
pub use controller::Controller;
pub use module::{load_slos, sources, targets, CanaryModule};

/// The module's name: its `service` label, config section and schema.
pub const SERVICE: &str = "canary";
