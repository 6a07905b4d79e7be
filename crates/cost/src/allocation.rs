//! OpenCost's allocation arithmetic over what workloads used.
//!
//! For each workload over a window (OpenCost specification, "Resource
//! Allocation Costs"):
//!
//! - core-hours = max(request average, usage average) × hours running, and
//!   the same for memory (byte-hours) and GPUs (count × hours);
//! - each is priced at the rate of the node it runs on (its hourly price
//!   split by resource, [`Pricing::node_rates`]) or, on no named node, at
//!   the file's resource prices;
//! - external costs (an external LLM backend's tokens × price) are added
//!   as they are.
//!
//! **Idle** is the capacity the nodes were paid for minus what was
//! allocated, per resource, never below 0. It is its own line, `__idle__`,
//! unless it is shared: `share_idle` spreads each resource's idle over the
//! allocations in proportion to their cost of that resource (OpenCost's
//! "weighted" share). It is never spread silently.
//!
//! Aggregation sums allocations that share a property value; one without
//! it goes to `__unallocated__`, as in OpenCost.

use crate::pricing::{NodeRates, Pricing};
use crate::window::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The idle line's name.
pub const IDLE: &str = "__idle__";
/// Where allocations without the aggregation property go.
pub const UNALLOCATED: &str = "__unallocated__";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one workload (a module, a route, a model, a pod) used over a
/// window, the input of [`allocate`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Its name at the finest level measured.
    pub name: String,
    /// What it can be aggregated by: `module`, `route`, `model`, `key`,
    /// `namespace`, `pod`...
    pub properties: BTreeMap<String, String>,
    /// The node type it ran on (a key of the pricing file's `node_types`);
    /// `None`: priced at the resource prices.
    pub node_type: Option<String>,
    /// Minutes it ran within the window.
    pub minutes: f64,
    pub cpu_core_request_average: f64,
    pub cpu_core_usage_average: f64,
    pub ram_byte_request_average: f64,
    pub ram_byte_usage_average: f64,
    pub gpu_count: f64,
    /// Costs priced elsewhere (external LLM tokens).
    pub external_cost: f64,
    /// Requests served, for the cost of 1,000.
    pub requests: u64,
}

/// One line of an allocation set, with OpenCost's field names so tools
/// written for OpenCost's `/allocation` read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    pub window: WindowJson,
    pub start: String,
    pub end: String,
    pub minutes: f64,
    pub cpu_core_request_average: f64,
    pub cpu_core_usage_average: f64,
    pub cpu_core_hours: f64,
    pub cpu_cost: f64,
    /// The part of `cpu_cost` that is shared idle.
    pub cpu_cost_idle: f64,
    pub cpu_efficiency: f64,
    pub gpu_count: f64,
    pub gpu_hours: f64,
    pub gpu_cost: f64,
    pub gpu_cost_idle: f64,
    pub ram_byte_request_average: f64,
    pub ram_byte_usage_average: f64,
    pub ram_byte_hours: f64,
    pub ram_cost: f64,
    pub ram_cost_idle: f64,
    pub ram_efficiency: f64,
    pub external_cost: f64,
    pub shared_cost: f64,
    pub total_cost: f64,
    pub total_efficiency: f64,
    /// Not in OpenCost: requests served, and the cost of 1,000 of them.
    pub requests: u64,
    pub cost_per_1k_requests: Option<f64>,
}

/// A window as OpenCost writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowJson {
    pub start: String,
    pub end: String,
}

/// How idle is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleOptions {
    /// Report idle (as a line, or shared).
    pub include_idle: bool,
    /// Spread idle over the allocations instead of one `__idle__` line.
    pub share_idle: bool,
}

impl Default for IdleOptions {
    fn default() -> Self {
        Self {
            include_idle: true,
            share_idle: false,
        }
    }
}

/// The allocations of one window (one step of a query).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationSet {
    #[serde(skip)]
    pub window: Window,
    #[serde(flatten)]
    pub allocations: BTreeMap<String, Allocation>,
}

impl AllocationSet {
    /// The sum of every line's total (idle included when it is a line).
    pub fn total_cost(&self) -> f64 {
        self.allocations.values().map(|a| a.total_cost).sum()
    }

    /// Allocations grouped by one property (`module`, `route`, ...).
    pub fn aggregate(&self, by: &str) -> AllocationSet {
        let mut groups: BTreeMap<String, Allocation> = BTreeMap::new();
        for allocation in self.allocations.values() {
            let key = if allocation.name == IDLE {
                IDLE.to_string()
            } else {
                allocation
                    .properties
                    .get(by)
                    .cloned()
                    .unwrap_or_else(|| UNALLOCATED.to_string())
            };
            let group = groups.entry(key.clone()).or_insert_with(|| Allocation {
                name: key.clone(),
                properties: BTreeMap::from([(by.to_string(), key.clone())]),
                window: allocation.window.clone(),
                start: allocation.start.clone(),
                end: allocation.end.clone(),
                ..Allocation::default()
            });
            add_into(group, allocation);
        }
        for group in groups.values_mut() {
            finish(group);
        }
        AllocationSet {
            window: self.window,
            allocations: groups,
        }
    }
}

/// Prices each workload's use over `window`, then adds or shares idle.
pub fn allocate(
    pricing: &Pricing,
    window: &Window,
    usages: &[Usage],
    idle: IdleOptions,
) -> AllocationSet {
    let window_json = WindowJson {
        start: window.start.to_rfc3339(),
        end: window.end.to_rfc3339(),
    };
    let mut allocations = BTreeMap::new();
    for usage in usages {
        let rates = rates_of(pricing, usage.node_type.as_deref());
        let hours = usage.minutes / 60.0;
        let cpu_core_hours = usage
            .cpu_core_request_average
            .max(usage.cpu_core_usage_average)
            * hours;
        let ram_byte_hours = usage
            .ram_byte_request_average
            .max(usage.ram_byte_usage_average)
            * hours;
        let gpu_hours = usage.gpu_count * hours;
        let mut allocation = Allocation {
            name: usage.name.clone(),
            properties: usage.properties.clone(),
            window: window_json.clone(),
            start: window_json.start.clone(),
            end: window_json.end.clone(),
            minutes: usage.minutes,
            cpu_core_request_average: usage.cpu_core_request_average,
            cpu_core_usage_average: usage.cpu_core_usage_average,
            cpu_core_hours,
            cpu_cost: cpu_core_hours * rates.cpu_core_hour,
            gpu_count: usage.gpu_count,
            gpu_hours,
            gpu_cost: gpu_hours * rates.gpu_hour,
            ram_byte_request_average: usage.ram_byte_request_average,
            ram_byte_usage_average: usage.ram_byte_usage_average,
            ram_byte_hours,
            ram_cost: ram_byte_hours / GIB * rates.ram_gib_hour,
            external_cost: usage.external_cost,
            requests: usage.requests,
            ..Allocation::default()
        };
        finish(&mut allocation);
        allocations.insert(usage.name.clone(), allocation);
    }
    let mut set = AllocationSet {
        window: *window,
        allocations,
    };
    if idle.include_idle {
        if let Some(capacity) = capacity_cost(pricing, window) {
            add_idle(&mut set, capacity, idle.share_idle, &window_json);
        }
    }
    set
}

/// What the nodes cost over the window, per resource, with their
/// capacity in core-hours, byte-hours and GPU-hours.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Capacity {
    cpu_cost: f64,
    ram_cost: f64,
    gpu_cost: f64,
    cpu_core_hours: f64,
    ram_byte_hours: f64,
    gpu_hours: f64,
}

fn capacity_cost(pricing: &Pricing, window: &Window) -> Option<Capacity> {
    if pricing.nodes.is_empty() {
        return None;
    }
    let hours = window.hours();
    let mut capacity = Capacity::default();
    for group in &pricing.nodes {
        let Some(node_type) = pricing.node_types.get(&group.node_type) else {
            continue;
        };
        let rates = pricing.node_rates(node_type, group.spot);
        let count = f64::from(group.count);
        let core_hours = count * node_type.cores.0 * hours;
        let gib_hours = count * node_type.ram_gib.0 * hours;
        let gpu_hours = count * f64::from(node_type.gpus) * hours;
        capacity.cpu_core_hours += core_hours;
        capacity.ram_byte_hours += gib_hours * GIB;
        capacity.gpu_hours += gpu_hours;
        capacity.cpu_cost += core_hours * rates.cpu_core_hour;
        capacity.ram_cost += gib_hours * rates.ram_gib_hour;
        capacity.gpu_cost += gpu_hours * rates.gpu_hour;
    }
    Some(capacity)
}

fn add_idle(set: &mut AllocationSet, capacity: Capacity, share: bool, window: &WindowJson) {
    let sum = |f: fn(&Allocation) -> f64| -> f64 { set.allocations.values().map(f).sum() };
    let (cpu_cost, ram_cost, gpu_cost) = (
        sum(|a| a.cpu_cost),
        sum(|a| a.ram_cost),
        sum(|a| a.gpu_cost),
    );
    let idle_cpu = (capacity.cpu_cost - cpu_cost).max(0.0);
    let idle_ram = (capacity.ram_cost - ram_cost).max(0.0);
    let idle_gpu = (capacity.gpu_cost - gpu_cost).max(0.0);
    if share {
        for allocation in set.allocations.values_mut() {
            allocation.cpu_cost_idle = weighted(idle_cpu, allocation.cpu_cost, cpu_cost);
            allocation.ram_cost_idle = weighted(idle_ram, allocation.ram_cost, ram_cost);
            allocation.gpu_cost_idle = weighted(idle_gpu, allocation.gpu_cost, gpu_cost);
            allocation.cpu_cost += allocation.cpu_cost_idle;
            allocation.ram_cost += allocation.ram_cost_idle;
            allocation.gpu_cost += allocation.gpu_cost_idle;
            finish(allocation);
        }
        return;
    }
    let mut line = Allocation {
        name: IDLE.to_string(),
        window: window.clone(),
        start: window.start.clone(),
        end: window.end.clone(),
        minutes: set.window.minutes(),
        cpu_core_hours: (capacity.cpu_core_hours - sum(|a| a.cpu_core_hours)).max(0.0),
        ram_byte_hours: (capacity.ram_byte_hours - sum(|a| a.ram_byte_hours)).max(0.0),
        gpu_hours: (capacity.gpu_hours - sum(|a| a.gpu_hours)).max(0.0),
        cpu_cost: idle_cpu,
        ram_cost: idle_ram,
        gpu_cost: idle_gpu,
        ..Allocation::default()
    };
    finish(&mut line);
    set.allocations.insert(IDLE.to_string(), line);
}

/// `idle × part / whole`, 0 when nothing of that resource was allocated.
fn weighted(idle: f64, part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        idle * part / whole
    } else {
        0.0
    }
}

fn rates_of(pricing: &Pricing, node_type: Option<&str>) -> NodeRates {
    let Some(name) = node_type else {
        return pricing.default_rates();
    };
    let Some(node) = pricing.node_types.get(name) else {
        return pricing.default_rates();
    };
    let spot = pricing
        .nodes
        .iter()
        .any(|group| group.node_type == name && group.spot);
    pricing.node_rates(node, spot)
}

fn add_into(group: &mut Allocation, part: &Allocation) {
    group.minutes = group.minutes.max(part.minutes);
    group.cpu_core_request_average += part.cpu_core_request_average;
    group.cpu_core_usage_average += part.cpu_core_usage_average;
    group.cpu_core_hours += part.cpu_core_hours;
    group.cpu_cost += part.cpu_cost;
    group.cpu_cost_idle += part.cpu_cost_idle;
    group.gpu_count += part.gpu_count;
    group.gpu_hours += part.gpu_hours;
    group.gpu_cost += part.gpu_cost;
    group.gpu_cost_idle += part.gpu_cost_idle;
    group.ram_byte_request_average += part.ram_byte_request_average;
    group.ram_byte_usage_average += part.ram_byte_usage_average;
    group.ram_byte_hours += part.ram_byte_hours;
    group.ram_cost += part.ram_cost;
    group.ram_cost_idle += part.ram_cost_idle;
    group.external_cost += part.external_cost;
    group.shared_cost += part.shared_cost;
    group.requests += part.requests;
}

/// Derived fields: efficiencies, total, cost per 1,000 requests.
pub(crate) fn finish(allocation: &mut Allocation) {
    allocation.cpu_efficiency = ratio(
        allocation.cpu_core_usage_average,
        allocation.cpu_core_request_average,
    );
    allocation.ram_efficiency = ratio(
        allocation.ram_byte_usage_average,
        allocation.ram_byte_request_average,
    );
    let resource_cost = allocation.cpu_cost + allocation.ram_cost;
    allocation.total_efficiency = if resource_cost > 0.0 {
        (allocation.cpu_efficiency * allocation.cpu_cost
            + allocation.ram_efficiency * allocation.ram_cost)
            / resource_cost
    } else {
        0.0
    };
    allocation.total_cost = allocation.cpu_cost
        + allocation.ram_cost
        + allocation.gpu_cost
        + allocation.external_cost
        + allocation.shared_cost;
    allocation.cost_per_1k_requests = (allocation.requests > 0)
        .then(|| allocation.total_cost * 1000.0 / allocation.requests as f64);
}

/// Usage over request; a workload with no request used all it had (1),
/// or nothing (0), as OpenCost reports it.
fn ratio(usage: f64, request: f64) -> f64 {
    if request > 0.0 {
        usage / request
    } else if usage > 0.0 {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
