//! The pricing file (`cost.yaml`): what a core-hour, a GiB-hour, a
//! GPU-hour, a node and 1,000 LLM tokens cost, and the monthly budgets.
//!
//! Prices are data people type, so every one is checked where it is read:
//! a negative or non-finite price, an unknown key or a missing currency is
//! refused with the line and the field (`line 7: nodes.m6i.hourly: ...`).
//! The `///` docs of these structs are the format's user documentation.

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A pricing file, `cost.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// ISO 4217 code of every price in the file (`USD`, `EUR`). Required:
    /// a price without a currency is not a price.
    pub currency: Currency,
    /// Prices of resources, used for workloads on no named node and to
    /// split a node's hourly price between its CPU, memory and GPUs.
    pub resources: ResourcePrices,
    /// Node types by name: their capacity and hourly prices.
    #[serde(default)]
    pub node_types: BTreeMap<String, NodeType>,
    /// The nodes that run, by type: the capacity idle cost is measured
    /// against. Without it there is no idle line (nothing to compare with).
    #[serde(default)]
    pub nodes: Vec<NodeGroup>,
    /// Per-1,000-token prices of external LLM backends, by model name as
    /// the LLM gateway reports it.
    #[serde(default)]
    pub llm: BTreeMap<String, TokenPrice>,
    /// Self-hosted LLM backends (llama.cpp, vLLM) by the model name the LLM
    /// gateway reports: what an hour of the backend costs. Each key pays
    /// the model's hours in proportion to the tokens it used.
    #[serde(default)]
    pub llm_self_hosted: BTreeMap<String, SelfHosted>,
    /// Monthly budgets; an alert fires when the projected month exceeds one.
    #[serde(default)]
    pub budgets: Budgets,
}

/// Prices of one unit of each resource for one hour.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePrices {
    /// One CPU core for one hour.
    pub cpu_core_hour: Price,
    /// One GiB of memory for one hour.
    pub ram_gib_hour: Price,
    /// One GPU for one hour.
    #[serde(default)]
    pub gpu_hour: Price,
}

/// A node type: what it holds and what an hour of it costs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeType {
    /// CPU cores it offers to workloads.
    pub cores: Quantity,
    /// Memory it offers to workloads, in GiB.
    pub ram_gib: Quantity,
    /// GPUs it carries.
    #[serde(default)]
    pub gpus: u32,
    /// On-demand price of one hour.
    pub hourly: Price,
    /// Spot (preemptible) price of one hour, when the type can run as spot.
    #[serde(default)]
    pub spot_hourly: Option<Price>,
}

/// How many nodes of one type run, and how they are bought.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    /// A key of `node_types`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// How many run.
    pub count: u32,
    /// Bought as spot (its `spot_hourly`) rather than on demand.
    #[serde(default)]
    pub spot: bool,
}

/// What 1,000 tokens of one external model cost.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPrice {
    /// 1,000 prompt (input) tokens.
    pub input_per_1k: Price,
    /// 1,000 completion (output) tokens.
    pub output_per_1k: Price,
}

/// What an hour of a self-hosted model's backend costs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfHosted {
    /// One hour of the backend: its node's hourly price, or its share of
    /// one (a GPU node's price when it has the node to itself).
    pub hourly: Price,
}

/// Monthly budgets, in the file's currency.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// By module (`shortener`, `inference`, ...).
    #[serde(default)]
    pub modules: BTreeMap<String, Price>,
    /// By API key name (the LLM gateway's spend per key).
    #[serde(default)]
    pub keys: BTreeMap<String, Price>,
}

/// A price: finite and not negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd, Serialize, JsonSchema)]
pub struct Price(pub f64);

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() || value < 0.0 {
            return Err(de::Error::custom(format!(
                "a price must be a finite number of at least 0, got {value}"
            )));
        }
        Ok(Price(value))
    }
}

/// A capacity: finite and above 0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, JsonSchema)]
pub struct Quantity(pub f64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() || value <= 0.0 {
            return Err(de::Error::custom(format!(
                "a capacity must be a finite number above 0, got {value}"
            )));
        }
        Ok(Quantity(value))
    }
}

/// An ISO 4217 currency code: three capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(text))
        } else {
            Err(de::Error::custom(format!(
                "a currency is an ISO 4217 code of three capital letters (USD, EUR), got `{text}`"
            )))
        }
    }
}

/// A pricing file that cannot be used, with the line and field to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PricingError(String);

/// The hourly rates of one node: its price split between its resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeRates {
    pub cpu_core_hour: f64,
    pub ram_gib_hour: f64,
    pub gpu_hour: f64,
}

impl Pricing {
    /// Reads and checks a pricing file's text.
    pub fn parse(text: &str) -> Result<Self, PricingError> {
        let pricing: Pricing = yamlspec::from_str(text).map_err(|e| PricingError(e.to_string()))?;
        for (index, group) in pricing.nodes.iter().enumerate() {
            if !pricing.node_types.contains_key(&group.node_type) {
                return Err(PricingError(format!(
                    "nodes[{index}].type: `{}` is not one of node_types ({})",
                    group.node_type,
                    names(pricing.node_types.keys())
                )));
            }
            let node_type = &pricing.node_types[&group.node_type];
            if group.spot && node_type.spot_hourly.is_none() {
                return Err(PricingError(format!(
                    "nodes[{index}].spot: node type `{}` has no spot_hourly price",
                    group.node_type
                )));
            }
        }
        if let Some(model) = pricing
            .llm
            .keys()
            .find(|m| pricing.llm_self_hosted.contains_key(*m))
        {
            return Err(PricingError(format!(
                "llm_self_hosted.{model}: `{model}` is also priced per token under llm; a model is either external or self-hosted"
            )));
        }
        Ok(pricing)
    }

    /// The rates of a node type: its hourly price split in the ratio of
    /// the resource prices (OpenCost does the same with custom pricing
    /// when a node's price is known only as a whole).
    pub fn node_rates(&self, node_type: &NodeType, spot: bool) -> NodeRates {
        let hourly = match (spot, node_type.spot_hourly) {
            (true, Some(price)) => price.0,
            _ => node_type.hourly.0,
        };
        let list_cpu = node_type.cores.0 * self.resources.cpu_core_hour.0;
        let list_ram = node_type.ram_gib.0 * self.resources.ram_gib_hour.0;
        let list_gpu = f64::from(node_type.gpus) * self.resources.gpu_hour.0;
        let list = list_cpu + list_ram + list_gpu;
        if list <= 0.0 {
            // Nothing to split by: charge the whole price to the cores.
            return NodeRates {
                cpu_core_hour: hourly / node_type.cores.0,
                ram_gib_hour: 0.0,
                gpu_hour: 0.0,
            };
        }
        let scale = hourly / list;
        NodeRates {
            cpu_core_hour: self.resources.cpu_core_hour.0 * scale,
            ram_gib_hour: self.resources.ram_gib_hour.0 * scale,
            gpu_hour: self.resources.gpu_hour.0 * scale,
        }
    }

    /// What `input` prompt and `output` completion tokens of an external
    /// `model` cost; `None` when the file has no price for it.
    pub fn token_cost(&self, model: &str, input: u64, output: u64) -> Option<f64> {
        let price = self.llm.get(model)?;
        Some(
            input as f64 / 1000.0 * price.input_per_1k.0
                + output as f64 / 1000.0 * price.output_per_1k.0,
        )
    }

    /// The resource prices as rates, for workloads on no named node.
    pub fn default_rates(&self) -> NodeRates {
        NodeRates {
            cpu_core_hour: self.resources.cpu_core_hour.0,
            ram_gib_hour: self.resources.ram_gib_hour.0,
            gpu_hour: self.resources.gpu_hour.0,
        }
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = keys.map(String::as_str).collect();
    if list.is_empty() {
        "none are defined".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
currency: USD
resources:
  cpu_core_hour: 0.031611
  ram_gib_hour: 0.004237
node_types:
  m6i.large:
    cores: 2
    ram_gib: 8
    hourly: 0.096
    spot_hourly: 0.0382
nodes:
  - {type: m6i.large, count: 3}
";

    #[test]
    fn a_file_reads_and_splits_a_node_price_by_resource_prices() {
        let pricing = Pricing::parse(EXAMPLE).expect("parse");
        let node = pricing.node_types["m6i.large"];
        let rates = pricing.node_rates(&node, false);
        let whole = 2.0 * rates.cpu_core_hour + 8.0 * rates.ram_gib_hour;
        assert!((whole - 0.096).abs() < 1e-12, "{whole}");
        assert!(rates.cpu_core_hour > rates.ram_gib_hour);
        let spot = pricing.node_rates(&node, true);
        assert!((2.0 * spot.cpu_core_hour + 8.0 * spot.ram_gib_hour - 0.0382).abs() < 1e-12);
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let cases = [
            (EXAMPLE.replace("currency: USD\n", ""), "currency"),
            (EXAMPLE.replace("USD", "dollars"), "ISO 4217"),
            (EXAMPLE.replace("0.031611", "-1"), "resources.cpu_core_hour"),
            (
                EXAMPLE.replace("hourly: 0.096", "hourly: -0.5"),
                "m6i.large.hourly",
            ),
            (EXAMPLE.replace("cores: 2", "cores: 0"), "cores"),
            (format!("{EXAMPLE}colour: blue\n"), "colour"),
            (
                EXAMPLE.replace("type: m6i.large,", "type: m7.huge,"),
                "nodes[0].type",
            ),
        ];
        for (text, needle) in cases {
            let error = Pricing::parse(&text).expect_err(needle).to_string();
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn the_shipped_example_reads() {
        let text = include_str!("../../../cost.example.yaml");
        let pricing = Pricing::parse(text).expect("cost.example.yaml");
        assert_eq!(pricing.currency.as_str(), "USD");
        assert_eq!(pricing.nodes.len(), 2);
        assert!(pricing.token_cost("gpt-4o-mini", 1000, 1000).is_some());
    }

    #[test]
    fn tokens_are_priced_per_thousand() {
        let text = format!("{EXAMPLE}llm:\n  gpt-x: {{input_per_1k: 0.5, output_per_1k: 1.5}}\n");
        let pricing = Pricing::parse(&text).expect("parse");
        let cost = pricing.token_cost("gpt-x", 2_000, 500).expect("priced");
        assert!((cost - 1.75).abs() < 1e-12, "{cost}");
        assert_eq!(pricing.token_cost("other", 1, 1), None);
    }

    #[test]
    fn spot_needs_a_spot_price() {
        let text = EXAMPLE
            .replace("    spot_hourly: 0.0382\n", "")
            .replace("count: 3}", "count: 3, spot: true}");
        let error = Pricing::parse(&text).expect_err("spot").to_string();
        assert!(error.contains("no spot_hourly"), "{error}");
    }
}
