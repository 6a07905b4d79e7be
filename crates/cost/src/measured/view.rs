//! The console's cost panel in one call: cost per module per step, the
//! top routes and models, LLM spend per key against its budget, totals.
//! Pure, over the measured buckets, so the binary's wiring is one call.

use super::{allocate_measured, Kind, Measured, Options};
use crate::allocation::{AllocationSet, IDLE, UNALLOCATED};
use crate::pricing::Pricing;
use crate::tokens::{budgets, spend, BudgetStatus, TokenSpend};
use crate::window::{Window, WindowError};
use chrono::Duration;
use serde::Serialize;
use std::collections::BTreeMap;

/// The cost of one step, by module.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepCost {
    pub start: String,
    pub end: String,
    /// Module -> total cost (`__shared__` and `__unallocated__` included).
    pub modules: BTreeMap<String, f64>,
    pub idle_cost: f64,
}

/// A module, route or model and what it cost over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineCost {
    pub name: String,
    /// The module it belongs to (its own name on a module's line; empty
    /// when the measurement names none).
    pub module: String,
    pub total_cost: f64,
    pub requests: u64,
    pub cost_per_1k_requests: Option<f64>,
}

/// Everything the console's cost panel shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostView {
    pub currency: String,
    pub start: String,
    pub end: String,
    /// Hours the platform ran (was measured) within the window.
    pub observed_hours: f64,
    pub steps: Vec<StepCost>,
    /// Every module (with `__shared__` and `__unallocated__`), most first.
    pub modules: Vec<LineCost>,
    /// The costliest routes, most first.
    pub top_routes: Vec<LineCost>,
    /// The costliest model versions (inference) and LLM models, most first.
    pub top_models: Vec<LineCost>,
    /// LLM spend per key and model.
    pub keys: Vec<TokenSpend>,
    /// Every budget of the pricing file, projected at the observed rate.
    pub budgets: Vec<BudgetStatus>,
    /// Everything, idle included.
    pub total_cost: f64,
    pub idle_cost: f64,
    /// `total_cost` over 30 days at the observed rate.
    pub projected_month: f64,
}

/// Hours the process was observed in `rows`.
pub fn observed_hours(rows: &[Measured]) -> f64 {
    rows.iter()
        .filter(|r| r.kind == Kind::Process)
        .map(|r| r.seconds)
        .sum::<f64>()
        / 3600.0
}

/// The panel over `window` in steps of `step`, the `top` costliest routes
/// and models; `rows` are the buckets of the window.
pub fn view(
    pricing: &Pricing,
    window: &Window,
    step: Option<Duration>,
    rows: &[Measured],
    options: Options,
    top: usize,
) -> Result<CostView, WindowError> {
    let rows: Vec<Measured> = rows
        .iter()
        .filter(|r| r.bucket >= window.start && r.bucket < window.end)
        .cloned()
        .collect();
    let steps = allocate_measured(pricing, window, step, &rows, options)?
        .iter()
        .map(|set| {
            let modules = set.aggregate("module");
            StepCost {
                start: set.window.start.to_rfc3339(),
                end: set.window.end.to_rfc3339(),
                idle_cost: modules.allocations.get(IDLE).map_or(0.0, |a| a.total_cost),
                modules: modules
                    .allocations
                    .iter()
                    .filter(|(name, _)| *name != IDLE)
                    .map(|(name, a)| (name.clone(), a.total_cost))
                    .collect(),
            }
        })
        .collect();
    let whole = allocate_measured(pricing, window, None, &rows, options)?
        .pop()
        .unwrap_or_else(|| AllocationSet {
            window: *window,
            allocations: BTreeMap::new(),
        });
    let hours = observed_hours(&rows);
    let keys = spend(pricing, &super::token_usages(&rows), hours);
    let mut by_key: BTreeMap<String, f64> = BTreeMap::new();
    for line in &keys {
        *by_key.entry(line.key.clone()).or_default() += line.cost;
    }
    let by_module: BTreeMap<String, f64> = whole
        .aggregate("module")
        .allocations
        .into_iter()
        .filter(|(name, _)| name != IDLE)
        .map(|(name, a)| (name, a.total_cost))
        .collect();
    let total_cost = whole.total_cost();
    Ok(CostView {
        currency: pricing.currency.as_str().to_string(),
        start: window.start.to_rfc3339(),
        end: window.end.to_rfc3339(),
        observed_hours: hours,
        steps,
        modules: top_lines(&whole, "module", usize::MAX),
        top_routes: top_lines(&whole, "route", top),
        top_models: top_lines(&whole, "model", top),
        budgets: budgets(pricing, &by_module, &by_key, hours),
        keys,
        idle_cost: whole.allocations.get(IDLE).map_or(0.0, |a| a.total_cost),
        total_cost,
        projected_month: crate::project_month(total_cost, hours),
    })
}

/// The lines of `set` grouped by `by` within their module (two modules'
/// routes of the same template stay apart), the `top` costliest first.
fn top_lines(set: &AllocationSet, by: &str, top: usize) -> Vec<LineCost> {
    let mut groups: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    for allocation in set.allocations.values() {
        let Some(name) = allocation.properties.get(by) else {
            continue;
        };
        if allocation.name == IDLE || name == UNALLOCATED {
            continue;
        }
        let module = allocation
            .properties
            .get("module")
            .cloned()
            .unwrap_or_default();
        let group = groups.entry((module, name.clone())).or_default();
        group.0 += allocation.total_cost;
        group.1 += allocation.requests;
    }
    let mut lines: Vec<LineCost> = groups
        .into_iter()
        .map(|((module, name), (total_cost, requests))| LineCost {
            name,
            module,
            total_cost,
            requests,
            cost_per_1k_requests: (requests > 0).then(|| total_cost / requests as f64 * 1000.0),
        })
        .collect();
    lines.sort_by(|a, b| b.total_cost.total_cmp(&a.total_cost));
    lines.truncate(top);
    lines
}
