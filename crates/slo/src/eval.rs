//! The live evaluator: the generated rules' math, run in-process on
//! counters sampled from the platform's own metrics.
//!
//! Each tick (at a time the caller's clock gives, so tests drive it
//! without sleeping) records every SLO's cumulative error and total
//! counters; the error ratio over a window is the ratio of the counters'
//! increases, as `rate(errors[w]) / rate(total[w])` is in Prometheus
//! (extrapolation cancels out of the ratio). Burn rates, page and ticket
//! conditions (with `for`), the absent alert and the budget left follow
//! [`crate::burn`] and [`crate::rules`] exactly.

use crate::alerts::{Alert, AlertCondition, AlertState, AlertTransition, SloPoint};
use crate::burn::{self, Severity, ALERT_WINDOWS};
use crate::exposition::{EventCounts, Sampler};
use crate::history::History;
use crate::model::Slo;
use crate::objective::{BurnRate, Objective};
use crate::rules::{ABSENT_ALERT, ABSENT_FOR};
use crate::status::{SloStatus, StatusReport, WindowBurn};
use crate::window::Window;

/// Data counts as present with two samples in the last 5 minutes, as
/// `rate(x[5m])` needs.
const DATA_WINDOW_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone)]
struct Tracked {
    id: String,
    service: String,
    name: String,
    objective: Objective,
    period: Window,
    /// `Some(for)` per enabled tier: page, ticket.
    tiers: [(Severity, Option<Option<Window>>); 2],
    history: History,
    /// Since when each condition (page, ticket, absent) has held.
    since: [Option<i64>; 3],
    firing: [bool; 3],
    has_data: bool,
    /// The burn alerts' `alertname`.
    alert_name: String,
    runbook: Option<String>,
}

/// Transitions kept until [`Evaluator::take_transitions`] collects them;
/// beyond that a caller that never collects loses the oldest.
const MAX_PENDING_TRANSITIONS: usize = 10_000;

/// Evaluates a fixed set of SLOs tick by tick.
#[derive(Debug)]
pub struct Evaluator {
    slos: Vec<Tracked>,
    sampler: Sampler,
    not_evaluable: Vec<String>,
    transitions: std::collections::VecDeque<AlertTransition>,
}

impl Evaluator {
    pub fn new(slos: &[Slo]) -> Self {
        let (sampler, not_evaluable) = Sampler::new(slos);
        let tracked = slos
            .iter()
            .map(|s| Tracked {
                id: s.id(),
                service: s.service.clone(),
                name: s.name.clone(),
                objective: s.objective,
                period: s.period,
                tiers: [
                    (Severity::Page, s.alerting.page.as_ref().map(|t| t.for_)),
                    (Severity::Ticket, s.alerting.ticket.as_ref().map(|t| t.for_)),
                ],
                history: History::new(s.period.as_secs() as i64 * 1000),
                since: [None; 3],
                firing: [false; 3],
                has_data: false,
                alert_name: crate::rules::alert_name(s),
                runbook: s.alerting.annotations.get("runbook_url").cloned(),
            })
            .collect();
        Self {
            slos: tracked,
            sampler,
            not_evaluable,
            transitions: std::collections::VecDeque::new(),
        }
    }

    /// SLOs whose queries are not `sum(rate(selector[w]))`-shaped.
    pub fn not_evaluable(&self) -> &[String] {
        &self.not_evaluable
    }

    /// Samples a `/metrics` text at `now_ms` and ticks.
    pub fn observe_text(&mut self, now_ms: i64, text: &str) {
        let counts = self.sampler.sample(text);
        self.tick(now_ms, &counts);
    }

    /// One tick: `counts[i]` are SLO i's counters now (`None`: no series).
    pub fn tick(&mut self, now_ms: i64, counts: &[Option<EventCounts>]) {
        for (slo, count) in self.slos.iter_mut().zip(counts) {
            if let Some(c) = count {
                slo.history.record(now_ms, c.errors, c.total);
            }
            slo.has_data = slo.history.count_since(now_ms - DATA_WINDOW_MS) >= 2;
            let conditions = [
                slo.tiers[0].1.is_some() && slo.burning(Severity::Page),
                slo.tiers[1].1.is_some() && slo.burning(Severity::Ticket),
                !slo.has_data,
            ];
            let holds_for = [
                slo.tiers[0].1.flatten(),
                slo.tiers[1].1.flatten(),
                Some(ABSENT_FOR),
            ];
            for i in 0..3 {
                let was_firing = slo.firing[i];
                if conditions[i] {
                    let since = *slo.since[i].get_or_insert(now_ms);
                    let needed = holds_for[i].map_or(0, |w| w.as_secs() as i64 * 1000);
                    slo.firing[i] = now_ms - since >= needed;
                } else {
                    slo.since[i] = None;
                    slo.firing[i] = false;
                }
                if slo.firing[i] != was_firing {
                    if self.transitions.len() == MAX_PENDING_TRANSITIONS {
                        self.transitions.pop_front();
                    }
                    self.transitions
                        .push_back(slo.transition(AlertCondition::ALL[i], now_ms));
                }
            }
        }
    }

    /// Pending and firing alerts, firing first.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self.slos.iter().flat_map(Tracked::alerts).collect();
        alerts.sort_by_key(|a| (a.state != AlertState::Firing, a.severity, a.since_ms));
        alerts
    }

    /// The alerts that started or stopped firing since the last call,
    /// oldest first.
    pub fn take_transitions(&mut self) -> Vec<AlertTransition> {
        self.transitions.drain(..).collect()
    }

    /// Every SLO's chart point at `now_ms`: `(slo id, point)`.
    pub fn points(&self, now_ms: i64) -> Vec<(String, SloPoint)> {
        self.slos
            .iter()
            .map(|slo| {
                let status = slo.status();
                let point = SloPoint {
                    at_ms: now_ms,
                    sli: status.sli,
                    budget_remaining: status.budget_remaining,
                    burn_rate_5m: status.burn_rates.first().and_then(|b| b.burn_rate),
                };
                (slo.id.clone(), point)
            })
            .collect()
    }

    pub fn report(&self, source: &str) -> StatusReport {
        StatusReport {
            source: source.to_string(),
            slos: self.slos.iter().map(Tracked::status).collect(),
        }
    }
}

impl Tracked {
    fn alert_name_of(&self, condition: AlertCondition) -> String {
        match condition {
            AlertCondition::Absent => ABSENT_ALERT.to_string(),
            _ => self.alert_name.clone(),
        }
    }

    fn transition(&self, condition: AlertCondition, now_ms: i64) -> AlertTransition {
        let i = condition as usize;
        AlertTransition {
            at_ms: now_ms,
            name: self.alert_name_of(condition),
            slo_id: self.id.clone(),
            service: self.service.clone(),
            condition,
            severity: condition.severity(),
            firing: self.firing[i],
            runbook: self.runbook.clone(),
        }
    }

    fn alerts(&self) -> Vec<Alert> {
        AlertCondition::ALL
            .iter()
            .filter_map(|&condition| {
                let i = condition as usize;
                let since = self.since[i]?;
                let firing = self.firing[i];
                let summary = match condition {
                    AlertCondition::Absent => format!("{}: the SLI has no data", self.id),
                    _ => format!(
                        "{}: error budget burning too fast ({})",
                        self.id,
                        condition.severity().as_str()
                    ),
                };
                let firing_since_ms = firing.then(|| {
                    let needed = match condition {
                        AlertCondition::PageBurn => self.tiers[0].1.flatten(),
                        AlertCondition::TicketBurn => self.tiers[1].1.flatten(),
                        AlertCondition::Absent => Some(ABSENT_FOR),
                    };
                    since + needed.map_or(0, |w| w.as_secs() as i64 * 1000)
                });
                Some(Alert {
                    name: self.alert_name_of(condition),
                    slo_id: self.id.clone(),
                    service: self.service.clone(),
                    condition,
                    severity: condition.severity(),
                    state: if firing {
                        AlertState::Firing
                    } else {
                        AlertState::Pending
                    },
                    since_ms: since,
                    firing_since_ms,
                    runbook: self.runbook.clone(),
                    summary,
                })
            })
            .collect()
    }

    fn burn(&self, window: Window) -> Option<BurnRate> {
        if !self.has_data {
            return None;
        }
        let ratio = self.history.ratio(window.as_secs() as i64 * 1000);
        Some(BurnRate::of(ratio, self.objective))
    }

    fn burning(&self, severity: Severity) -> bool {
        self.has_data
            && burn::fires(severity, self.period, |w| {
                self.burn(w).unwrap_or(BurnRate::factor(0.0))
            })
    }

    fn status(&self) -> SloStatus {
        let period_ratio = if self.has_data {
            self.history.ratio(self.period.as_secs() as i64 * 1000)
        } else {
            None
        };
        let budget = self.objective.error_budget();
        let remaining = period_ratio.map(|r| 1.0 - r / budget);
        let mut firing = Vec::new();
        for (i, label) in ["page", "ticket", "absent"].iter().enumerate() {
            if self.firing[i] {
                firing.push(label.to_string());
            }
        }
        SloStatus {
            id: self.id.clone(),
            service: self.service.clone(),
            name: self.name.clone(),
            objective: self.objective.ratio(),
            period_seconds: self.period.as_secs(),
            sli: period_ratio.map(|r| 1.0 - r),
            budget_remaining: remaining,
            budget_remaining_seconds: remaining.map(|r| {
                SloStatus::remaining_seconds(self.objective.ratio(), self.period.as_secs(), r)
            }),
            burn_rates: ALERT_WINDOWS
                .iter()
                .map(|w| WindowBurn {
                    window: w.to_string(),
                    burn_rate: self.burn(*w).map(BurnRate::value),
                })
                .collect(),
            firing,
        }
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
