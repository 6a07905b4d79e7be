//! What the platform costs, and who spends it, by OpenCost's allocation
//! rules (docs/operations/cost.md).
//!
//! The numbers that decide cost (CPU, memory, GPUs, tokens) are measured
//! elsewhere: from Prometheus on Kubernetes, or by the platform itself in
//! `reliable up` and `serve`. This crate is the arithmetic they share:
//!
//! - `pricing`: the pricing file (`cost.yaml`), checked where it is read;
//! - `window`: OpenCost's `window` parameter (`7d`, `lastweek`, a pair of
//!   times) against an injected `now`;
//! - `allocation`: max(request, usage) × time × rate per workload, idle as
//!   its own line or shared by cost, aggregation by a property, and the
//!   JSON shape of OpenCost's `/allocation`;
//! - `measured`: what `reliable up` and `serve` measure of themselves
//!   (5-minute buckets) priced by the same rules;
//! - `tokens`: LLM spend per key and model (external per-token prices or a
//!   self-hosted backend's hours split by token share), and budgets;
//! - `budget_rules`: the budgets as burn-rate style Prometheus alerts,
//!   written with the SLO rules.
#![forbid(unsafe_code)]

pub mod allocation;
pub mod budget_rules;
pub mod measured;
pub mod pricing;
pub mod prometheus;
pub mod tokens;
pub mod window;

pub use allocation::{allocate, Allocation, AllocationSet, IdleOptions, Usage, IDLE, UNALLOCATED};
pub use pricing::{Pricing, PricingError};
pub use tokens::{spend, BudgetStatus, SpendBasis, TokenSpend, TokenUsage};
pub use window::{Window, WindowError};

/// Hours in the month a projection is made for (30 days).
pub const MONTH_HOURS: f64 = 720.0;

/// What a cost over `window_hours` comes to over 30 days at the same rate.
pub fn project_month(cost: f64, window_hours: f64) -> f64 {
    if window_hours > 0.0 {
        cost * MONTH_HOURS / window_hours
    } else {
        0.0
    }
}
