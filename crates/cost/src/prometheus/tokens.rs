//! LLM spend per API key and model from Prometheus: the LLM gateway's
//! `llm_key_tokens_total{key,gen_ai_request_model,gen_ai_token_type}`
//! increased over the window, priced by [`crate::tokens::spend`] (external
//! per-1,000 prices, self-hosted hours split by token share, unpriced at 0)
//! and held against the keys' monthly budgets.
//!
//! The counter has no request count per key, so these lines carry no cost
//! per 1,000 requests.

use super::{Measure, Query, Sample};
use crate::allocation::{allocate, AllocationSet, IdleOptions};
use crate::pricing::Pricing;
use crate::tokens::{budgets, spend, BudgetStatus, TokenSpend, TokenUsage};
use crate::window::Window;
use std::collections::BTreeMap;

/// The LLM gateway's tokens per key, model and type.
pub const KEY_TOKENS: &str = "llm_key_tokens_total";

/// The one query (evaluate it at `window.end`).
pub fn query(window: &Window) -> Query {
    let range = format!("{}s", (window.end - window.start).num_seconds().max(60));
    Query {
        measure: Measure::KeyTokens,
        promql: format!(
            "sum by (key, gen_ai_request_model, gen_ai_token_type) (increase({KEY_TOKENS}[{range}]))"
        ),
    }
}

/// Token usage per key and model from the query's answer; series without
/// a key or a model, or of another token type, are left out.
pub fn usages(samples: &[Sample]) -> Vec<TokenUsage> {
    let mut lines: BTreeMap<(String, String), TokenUsage> = BTreeMap::new();
    for sample in samples {
        let labels = &sample.labels;
        let (Some(key), Some(model), Some(kind)) = (
            labels.get("key"),
            labels.get("gen_ai_request_model"),
            labels.get("gen_ai_token_type"),
        ) else {
            continue;
        };
        // increase() extrapolates: a fraction of a token is not one.
        let tokens = sample.value.round().max(0.0) as u64;
        let line = lines
            .entry((key.clone(), model.clone()))
            .or_insert_with(|| TokenUsage {
                key: key.clone(),
                model: model.clone(),
                ..TokenUsage::default()
            });
        match kind.as_str() {
            "input" => line.prompt_tokens += tokens,
            "output" => line.completion_tokens += tokens,
            _ => {}
        }
    }
    lines.into_values().collect()
}

/// What the keys spent, grouped by `by` (`key` or `model`).
#[derive(Debug, Clone)]
pub struct KeySpend {
    /// One line per key or model; no idle line (the nodes' capacity is not
    /// what tokens are paid from).
    pub set: AllocationSet,
    /// Each key on each model, with its basis (external, self-hosted,
    /// unpriced).
    pub lines: Vec<TokenSpend>,
    /// The keys' budgets against the window's spend projected to 30 days.
    pub budgets: Vec<BudgetStatus>,
}

/// Prices the answer of [`query`] over `window`.
pub fn key_spend(pricing: &Pricing, window: &Window, samples: &[Sample], by: &str) -> KeySpend {
    let lines = spend(pricing, &usages(samples), window.hours());
    let usages: Vec<_> = lines.iter().map(|l| l.usage(window.minutes())).collect();
    let idle = IdleOptions {
        include_idle: false,
        share_idle: false,
    };
    let set = allocate(pricing, window, &usages, idle).aggregate(by);
    let mut by_key: BTreeMap<String, f64> = BTreeMap::new();
    for line in &lines {
        *by_key.entry(line.key.clone()).or_default() += line.cost;
    }
    let budgets = budgets(pricing, &BTreeMap::new(), &by_key, window.hours())
        .into_iter()
        .filter(|b| b.kind == "key")
        .collect();
    KeySpend {
        set,
        lines,
        budgets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::SpendBasis;
    use chrono::{TimeZone, Utc};

    const PRICING: &str = "\
currency: USD
resources: {cpu_core_hour: 0.04, ram_gib_hour: 0.005}
llm:
  gpt-x: {input_per_1k: 0.5, output_per_1k: 1.5}
llm_self_hosted:
  small: {hourly: 2}
budgets:
  keys: {team-a: 100, team-b: 1000}
";

    fn sample(key: &str, model: &str, kind: &str, value: f64) -> Sample {
        Sample {
            labels: BTreeMap::from([
                ("key".to_string(), key.to_string()),
                ("gen_ai_request_model".to_string(), model.to_string()),
                ("gen_ai_token_type".to_string(), kind.to_string()),
            ]),
            value,
        }
    }

    fn window() -> Window {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single();
        let end = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single();
        Window {
            start: start.expect("start"),
            end: end.expect("end"),
        }
    }

    #[test]
    fn the_query_sums_the_increase_over_the_window() {
        assert_eq!(
            query(&window()).promql,
            "sum by (key, gen_ai_request_model, gen_ai_token_type) (increase(llm_key_tokens_total[36000s]))"
        );
    }

    #[test]
    fn keys_are_priced_by_basis_and_held_against_their_budgets() {
        let pricing = Pricing::parse(PRICING).expect("pricing");
        let samples = [
            sample("team-a", "gpt-x", "input", 2_000.4),
            sample("team-a", "gpt-x", "output", 1_000.0),
            sample("team-a", "small", "input", 100.0),
            sample("team-b", "small", "output", 300.0),
            sample("team-b", "mystery", "output", 50.0),
            // no key label: left out
            Sample {
                labels: BTreeMap::new(),
                value: 9.0,
            },
        ];
        let spend = key_spend(&pricing, &window(), &samples, "key");
        // team-a: 2 × 0.5 + 1 × 1.5 = 2.5 external; small's 10 h × 2 = 20
        // split 100 : 300, so 5 for team-a and 15 for team-b.
        let a = &spend.set.allocations["team-a"];
        assert!((a.total_cost - 7.5).abs() < 1e-9, "{}", a.total_cost);
        let b = &spend.set.allocations["team-b"];
        assert!((b.total_cost - 15.0).abs() < 1e-9, "{}", b.total_cost);
        assert!(!spend.set.allocations.contains_key(crate::IDLE));
        let mystery = spend
            .lines
            .iter()
            .find(|l| l.model == "mystery")
            .expect("kept");
        assert_eq!(
            (mystery.basis, mystery.cost, mystery.completion_tokens),
            (SpendBasis::Unpriced, 0.0, 50)
        );
        // 7.5 in 10 h is 540 a month, over 100; 15 is 1,080, over 1,000.
        let statuses: Vec<_> = spend
            .budgets
            .iter()
            .map(|b| {
                (
                    b.name.as_str(),
                    (b.projected_month * 1e6).round() / 1e6,
                    b.over,
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [("team-a", 540.0, true), ("team-b", 1080.0, true)]
        );

        let by_model = key_spend(&pricing, &window(), &samples, "model");
        let models: Vec<_> = by_model.set.allocations.keys().cloned().collect();
        assert_eq!(models, ["gpt-x", "mystery", "small"]);
        let small = &by_model.set.allocations["small"];
        assert!(
            (small.total_cost - 20.0).abs() < 1e-9,
            "{}",
            small.total_cost
        );
    }
}
