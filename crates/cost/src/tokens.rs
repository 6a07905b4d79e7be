//! What LLM usage costs, per API key and model.
//!
//! Two ways a model is paid for, and the pricing file says which:
//!
//! - **external** (`llm` in `cost.yaml`): the provider bills tokens, so a
//!   key's cost is its prompt and completion tokens × the per-1,000 prices;
//! - **self-hosted** (`llm_self_hosted`): the backend is paid by the hour
//!   whether it is busy or not, so the model's hours over the window are
//!   split between the keys in proportion to the tokens each used (the
//!   "backend's share of GPU or CPU hours").
//!
//! A model in neither is **unpriced**: its tokens are reported with a cost
//! of 0 and the basis says so, rather than being dropped.

use crate::allocation::Usage;
use crate::pricing::Pricing;
use serde::Serialize;
use std::collections::BTreeMap;

/// Tokens one key used on one model over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// The API key's name (`anonymous` for calls without one).
    pub key: String,
    /// The model name the LLM gateway reports.
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
}

/// How a line's cost was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpendBasis {
    /// Tokens × the provider's per-1,000 prices.
    External,
    /// The backend's hours, split by token share.
    SelfHosted,
    /// No price in the pricing file: cost 0.
    Unpriced,
}

/// What one key spent on one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenSpend {
    pub key: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
    pub cost: f64,
    pub basis: SpendBasis,
}

/// Prices each key's use of each model over a window of `window_hours`.
/// Usage lines for the same key and model are summed first.
pub fn spend(pricing: &Pricing, usage: &[TokenUsage], window_hours: f64) -> Vec<TokenSpend> {
    let mut merged: BTreeMap<(&str, &str), TokenUsage> = BTreeMap::new();
    for line in usage {
        let entry = merged
            .entry((line.model.as_str(), line.key.as_str()))
            .or_insert_with(|| TokenUsage {
                key: line.key.clone(),
                model: line.model.clone(),
                ..TokenUsage::default()
            });
        entry.prompt_tokens += line.prompt_tokens;
        entry.completion_tokens += line.completion_tokens;
        entry.requests += line.requests;
    }
    let mut model_tokens: BTreeMap<&str, u64> = BTreeMap::new();
    for ((model, _), line) in &merged {
        *model_tokens.entry(model).or_default() += line.prompt_tokens + line.completion_tokens;
    }
    merged
        .iter()
        .map(|((model, _), line)| {
            let (cost, basis) = if let Some(cost) =
                pricing.token_cost(model, line.prompt_tokens, line.completion_tokens)
            {
                (cost, SpendBasis::External)
            } else if let Some(backend) = pricing.llm_self_hosted.get(*model) {
                let total = model_tokens.get(model).copied().unwrap_or(0);
                let share = if total == 0 {
                    0.0
                } else {
                    (line.prompt_tokens + line.completion_tokens) as f64 / total as f64
                };
                (
                    backend.hourly.0 * window_hours.max(0.0) * share,
                    SpendBasis::SelfHosted,
                )
            } else {
                (0.0, SpendBasis::Unpriced)
            };
            TokenSpend {
                key: line.key.clone(),
                model: line.model.clone(),
                prompt_tokens: line.prompt_tokens,
                completion_tokens: line.completion_tokens,
                requests: line.requests,
                cost,
                basis,
            }
        })
        .collect()
}

impl TokenSpend {
    /// The line as an allocation input: the LLM module's external cost,
    /// with `key` and `model` to aggregate by.
    pub fn usage(&self, minutes: f64) -> Usage {
        let properties = BTreeMap::from([
            ("module".to_string(), "llm".to_string()),
            ("key".to_string(), self.key.clone()),
            ("model".to_string(), self.model.clone()),
        ]);
        Usage {
            name: format!("llm/{}/{}", self.key, self.model),
            properties,
            minutes,
            external_cost: self.cost,
            requests: self.requests,
            ..Usage::default()
        }
    }
}

/// Whether a module or key is on course to pass its monthly budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// `module` or `key`.
    pub kind: &'static str,
    pub name: String,
    /// The monthly budget.
    pub budget: f64,
    /// Spent in the window.
    pub spent: f64,
    /// The 30-day projection at the window's rate.
    pub projected_month: f64,
    /// The projection is above the budget.
    pub over: bool,
}

/// Every budget of the pricing file against what was spent over a window
/// of `window_hours`: `spent_by_module` and `spent_by_key` map names to
/// costs (a name that spent nothing is 0).
pub fn budgets(
    pricing: &Pricing,
    spent_by_module: &BTreeMap<String, f64>,
    spent_by_key: &BTreeMap<String, f64>,
    window_hours: f64,
) -> Vec<BudgetStatus> {
    let status = |kind: &'static str, name: &String, budget: f64, spent: f64| {
        let projected_month = crate::project_month(spent, window_hours);
        BudgetStatus {
            kind,
            name: name.clone(),
            budget,
            spent,
            projected_month,
            over: projected_month > budget,
        }
    };
    let modules = pricing.budgets.modules.iter().map(|(name, budget)| {
        status(
            "module",
            name,
            budget.0,
            spent_by_module.get(name).copied().unwrap_or(0.0),
        )
    });
    let keys = pricing.budgets.keys.iter().map(|(name, budget)| {
        status(
            "key",
            name,
            budget.0,
            spent_by_key.get(name).copied().unwrap_or(0.0),
        )
    });
    modules.chain(keys).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICING: &str = "\
currency: USD
resources: {cpu_core_hour: 0.04, ram_gib_hour: 0.005}
llm:
  gpt-4o-mini: {input_per_1k: 0.00015, output_per_1k: 0.0006}
llm_self_hosted:
  smollm2: {hourly: 1.2}
budgets:
  modules: {llm: 10}
  keys: {team-a: 1, team-b: 100}
";

    fn usage(key: &str, model: &str, prompt: u64, completion: u64) -> TokenUsage {
        TokenUsage {
            key: key.into(),
            model: model.into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            requests: 1,
        }
    }

    fn pricing() -> Pricing {
        Pricing::parse(PRICING).expect("pricing")
    }

    #[test]
    fn external_tokens_cost_their_per_1k_prices() {
        let lines = spend(
            &pricing(),
            &[usage("team-a", "gpt-4o-mini", 10_000, 2_000)],
            24.0,
        );
        assert_eq!(lines.len(), 1);
        // 10 × 0.00015 + 2 × 0.0006
        assert!((lines[0].cost - 0.0027).abs() < 1e-12, "{}", lines[0].cost);
        assert_eq!(lines[0].basis, SpendBasis::External);
    }

    #[test]
    fn self_hosted_hours_are_split_by_token_share_and_sum_to_the_backend() {
        let lines = spend(
            &pricing(),
            &[
                usage("team-a", "smollm2", 300, 0),
                usage("team-b", "smollm2", 600, 100),
                // the same key and model again: summed
                usage("team-a", "smollm2", 0, 0),
            ],
            10.0,
        );
        assert_eq!(lines.len(), 2);
        let a = lines.iter().find(|l| l.key == "team-a").expect("team-a");
        let b = lines.iter().find(|l| l.key == "team-b").expect("team-b");
        assert!((a.cost - 3.6).abs() < 1e-9, "{}", a.cost); // 12 × 300/1000
        assert!((b.cost - 8.4).abs() < 1e-9, "{}", b.cost); // 12 × 700/1000
        assert_eq!(a.requests, 2);
        assert_eq!(a.basis, SpendBasis::SelfHosted);
    }

    #[test]
    fn an_unpriced_model_is_kept_at_zero_and_says_so() {
        let lines = spend(&pricing(), &[usage("k", "mystery", 5, 5)], 1.0);
        assert_eq!(lines[0].cost, 0.0);
        assert_eq!(lines[0].basis, SpendBasis::Unpriced);
        assert_eq!(lines[0].prompt_tokens, 5);
    }

    #[test]
    fn a_spend_line_aggregates_by_key_and_model() {
        let lines = spend(&pricing(), &[usage("team-a", "gpt-4o-mini", 1000, 0)], 1.0);
        let usage = lines[0].usage(60.0);
        assert_eq!(usage.properties["key"], "team-a");
        assert_eq!(usage.properties["model"], "gpt-4o-mini");
        assert_eq!(usage.properties["module"], "llm");
        assert!((usage.external_cost - 0.00015).abs() < 1e-15);
    }

    #[test]
    fn budgets_project_the_window_to_a_month() {
        let modules = BTreeMap::from([("llm".to_string(), 0.5)]);
        let keys = BTreeMap::from([("team-a".to_string(), 0.05)]);
        // 24 h: × 30
        let statuses = budgets(&pricing(), &modules, &keys, 24.0);
        let llm = statuses.iter().find(|s| s.name == "llm").expect("llm");
        assert!((llm.projected_month - 15.0).abs() < 1e-9);
        assert!(llm.over); // 15 > 10
        let a = statuses
            .iter()
            .find(|s| s.name == "team-a")
            .expect("team-a");
        assert!((a.projected_month - 1.5).abs() < 1e-9);
        assert!(a.over); // 1.5 > 1
        let b = statuses
            .iter()
            .find(|s| s.name == "team-b")
            .expect("team-b");
        assert_eq!(b.spent, 0.0);
        assert!(!b.over);
    }

    #[test]
    fn a_model_both_external_and_self_hosted_is_refused() {
        let with_both = format!(
            "{}llm_self_hosted:\n  gpt-4o-mini: {{hourly: 1}}\n",
            PRICING.replace("llm_self_hosted:\n  smollm2: {hourly: 1.2}\n", "")
        );
        let error = Pricing::parse(&with_both).expect_err("refused");
        assert!(
            error.to_string().contains("llm_self_hosted.gpt-4o-mini"),
            "{error}"
        );
    }
}
