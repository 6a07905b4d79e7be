//! The cost page's HTML: the summary, the stacked chart of cost per
//! module (the smallest modules summed into one series past the palette),
//! the line tables and the keys' spend against their budgets.

use super::{CostSummary, CostView, PricedLine};
use crate::query::Window;
use crate::sources::KeySpend;
use crate::{format, svg};
use maud::{html, Markup};
use std::collections::BTreeMap;

pub(super) fn page(view: &CostView, keep: &str) -> Markup {
    html! {
        h1 { "Cost" }
        p {
            "Window: "
            @for w in Window::ALL {
                @if w.as_str() == view.window { strong { (w.as_str()) } " " }
                @else { a href=(format!("/cost?window={}{keep}", w.as_str())) { (w.as_str()) } " " }
            }
        }
        @match &view.cost {
            None => div.notice { "Cost is not measured in this process, so there is nothing to show here." },
            Some(cost) => (render_cost(cost, &view.window, view.step_seconds)),
        }
    }
}

fn is_empty(cost: &CostSummary) -> bool {
    cost.total <= 0.0
        && cost.modules.is_empty()
        && cost.routes.is_empty()
        && cost.models.is_empty()
        && cost.keys.is_empty()
}

fn render_cost(cost: &CostSummary, window: &str, step_seconds: u64) -> Markup {
    let money = |v: Option<f64>| format::money(v, &cost.currency);
    html! {
        @if cost.example_prices {
            div.notice { "These figures use the example prices compiled into Reliable, not yours: give a pricing file (cost.yaml) with your own prices." }
        }
        @if is_empty(cost) {
            p.muted { "No cost measured in the last " (window) " yet." }
        } @else {
            div.card {
                div.kv {
                    span { "total, last " (window) } span.big { (money(Some(cost.total))) }
                    span { "30-day projection" } span { (money(Some(cost.projected_month))) }
                    span { "idle" }
                    span {
                        (money(Some(cost.idle)))
                        @if cost.total > 0.0 { " (" (format::percent(Some(cost.idle / cost.total))) " of the total)" }
                    }
                }
            }
            div.card {
                h2 { "Cost per module over time" }
                (chart(cost, window, step_seconds))
                p.muted { "One bar per " (slo::status::human_duration(step_seconds as f64)) ", stacked by module; idle capacity is not in the bars." }
            }
            div.card {
                h2 { "Modules" }
                (lines_table(&cost.modules, false, &money))
            }
            div.card {
                h2 { "Top routes" }
                (lines_table(&cost.routes, true, &money))
                @if cost.route_count > cost.routes.len() {
                    p.muted { "The " (cost.routes.len()) " most expensive of " (cost.route_count) " routes." }
                }
            }
            div.card {
                h2 { "Top models" }
                (lines_table(&cost.models, true, &money))
                @if cost.model_count > cost.models.len() {
                    p.muted { "The " (cost.models.len()) " most expensive of " (cost.model_count) " models." }
                }
            }
            div.card {
                h2 { "LLM spend per API key" }
                (keys_table(&cost.keys, &money))
            }
        }
    }
}

fn chart(cost: &CostSummary, window: &str, step_seconds: u64) -> Markup {
    let starts: Vec<i64> = cost.steps.iter().map(|s| s.start_ms).collect();
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for step in &cost.steps {
        for (module, v) in &step.modules {
            *totals.entry(module).or_default() += v.max(0.0);
        }
    }
    let mut order: Vec<(&str, f64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let own = if order.len() > svg::SERIES_COLOURS {
        svg::SERIES_COLOURS - 1
    } else {
        order.len()
    };
    let mut series: Vec<(String, Vec<f64>)> = order[..own]
        .iter()
        .map(|(module, _)| {
            let values = cost
                .steps
                .iter()
                .map(|s| s.modules.get(*module).copied().unwrap_or(0.0));
            (module.to_string(), values.collect())
        })
        .collect();
    if own < order.len() {
        let rest = &order[own..];
        let values = cost.steps.iter().map(|s| {
            rest.iter()
                .map(|(m, _)| s.modules.get(*m).copied().unwrap_or(0.0).max(0.0))
                .sum()
        });
        series.push((format!("{} other modules", rest.len()), values.collect()));
    }
    let desc = match order.first() {
        Some((module, v)) => format!(
            "Cost per module over the last {window}, one bar per step; {module} cost the most ({}).",
            format::money(Some(*v), &cost.currency)
        ),
        None => format!("Cost per module over the last {window}: nothing measured."),
    };
    let money = |v: Option<f64>| format::money(v, &cost.currency);
    svg::stacked_bars(
        "cost-by-module",
        "Cost per module",
        &desc,
        &starts,
        step_seconds as i64 * 1000,
        &series,
        &money,
    )
}

fn lines_table(
    lines: &[PricedLine],
    with_module: bool,
    money: &dyn Fn(Option<f64>) -> String,
) -> Markup {
    html! {
        @if lines.is_empty() {
            p.muted { "None measured in this window." }
        } @else {
            table {
                thead { tr {
                    th { @if with_module { "name" } @else { "module" } }
                    @if with_module { th { "module" } }
                    th.num { "cost" } th.num { "share" } th.num { "requests" } th.num { "per 1,000 requests" }
                } }
                tbody {
                    @for l in lines {
                        tr {
                            td { (l.line.name) }
                            @if with_module { td { (l.line.module) } }
                            td.num { (money(Some(l.line.cost))) }
                            td.num { (format::percent(l.share)) }
                            td.num { (format::count(l.line.requests)) }
                            td.num {
                                @match l.cost_per_1k_requests {
                                    Some(v) => (money(Some(v))),
                                    None => span.muted { "no requests" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn keys_table(keys: &[KeySpend], money: &dyn Fn(Option<f64>) -> String) -> Markup {
    html! {
        @if keys.is_empty() {
            p.muted { "No LLM spend in this window." }
        } @else {
            table {
                thead { tr { th { "key" } th.num { "spent" } th.num { "projected month" } th.num { "budget" } th { "against budget" } } }
                tbody {
                    @for k in keys {
                        tr {
                            td {
                                (k.key)
                                @if k.over_budget { " " span.badge.bad { "over budget" } }
                            }
                            td.num { (money(Some(k.spent))) }
                            td.num { (money(Some(k.projected_month))) }
                            td.num { (k.budget.map_or_else(|| "none".to_string(), |b| money(Some(b)))) }
                            td {
                                @match k.budget {
                                    Some(budget) => (svg::budget_bar(k.projected_month, budget, k.over_budget, money)),
                                    None => span.muted { "no budget" },
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Projected month: the window's spend at the same rate for 30 days; the mark is the key's monthly budget from the pricing file." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::CostStep;

    fn summary(modules: usize) -> CostSummary {
        let step = |start_ms| CostStep {
            start_ms,
            modules: (0..modules)
                .map(|i| (format!("m{i}"), (i + 1) as f64))
                .collect(),
        };
        CostSummary {
            currency: "USD".into(),
            example_prices: false,
            steps: vec![step(0), step(3_600_000)],
            modules: vec![],
            routes: vec![],
            route_count: 0,
            models: vec![],
            model_count: 0,
            keys: vec![],
            idle: 0.0,
            total: 1.0,
            projected_month: 30.0,
        }
    }

    #[test]
    fn modules_past_the_palette_are_summed_into_one_series() {
        let html = chart(&summary(10), "24h", 3600).into_string();
        // 7 modules of their own, the 3 cheapest as one: 8 in the legend.
        assert_eq!(html.matches(r#"<span class="swatch series-"#).count(), 8);
        assert!(html.contains("3 other modules"), "{html}");
        // m0 + m1 + m2 = 6 per step, 12 over both.
        assert!(
            html.contains("3 other modules <span class=\"muted\">$12.00"),
            "{html}"
        );
        // The most expensive module is first and named in the description.
        assert!(html.contains("m9 cost the most ($20.00)"), "{html}");
        assert_eq!(html.matches(r#"<rect class="series-"#).count(), 2 * 8);
    }

    #[test]
    fn eight_modules_keep_their_own_colours() {
        let html = chart(&summary(8), "24h", 3600).into_string();
        assert_eq!(html.matches(r#"<span class="swatch series-"#).count(), 8);
        assert!(!html.contains("other modules"));
    }
}
