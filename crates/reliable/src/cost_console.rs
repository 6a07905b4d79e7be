//! The console's cost panel over the platform's own measurement: the
//! [`console::sources::CostSource`] the binary gives the console, one call
//! to [`CostLive::view`] mapped onto the console's plain figures (the
//! console crate knows nothing of the `cost` crate).
//!
//! Each call reads the window's buckets from the cost store (SQL sums per
//! step), so a page load costs one query, not a measurement.

use crate::cost_live::CostLive;
use async_trait::async_trait;
use console::sources::{
    CostLine, CostQuery, CostReport, CostSource, CostStep, KeySpend, SourceError,
};
use cost::measured::LineCost;
use cost::Window;
use std::collections::BTreeMap;

#[async_trait]
impl CostSource for CostLive {
    async fn cost(&self, query: &CostQuery) -> Result<CostReport, SourceError> {
        let window = Window {
            start: query.start,
            end: query.end,
        };
        let step = chrono::Duration::from_std(query.step)
            .map_err(|e| SourceError::Unavailable(format!("step {:?}: {e}", query.step)))?;
        let view = self
            .view(&window, Some(step))
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        let steps = view
            .steps
            .iter()
            .map(|step| CostStep {
                start_ms: chrono::DateTime::parse_from_rfc3339(&step.start)
                    .map_or(0, |t| t.timestamp_millis()),
                modules: step.modules.clone(),
            })
            .collect();
        let line = |l: &LineCost| CostLine {
            name: l.name.clone(),
            module: l.module.clone(),
            cost: l.total_cost,
            requests: l.requests,
        };
        let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
        for spend in &view.keys {
            *spent.entry(spend.key.as_str()).or_default() += spend.cost;
        }
        let budgets: BTreeMap<&str, &cost::BudgetStatus> = view
            .budgets
            .iter()
            .filter(|b| b.kind == "key")
            .map(|b| (b.name.as_str(), b))
            .collect();
        let mut keys: Vec<KeySpend> = spent
            .iter()
            .map(|(key, spent)| {
                let projected_month = cost::project_month(*spent, view.observed_hours);
                let budget = budgets.get(key).map(|b| b.budget);
                KeySpend {
                    key: (*key).to_string(),
                    budget,
                    spent: *spent,
                    projected_month,
                    over_budget: budget.is_some_and(|b| projected_month > b),
                }
            })
            .collect();
        // A key with a budget that spent nothing is still shown against it.
        for (key, status) in &budgets {
            if !spent.contains_key(key) {
                keys.push(KeySpend {
                    key: (*key).to_string(),
                    budget: Some(status.budget),
                    spent: 0.0,
                    projected_month: 0.0,
                    over_budget: false,
                });
            }
        }
        Ok(CostReport {
            currency: view.currency.clone(),
            example_prices: self.pricing_source() == crate::cost_live::PricingSource::Example,
            steps,
            modules: view.modules.iter().map(line).collect(),
            routes: view.top_routes.iter().map(line).collect(),
            models: view.top_models.iter().map(line).collect(),
            keys,
            idle: view.idle_cost,
            total: view.total_cost,
            projected_month: view.projected_month,
        })
    }
}
