//! The status report: per public component, its current state (from the
//! latest probe results) and 90 daily uptime figures (from the store),
//! plus the incident notes. The HTML page and `GET /api/v1/status` are two
//! renderings of this one value.

use crate::incident::Incident;
use crate::runner::Latest;
use crate::store::{date_of, day_of, DayTotals, RETENTION_DAYS};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A component's state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ComponentState)]
pub enum State {
    /// Every probe's last check passed, none warned.
    Operational,
    /// Some probes failed or warned (a certificate expiring soon).
    Degraded,
    /// Every probe's last check failed.
    Down,
    /// No probe has reported yet.
    Unknown,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            Self::Operational => "Operational",
            Self::Degraded => "Degraded",
            Self::Down => "Down",
            Self::Unknown => "No data yet",
        }
    }
}

/// One day's bar.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = UptimeDay)]
pub struct Day {
    pub date: NaiveDate,
    pub checks: i64,
    pub successes: i64,
    /// successes / checks; none without checks.
    pub uptime: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = StatusComponent)]
pub struct Component {
    pub name: String,
    pub state: State,
    /// Over the days with checks.
    pub uptime_90d: Option<f64>,
    /// Exactly [`RETENTION_DAYS`], oldest first, today last.
    pub days: Vec<Day>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = StatusPageReport)]
pub struct Report {
    pub title: String,
    pub generated_at: DateTime<Utc>,
    /// The worst component state.
    pub state: State,
    pub components: Vec<Component>,
    /// Newest first.
    pub incidents: Vec<Incident>,
}

/// Builds the report at `now`. `probes` are (probe, component) in config
/// order: components appear in the order their first probe does.
pub fn build(
    title: &str,
    now: DateTime<Utc>,
    probes: &[(String, String)],
    latest: &BTreeMap<String, Latest>,
    totals: &[DayTotals],
    incidents: Vec<Incident>,
) -> Report {
    let mut order: Vec<&str> = Vec::new();
    for (_, component) in probes {
        if !order.contains(&component.as_str()) {
            order.push(component);
        }
    }
    let today = day_of(now);
    let first = today - (RETENTION_DAYS - 1);
    let components: Vec<Component> = order
        .iter()
        .map(|name| {
            let mine: Vec<&str> = probes
                .iter()
                .filter(|(_, c)| c == name)
                .map(|(p, _)| p.as_str())
                .collect();
            let mut per_day: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for t in totals.iter().filter(|t| mine.contains(&t.probe.as_str())) {
                let entry = per_day.entry(t.day).or_default();
                entry.0 += t.checks;
                entry.1 += t.successes;
            }
            let days: Vec<Day> = (first..=today)
                .map(|day| {
                    let (checks, successes) = per_day.get(&day).copied().unwrap_or_default();
                    Day {
                        date: date_of(day),
                        checks,
                        successes,
                        uptime: ratio(successes, checks),
                    }
                })
                .collect();
            let checks: i64 = days.iter().map(|d| d.checks).sum();
            let successes: i64 = days.iter().map(|d| d.successes).sum();
            Component {
                name: name.to_string(),
                state: state_of(mine.iter().filter_map(|p| latest.get(*p))),
                uptime_90d: ratio(successes, checks),
                days,
            }
        })
        .collect();
    let state = components
        .iter()
        .map(|c| c.state)
        .max_by_key(|s| severity(*s))
        .unwrap_or(State::Unknown);
    Report {
        title: title.to_string(),
        generated_at: now,
        state,
        components,
        incidents,
    }
}

fn ratio(successes: i64, checks: i64) -> Option<f64> {
    (checks > 0).then(|| successes as f64 / checks as f64)
}

fn severity(state: State) -> u8 {
    match state {
        State::Operational => 0,
        State::Unknown => 1,
        State::Degraded => 2,
        State::Down => 3,
    }
}

fn state_of<'a>(results: impl Iterator<Item = &'a Latest>) -> State {
    let (mut total, mut failed, mut warned) = (0, 0, 0);
    for latest in results {
        total += 1;
        if !latest.outcome.success {
            failed += 1;
        } else if latest.outcome.warning {
            warned += 1;
        }
    }
    match (total, failed, warned) {
        (0, _, _) => State::Unknown,
        (t, f, _) if f == t => State::Down,
        (_, 0, 0) => State::Operational,
        _ => State::Degraded,
    }
}
