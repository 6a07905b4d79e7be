//! Chaos engineering for the platform, in two parts that meet through
//! toxiproxy's HTTP API:
//!
//! - [`proxy`]: `reliable chaos proxy`, a TCP proxy placed between a module
//!   and a dependency (PostgreSQL, NATS, Redis, an upstream, a webhook
//!   receiver) that injects faults ("toxics"). It serves Shopify
//!   toxiproxy's HTTP API and data model, so existing toxiproxy clients
//!   and test suites drive it unchanged; tests also run it in-process.
//! - [`experiment`]: `reliable chaos run EXPERIMENT.yaml`, Chaos Toolkit's
//!   model (a steady-state hypothesis of probes with tolerances, a method
//!   of actions, rollbacks), checked before, during and after the method.
#![forbid(unsafe_code)]

pub mod experiment;
pub mod proxy;
