//! Budget alerts as Prometheus rules, generated with the SLO rules
//! (`reliable slo generate SPECS -o DIR --pricing cost.yaml`).
//!
//! A monthly budget is an error budget in money: what matters is whether
//! the month, projected at the current rate of spending, passes it. The
//! alerts follow the SLO burn-rate alerts' multiwindow shape so they
//! neither flap on one busy half hour nor wait for the month to end:
//!
//! | burn | fires when the month projected at | `for` |
//! |---|---|---|
//! | fast | the last 6 h's rate and the last 30 min's are both above twice the budget | 15m |
//! | slow | the last 3 d's rate and the last 6 h's are both above the budget | 1h |
//!
//! The long window says the spending is sustained, the short one that it
//! still goes on (the alert resolves soon after it stops). Twice the
//! budget on the fast pair because 6 hours of a day's peak can run at
//! twice the day's average; 3 days average over the daily cycle. Both are
//! tickets: money is not paged for.
//!
//! What is priced, per hour, in recorded series (`cost-rates` group):
//!
//! - a module: its measured CPU (`reliable_cost_cpu_seconds_total`, all
//!   routes and tasks) × `resources.cpu_core_hour`, plus its measured
//!   memory (`reliable_memory_bytes`) × `resources.ram_gib_hour`. Shared
//!   memory and the process's protocol overhead are in no module's series,
//!   so this is the module's own cost, a lower bound of its allocation in
//!   `reliable cost`.
//! - an API key: its tokens (`llm_key_tokens_total`) × the per-1,000
//!   prices of external models (joined on a recorded price table), plus,
//!   for each self-hosted model, the model's hourly price × the key's share
//!   of the model's tokens in the window. Unpriced models cost 0, as in
//!   `reliable cost --aggregate key`.

use crate::pricing::Pricing;
use slo::rules::{Rule, RuleGroup};
use slo::{number, Window};
use std::collections::BTreeMap;

/// Where the alerts' runbook is.
pub const RUNBOOK: &str = "docs/runbooks/cost-budget.md";
/// The module's CPU counter (kit's `cpu_cost`).
const CPU_SECONDS: &str = "reliable_cost_cpu_seconds_total";
/// The module's measured memory gauge.
const MEMORY_BYTES: &str = "reliable_memory_bytes";
/// The LLM gateway's tokens per key.
const KEY_TOKENS: &str = "llm_key_tokens_total";
/// Recorded: an external model's price of 1,000 tokens of one type.
pub const TOKEN_PRICE: &str = "cost:llm_token_price:per_1k";
/// Recorded: a self-hosted model's hourly price.
pub const SELF_HOSTED_PRICE: &str = "cost:llm_self_hosted_price:hourly";
/// `alertname` of the module budget alerts.
pub const MODULE_ALERT: &str = "CostModuleBudgetBurn";
/// `alertname` of the key budget alerts.
pub const KEY_ALERT: &str = "CostKeyBudgetBurn";

/// Hours in the projected month (30 days).
const MONTH_HOURS: f64 = crate::MONTH_HOURS;

/// One pair of windows of the burn-rate alert.
struct Burn {
    name: &'static str,
    long: Window,
    short: Window,
    /// The projected month must pass this many budgets.
    factor: f64,
    /// `factor` in words, for the summary.
    times: &'static str,
    for_: Window,
}

const BURNS: [Burn; 2] = [
    Burn {
        name: "fast",
        long: Window::hours(6),
        short: Window::minutes(30),
        factor: 2.0,
        times: "twice ",
        for_: Window::minutes(15),
    },
    Burn {
        name: "slow",
        long: Window::days(3),
        short: Window::hours(6),
        factor: 1.0,
        times: "",
        for_: Window::hours(1),
    },
];

/// Every window a rate is recorded over, shortest first.
const WINDOWS: [Window; 3] = [Window::minutes(30), Window::hours(6), Window::days(3)];

/// Recorded: a module's cost per hour over `window`, by `resource`.
pub fn module_rate(window: Window) -> String {
    format!("module:cost_per_hour:rate{window}")
}

/// Recorded: a key's cost per hour on one model over `window`, by `basis`.
pub fn key_rate(window: Window) -> String {
    format!("key_model:llm_cost_per_hour:rate{window}")
}

/// A budget that cannot become an alert.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("budgets.modules.{name}: no module is named `{name}` (modules: {known})")]
    UnknownModule { name: String, known: String },
    #[error("budgets.{kind}.{name}: a budget name is 1 to 64 of a-z, 0-9, `-`, `_` and `.`, as module and API key names are")]
    BadName { kind: &'static str, name: String },
}

/// Checks that every budget names something that can spend: a module of
/// `modules`, or a name an API key can have. A budget on a misspelt module
/// would never fire, so it is refused rather than generated.
pub fn check(pricing: &Pricing, modules: &[&str]) -> Result<(), BudgetError> {
    let valid = |name: &str| {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    };
    for (kind, names) in [
        ("modules", &pricing.budgets.modules),
        ("keys", &pricing.budgets.keys),
    ] {
        if let Some(name) = names.keys().find(|n| !valid(n)) {
            return Err(BudgetError::BadName {
                kind,
                name: name.clone(),
            });
        }
    }
    if let Some(name) = pricing
        .budgets
        .modules
        .keys()
        .find(|n| !modules.contains(&n.as_str()))
    {
        return Err(BudgetError::UnknownModule {
            name: name.clone(),
            known: modules.join(", "),
        });
    }
    Ok(())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn record(record: String, expr: String, pairs: &[(&str, &str)]) -> Rule {
    Rule::Record {
        record,
        expr,
        labels: labels(pairs),
    }
}

/// The price table and the per-hour cost of every module and key.
fn rates(pricing: &Pricing) -> RuleGroup {
    let mut rules = Vec::new();
    for (model, price) in &pricing.llm {
        for (kind, per_1k) in [
            ("input", price.input_per_1k),
            ("output", price.output_per_1k),
        ] {
            rules.push(record(
                TOKEN_PRICE.to_string(),
                format!("vector({})", number(per_1k.0)),
                &[("gen_ai_request_model", model), ("gen_ai_token_type", kind)],
            ));
        }
    }
    for (model, backend) in &pricing.llm_self_hosted {
        rules.push(record(
            SELF_HOSTED_PRICE.to_string(),
            format!("vector({})", number(backend.hourly.0)),
            &[("gen_ai_request_model", model)],
        ));
    }
    let cpu = number(pricing.resources.cpu_core_hour.0);
    let ram = number(pricing.resources.ram_gib_hour.0);
    for w in WINDOWS {
        rules.push(record(
            module_rate(w),
            format!("sum by (module) (rate({CPU_SECONDS}[{w}])) * {cpu}"),
            &[("resource", "cpu")],
        ));
        rules.push(record(
            module_rate(w),
            format!("sum by (module) (avg_over_time({MEMORY_BYTES}[{w}])) / 1073741824 * {ram}"),
            &[("resource", "memory")],
        ));
        if !pricing.llm.is_empty() {
            // tokens/s × price per 1,000 × 3,600 s/h ÷ 1,000
            rules.push(record(
                key_rate(w),
                format!(
                    "sum by (key, gen_ai_request_model) (rate({KEY_TOKENS}[{w}]) * on (gen_ai_request_model, gen_ai_token_type) group_left {TOKEN_PRICE}) * 3.6"
                ),
                &[("basis", "external")],
            ));
        }
        if !pricing.llm_self_hosted.is_empty() {
            // The model's hourly price × the key's share of its tokens.
            // Keys that used nothing are left out first (`> 0`), so no
            // share is 0/0: a NaN would hide the key's other spend.
            rules.push(record(
                key_rate(w),
                format!(
                    "sum by (key, gen_ai_request_model) (rate({KEY_TOKENS}[{w}]) > 0) * on (gen_ai_request_model) group_left {SELF_HOSTED_PRICE} / on (gen_ai_request_model) group_left sum by (gen_ai_request_model) (rate({KEY_TOKENS}[{w}]))"
                ),
                &[("basis", "self-hosted")],
            ));
        }
    }
    RuleGroup {
        name: "cost-rates".to_string(),
        rules,
    }
}

/// What a budget is on: the label that names it and the recorded rate.
struct Subject<'a> {
    alert: &'static str,
    label: &'static str,
    name: &'a str,
    rate: fn(Window) -> String,
    priced: String,
}

fn alerts(subject: &Subject<'_>, budget: f64, currency: &str) -> Vec<Rule> {
    let Subject {
        alert,
        label,
        name,
        rate,
        priced,
    } = subject;
    BURNS
        .iter()
        .map(|burn| {
            let threshold = number(burn.factor * budget);
            let month = |w: Window| {
                format!(
                    "sum by ({label}) ({}{{{label}=\"{name}\"}}) * {} > {threshold}",
                    rate(w),
                    number(MONTH_HOURS)
                )
            };
            let over = format!("{}its budget of {} {currency}", burn.times, number(budget));
            Rule::Alert {
                alert: alert.to_string(),
                expr: format!("{} and {}", month(burn.long), month(burn.short)),
                for_: Some(burn.for_),
                // The name as a label of the rule too: without it, two
                // budgets' alerts would be the same rule to promtool.
                labels: labels(&[
                    ("severity", "ticket"),
                    ("budget_burn", burn.name),
                    (label, name),
                ]),
                annotations: labels(&[
                    (
                        "summary",
                        &format!(
                            "{label} {name}: spending {{{{ $value | printf \"%.2f\" }}}} {currency} a month at the last {}'s rate, over {over}",
                            burn.long
                        ),
                    ),
                    (
                        "description",
                        &format!(
                            "The month projected at the last {}'s rate and at the last {}'s is above {over}. Priced: {priced}.",
                            burn.long, burn.short
                        ),
                    ),
                    ("runbook_url", RUNBOOK),
                ]),
            }
        })
        .collect()
}

/// The rule groups of a pricing file's budgets: the rates, then an alert
/// pair per budget. Check the names with [`check`] first.
pub fn groups(pricing: &Pricing) -> Vec<RuleGroup> {
    let currency = pricing.currency.as_str();
    let mut rules = Vec::new();
    for (module, budget) in &pricing.budgets.modules {
        let subject = Subject {
            alert: MODULE_ALERT,
            label: "module",
            name: module,
            rate: module_rate,
            priced: format!(
                "measured CPU at {} {currency} a core-hour and measured memory at {} {currency} a GiB-hour; shared memory and protocol overhead are not in it",
                number(pricing.resources.cpu_core_hour.0),
                number(pricing.resources.ram_gib_hour.0)
            ),
        };
        rules.extend(alerts(&subject, budget.0, currency));
    }
    for (key, budget) in &pricing.budgets.keys {
        let subject = Subject {
            alert: KEY_ALERT,
            label: "key",
            name: key,
            rate: key_rate,
            priced: "the key's LLM tokens at the external models' prices and its share of the self-hosted models' hours; unpriced models count 0".to_string(),
        };
        rules.extend(alerts(&subject, budget.0, currency));
    }
    let mut groups = vec![rates(pricing)];
    if !rules.is_empty() {
        groups.push(RuleGroup {
            name: "cost-budgets".to_string(),
            rules,
        });
    }
    groups
}

#[cfg(test)]
mod tests;
