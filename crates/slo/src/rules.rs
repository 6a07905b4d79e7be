//! Prometheus recording and alerting rules for an [`Slo`].
//!
//! Three groups per SLO, all series labelled `slo_id`, `slo_service`,
//! `slo_name` and the spec's labels:
//!
//! - `slo-<id>-sli`: the error ratio over every alert window
//!   (`slo:sli_error:ratio_rate5m` ... `ratio_rate3d`) and, for counted
//!   events, the 5-minute error and total event rates;
//! - `slo-<id>-meta`: objective, budget, period, the period SLI, burn rates
//!   and budget remaining for dashboards and `reliable slo status`;
//! - `slo-<id>-alerts`: page and ticket burn-rate alerts (see [`crate::burn`])
//!   and an alert when the SLI has no data at all.
//!
//! Two choices matter. A window without requests has no ratio (0/0), so
//! every ratio divides by `total > 0` and falls back to `total * 0`: no
//! NaN, no Inf, zero burn, nothing fires. And the period SLI is the ratio
//! of summed event rates (`sum_over_time(errors) / sum_over_time(total)`),
//! weighted by traffic, not an average of 5-minute ratios, which would let
//! a quiet night's single failed request count as much as a busy hour.

use crate::burn::{self, Severity, ALERT_WINDOWS};
use crate::model::{ErrorEvents, Sli, Slo};
use crate::number;
use crate::window::Window;
use std::collections::BTreeMap;

/// Recorded error ratio over `window`.
pub fn ratio_metric(window: Window) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

pub const ERROR_EVENTS_5M: &str = "slo:sli_error_events:rate5m";
pub const TOTAL_EVENTS_5M: &str = "slo:sli_total_events:rate5m";
pub const OBJECTIVE: &str = "slo:objective:ratio";
pub const ERROR_BUDGET: &str = "slo:error_budget:ratio";
pub const PERIOD_SECONDS: &str = "slo:period:seconds";
pub const PERIOD_ERROR_RATIO: &str = "slo:period_sli_error:ratio";
pub const CURRENT_BURN_RATE: &str = "slo:current_burn_rate:ratio";
pub const PERIOD_BURN_RATE: &str = "slo:period_burn_rate:ratio";
pub const BUDGET_REMAINING: &str = "slo:period_error_budget_remaining:ratio";
/// `alertname` of the no-data alert.
pub const ABSENT_ALERT: &str = "SLOMetricsAbsent";
/// Default `alertname` of the burn-rate alerts.
pub const BURN_ALERT: &str = "SLOErrorBudgetBurn";
/// How long the SLI may have no data before the absent alert fires.
pub const ABSENT_FOR: Window = Window::minutes(10);

#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
    Alert {
        alert: String,
        expr: String,
        for_: Option<Window>,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
}

impl Rule {
    pub fn expr(&self) -> &str {
        match self {
            Rule::Record { expr, .. } | Rule::Alert { expr, .. } => expr,
        }
    }
}

/// The labels every series of this SLO carries.
pub fn slo_labels(slo: &Slo) -> BTreeMap<String, String> {
    let mut labels = slo.labels.clone();
    labels.insert("slo_id".into(), slo.id());
    labels.insert("slo_service".into(), slo.service.clone());
    labels.insert("slo_name".into(), slo.name.clone());
    labels
}

/// `{slo_id="..."}`: selects this SLO's recorded series.
fn selector(slo: &Slo) -> String {
    format!("{{slo_id=\"{}\"}}", slo.id())
}

/// `(errors / (total > 0)) or (errors * 0)`: zero, not NaN, without
/// traffic; empty (so the absent alert speaks) when the errors are.
fn guarded_ratio(errors: &str, total: &str) -> String {
    format!("({errors}) / (({total}) > 0) or ({errors}) * 0")
}

/// The error-event rate over `window`. A missing bad or good counter
/// means no such events yet (0 bad, or every event bad), except for a
/// latency SLI: a histogram exports every bucket, so a missing bucket
/// means the threshold is not one of its bounds, and the SLI stays empty
/// (the absent alert fires) instead of reading as 100% slow.
fn error_events(errors: &ErrorEvents, total: &str, window: Window, latency: bool) -> String {
    match errors {
        ErrorEvents::Bad(bad) => format!("({}) or ({total}) * 0", bad.render(window)),
        ErrorEvents::Good(good) if latency => {
            format!("clamp_min(({total}) - ({}), 0)", good.render(window))
        }
        ErrorEvents::Good(good) => format!(
            "clamp_min(({total}) - (({}) or ({total}) * 0), 0)",
            good.render(window)
        ),
    }
}

/// The error ratio expression over `window`.
pub fn ratio_expr(sli: &Sli, window: Window) -> String {
    match sli {
        Sli::Events {
            errors,
            total,
            latency_threshold,
        } => {
            let total = total.render(window);
            let errors = error_events(errors, &total, window, latency_threshold.is_some());
            guarded_ratio(&errors, &total)
        }
        // A NaN from the query's own 0/0 is dropped (NaN >= 0 is false).
        Sli::Raw { error_ratio } => format!("({}) >= 0", error_ratio.render(window)),
    }
}

pub fn groups(slo: &Slo) -> Vec<RuleGroup> {
    let id = slo.id();
    let labels = slo_labels(slo);
    let record = |record: &str, expr: String| Rule::Record {
        record: record.to_string(),
        expr,
        labels: labels.clone(),
    };
    let mut sli = Vec::new();
    if let Sli::Events {
        errors,
        total,
        latency_threshold,
    } = &slo.sli
    {
        let five = Window::minutes(5);
        let total = total.render(five);
        let errors = error_events(errors, &total, five, latency_threshold.is_some());
        sli.push(record(ERROR_EVENTS_5M, errors));
        sli.push(record(TOTAL_EVENTS_5M, total));
    }
    for window in ALERT_WINDOWS {
        sli.push(record(&ratio_metric(window), ratio_expr(&slo.sli, window)));
    }

    let sel = selector(slo);
    let budget = number(slo.objective.error_budget());
    let period = slo.period;
    let period_ratio = match &slo.sli {
        Sli::Events { .. } => guarded_ratio(
            &format!("sum_over_time({ERROR_EVENTS_5M}{sel}[{period}])"),
            &format!("sum_over_time({TOTAL_EVENTS_5M}{sel}[{period}])"),
        ),
        Sli::Raw { .. } => format!(
            "avg_over_time({}{sel}[{period}])",
            ratio_metric(Window::minutes(5))
        ),
    };
    let meta = vec![
        record(
            OBJECTIVE,
            format!("vector({})", number(slo.objective.ratio())),
        ),
        record(ERROR_BUDGET, format!("vector({budget})")),
        record(PERIOD_SECONDS, format!("vector({})", period.as_secs())),
        record(PERIOD_ERROR_RATIO, period_ratio),
        record(
            CURRENT_BURN_RATE,
            format!("{}{sel} / {budget}", ratio_metric(Window::minutes(5))),
        ),
        record(
            PERIOD_BURN_RATE,
            format!("{PERIOD_ERROR_RATIO}{sel} / {budget}"),
        ),
        record(BUDGET_REMAINING, format!("1 - {PERIOD_BURN_RATE}{sel}")),
    ];

    let mut alerts = Vec::new();
    for (severity, tier) in [
        (Severity::Page, &slo.alerting.page),
        (Severity::Ticket, &slo.alerting.ticket),
    ] {
        let Some(tier) = tier else { continue };
        let mut alert_labels = labels.clone();
        alert_labels.extend(slo.alerting.labels.clone());
        alert_labels.insert("severity".into(), severity.to_string());
        alert_labels.extend(tier.labels.clone());
        alert_labels.insert("slo_severity".into(), severity.to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "summary".into(),
            format!("{id}: error budget burning too fast ({severity})"),
        );
        annotations.insert(
            "description".into(),
            format!(
                "The {} SLO of {} ({} over {}) is burning its error budget at a rate that needs a {severity}.",
                slo.name, slo.service, slo.objective, slo.period
            ),
        );
        annotations.extend(slo.alerting.annotations.clone());
        annotations.extend(tier.annotations.clone());
        alerts.push(Rule::Alert {
            alert: alert_name(slo),
            expr: burn_expr(slo, severity),
            for_: tier.for_,
            labels: alert_labels,
            annotations,
        });
    }
    let mut absent_labels = labels.clone();
    absent_labels.insert("severity".into(), "ticket".into());
    alerts.push(Rule::Alert {
        alert: ABSENT_ALERT.into(),
        expr: format!("absent({}{sel})", ratio_metric(Window::minutes(5))),
        for_: Some(ABSENT_FOR),
        labels: absent_labels,
        annotations: BTreeMap::from([(
            "summary".to_string(),
            format!("{id}: the SLI has no data (missing metrics are not \"all good\")"),
        )]),
    });

    vec![
        RuleGroup {
            name: format!("slo-{id}-sli"),
            rules: sli,
        },
        RuleGroup {
            name: format!("slo-{id}-meta"),
            rules: meta,
        },
        RuleGroup {
            name: format!("slo-{id}-alerts"),
            rules: alerts,
        },
    ]
}

pub fn alert_name(slo: &Slo) -> String {
    if slo.alerting.name.is_empty() {
        BURN_ALERT.to_string()
    } else {
        slo.alerting.name.clone()
    }
}

/// Both windows of any pair of this severity above the pair's factor.
fn burn_expr(slo: &Slo, severity: Severity) -> String {
    let sel = selector(slo);
    let budget = number(slo.objective.error_budget());
    burn::pairs(severity)
        .map(|pair| {
            let factor = number(pair.factor(slo.period).value());
            format!(
                "({long}{sel} > ({factor} * {budget}) and {short}{sel} > ({factor} * {budget}))",
                long = ratio_metric(pair.long),
                short = ratio_metric(pair.short),
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
