//! Grafana dashboards for the SLOs of one spec file, and the ConfigMap
//! that carries one to Grafana.
//!
//! Dashboards read the recording rules of [`crate::rules`] (the same
//! `slo:*` series the alerts compare), so a panel and an alert never
//! disagree about a number. Only the latency quantiles have no recorded
//! series; they are raw `histogram_quantile` queries over the SLI's own
//! histogram. The only Grafana variable is the Prometheus data source;
//! expressions use no variable but `$__rate_interval`, so each one is
//! plain PromQL that `promtool` can check.
//!
//! Output is deterministic: SLOs in file order (their line), panels in a
//! fixed order, ids counted from 1, JSON keys sorted (whether or not some
//! other crate turns on serde_json's `preserve_order`).
//! A regenerated dashboard differs from the committed one only when a
//! spec changed, which is what the staleness test relies on.
//!
//! The ConfigMap is for the Grafana sidecar of kube-prometheus-stack,
//! which loads every ConfigMap labelled `grafana_dashboard: "1"`.

mod panel;
mod text;

use crate::burn::{self, Severity, WindowPair};
use crate::model::{ErrorEvents, Sli, Slo};
use crate::policy::Policy;
use crate::rules::{self, ratio_metric};
use crate::window::Window;
use crate::{number, promql};
pub use panel::PanelKind;
use panel::{thresholds, Grid, Panel, HEIGHT, WIDTH};
use serde_json::{json, Value};
pub use text::{config_map, config_map_name, dashboard_json};

/// Grafana 10.4 / 11 dashboard schema.
pub const SCHEMA_VERSION: u64 = 39;
pub const TAGS: [&str; 2] = ["reliable", "slo"];
/// The name of the data-source variable every panel reads through.
pub const DATASOURCE_VARIABLE: &str = "datasource";
/// Grafana refuses a `uid` longer than this.
const MAX_UID: usize = 40;
/// The quantiles a latency panel draws.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

/// `reliable-slo-<stem>`, reduced to the characters and length Grafana
/// accepts; a long stem keeps its start and gets a hash of the whole
/// stem, so two long stems still get two uids.
pub fn uid(stem: &str) -> String {
    let clean: String = format!("reliable-slo-{stem}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= MAX_UID {
        return clean;
    }
    let hash = format!("{:08x}", fnv1a(stem.as_bytes()) as u32);
    format!("{}-{hash}", &clean[..MAX_UID - hash.len() - 1])
}

/// FNV-1a: stable across Rust versions and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The default error-budget policy's steps as colours (freeze red,
/// reliability-first orange, caution yellow, ship green), so the budget
/// panels and `reliable slo gate` draw their lines in the same places.
/// Red below the lowest rule, green above the highest.
fn policy_colors() -> Value {
    const INNER: [&str; 2] = ["orange", "yellow"];
    let rules = Policy::default().rules().to_vec();
    let steps: Vec<(f64, &str)> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let color = if i + 1 == rules.len() {
                "green"
            } else {
                INNER.get(i).copied().unwrap_or("yellow")
            };
            (rule.below, color)
        })
        .collect();
    thresholds("red", &steps)
}

/// `freeze below 10%, ...`, for the budget panels' descriptions.
fn policy_steps() -> String {
    Policy::default()
        .rules()
        .iter()
        .map(|r| format!("{} below {}%", r.decision, number(r.below * 100.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The burn-rate window pairs this SLO alerts on: a switched-off tier has
/// no alert, so no factor to draw.
fn alerted_pairs(slo: &Slo) -> Vec<&'static WindowPair> {
    [
        (Severity::Page, slo.alerting.page.is_some()),
        (Severity::Ticket, slo.alerting.ticket.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .flat_map(|(severity, _)| burn::pairs(severity))
    .collect()
}

/// The SLI's histogram and threshold, for a latency SLO.
fn latency(slo: &Slo) -> Option<(f64, String)> {
    match &slo.sli {
        Sli::Events {
            errors: ErrorEvents::Good(good),
            latency_threshold: Some(threshold),
            ..
        } => promql::latency_buckets(good, *threshold).map(|b| (*threshold, b)),
        _ => None,
    }
}

/// The row of one SLO: its panels, laid out from `grid.y` down.
fn slo_row(slo: &Slo, grid: &mut Grid) -> Vec<Value> {
    let id = slo.id();
    let sel = format!("{{slo_id=\"{id}\"}}");
    let period = slo.period;
    let objective = slo.objective.ratio();
    let budget = number(slo.objective.error_budget());
    let mut panels = vec![json!({
        "id": grid.id(),
        "type": "row",
        "title": format!("{id}: {} over {period}", slo.objective),
        "description": if slo.description.is_empty() {
            format!("The {} SLO of {}.", slo.name, slo.service)
        } else {
            slo.description.clone()
        },
        "collapsed": false,
        "gridPos": grid.pos(0, WIDTH, 1),
        "panels": [],
    })];
    grid.y += 1;

    let short = Window::hours(1);
    panels.push(
        Panel {
            kind: PanelKind::Sli,
            title_suffix: format!(" (objective {})", slo.objective),
            description: format!(
                "Share of good events over the rolling {period} SLO period ({PERIOD}) and over the last {short}; the dashed line is the objective, {}. Below the line, the period's error budget is spent.",
                slo.objective,
                PERIOD = rules::PERIOD_ERROR_RATIO,
            ),
            unit: "percentunit",
            thresholds: thresholds("red", &[(objective, "green")]),
            queries: vec![
                (format!("1 - {}{sel}", rules::PERIOD_ERROR_RATIO), format!("SLI over {period}")),
                (format!("1 - {}{sel}", ratio_metric(short)), format!("SLI over {short}")),
            ],
        }
        .timeseries(grid, 0, 12),
    );
    let remaining = vec![(
        format!("{}{sel}", rules::BUDGET_REMAINING),
        "budget remaining".to_string(),
    )];
    let budget_description = format!(
        "Share of the {period} error budget ({budget} of events) not yet spent ({}): 100% is untouched, 0% is spent, below 0 the SLO is missed. Colours are the default error-budget policy's steps ({}).",
        rules::BUDGET_REMAINING,
        policy_steps(),
    );
    panels.push(
        Panel {
            kind: PanelKind::BudgetRemaining,
            title_suffix: String::new(),
            description: budget_description.clone(),
            unit: "percentunit",
            thresholds: policy_colors(),
            queries: remaining.clone(),
        }
        .stat(grid, 12, 4),
    );
    panels.push(
        Panel {
            kind: PanelKind::BudgetHistory,
            title_suffix: String::new(),
            description: budget_description,
            unit: "percentunit",
            thresholds: policy_colors(),
            queries: remaining,
        }
        .timeseries(grid, 16, 8),
    );
    grid.y += HEIGHT;

    let pairs = alerted_pairs(slo);
    if !pairs.is_empty() {
        let w = WIDTH / pairs.len() as u64;
        for (i, pair) in pairs.iter().enumerate() {
            let factor = pair.factor(period).value();
            let burn = |window: Window| {
                // The 5-minute burn rate is recorded; the others are the
                // alert's own comparison, ratio over budget.
                if window == Window::minutes(5) {
                    format!("{}{sel}", rules::CURRENT_BURN_RATE)
                } else {
                    format!("{}{sel} / {budget}", ratio_metric(window))
                }
            };
            panels.push(
                Panel {
                    kind: PanelKind::BurnRate,
                    title_suffix: format!(
                        " {} / {} ({}, above {})",
                        pair.long,
                        pair.short,
                        pair.severity,
                        number(factor)
                    ),
                    description: format!(
                        "How fast the error budget burns over the {long} and {short} windows (error ratio / {budget}; 1 spends exactly the budget in {period}). The {severity} alert fires while both lines are above the dashed line, {factor}: {share}% of the {period} budget spent within {long}.",
                        long = pair.long,
                        short = pair.short,
                        severity = pair.severity,
                        factor = number(factor),
                        share = number(pair.budget_share * 100.0),
                    ),
                    unit: "none",
                    thresholds: thresholds("green", &[(factor, "red")]),
                    queries: vec![
                        (burn(pair.long), format!("burn rate over {}", pair.long)),
                        (burn(pair.short), format!("burn rate over {}", pair.short)),
                    ],
                }
                .timeseries(grid, w * i as u64, w),
            );
        }
        grid.y += HEIGHT;
    }

    if let Some((threshold, buckets)) = latency(slo) {
        let queries = QUANTILES
            .iter()
            .map(|(q, name)| {
                (
                    format!(
                        "histogram_quantile({q}, sum by (le) (rate({buckets}[$__rate_interval])))"
                    ),
                    name.to_string(),
                )
            })
            .collect();
        panels.push(
            Panel {
                kind: PanelKind::Latency,
                title_suffix: format!(" (threshold {} s)", number(threshold)),
                description: format!(
                    "p50, p90 and p99 latency from the SLI's histogram, {buckets}, over Grafana's rate interval (no recording rule: quantiles are for looking, the SLO counts buckets). The dashed line is the SLO threshold, {} s: the objective asks {} of events to stay under it. Quantiles are interpolated inside buckets, so they are estimates.",
                    number(threshold),
                    slo.objective,
                ),
                unit: "s",
                thresholds: thresholds("green", &[(threshold, "red")]),
                queries,
            }
            .timeseries(grid, 0, WIDTH),
        );
        grid.y += HEIGHT;
    }
    panels
}

/// The dashboard of one spec file's SLOs. `stem` names it (`uid`, title);
/// `source` is the file name the description cites.
pub fn dashboard(stem: &str, source: &str, slos: &[&Slo]) -> Value {
    let mut ordered = slos.to_vec();
    ordered.sort_by_key(|s| (s.source.line, s.id()));
    let mut grid = Grid { next_id: 1, y: 0 };
    let panels: Vec<Value> = ordered
        .iter()
        .flat_map(|slo| slo_row(slo, &mut grid))
        .collect();
    json!({
        "id": null,
        "uid": uid(stem),
        "title": format!("SLOs: {stem}"),
        "description": format!("Generated by `reliable slo dashboards` from {source}; do not edit: edit the spec. One row per SLO: SLI, error budget, burn rates, latency."),
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        // Grafana's copy is overwritten by the sidecar; edits there would be lost.
        "editable": false,
        "graphTooltip": 1,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [{
            "name": DATASOURCE_VARIABLE,
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "includeAll": false,
            "multi": false,
            "options": [],
        }]},
        "panels": panels,
    })
}

#[cfg(test)]
mod tests;
