//! What the drill prints and records: one row per scenario with its goal
//! and verdict, the window arithmetic the figures should match, and the
//! change event for the console's timeline.

use super::run::{Measured, Row};
use super::{OutageDrill, Scenario, TICK};
use chrono::{DateTime, Utc};
use kit::changes::{ChangeEvent, ChangeKind};
use slo::burn::{self, Severity};
use slo::Slo;

/// The write-ups' targets: detect within 5 minutes, recover within 15.
const MTTD_TARGET_S: f64 = 300.0;
const MTTR_TARGET_S: f64 = 900.0;
/// The goal for a full outage on a 99.9 % SLO.
const FULL_OUTAGE_MTTD_S: f64 = 60.0;
/// How far past the arithmetic's time (beyond one tick) a partial outage
/// may page: the fault switch spreads failures in whole requests, so a
/// window holds its share to within a request or two.
const ROUNDING_TOLERANCE: f64 = 0.01;

/// `0.1`, `99.9`, `1.44`: a percentage without float noise.
fn pct(ratio: f64) -> String {
    let text = format!("{:.3}", ratio * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Seconds of a fault failing `bad_share` of the SLO's events until the
/// page alert fires, with at least the longest page window of history:
/// for each page pair, both windows' error ratios must pass `factor x
/// budget`; the long one gets there last, after `threshold x long /
/// share`. `None`: the share is below every pair's threshold.
pub fn expected_page_seconds(slo: &Slo, bad_share: f64) -> Option<f64> {
    let budget = slo.objective.error_budget();
    let page = slo.alerting.page.as_ref()?;
    let hold = page.for_.map_or(0.0, |w| w.as_secs() as f64);
    burn::pairs(Severity::Page)
        .filter_map(|p| {
            let threshold = p.factor(slo.period).value() * budget;
            (bad_share > threshold).then(|| {
                let long = threshold * p.long.as_secs() as f64 / bad_share;
                let short = threshold * p.short.as_secs() as f64 / bad_share;
                long.max(short) + hold
            })
        })
        .min_by(f64::total_cmp)
}

pub(super) fn row(
    scenario: Scenario,
    slo: &Slo,
    m: &Measured,
    sent: u64,
    failed: u64,
    tick_requests: u32,
) -> Row {
    let secs = |a: Option<i64>, from: i64| a.map(|t| (t - from) as f64 / 1000.0);
    let mttd_page = secs(m.fired[0], m.fault_at);
    let mttr_page = secs(m.resolved[0], m.removed_at);
    let expected = scenario
        .bad_share()
        .and_then(|e| expected_page_seconds(slo, e));
    let objective = slo.objective.ratio();
    let full = scenario.bad_share() == Some(1.0);
    let tick = TICK.as_secs_f64();
    let (goal, mttd_limit) = if full && objective >= 0.999 {
        ("page < 1 min".to_string(), Some(FULL_OUTAGE_MTTD_S))
    } else if full || expected.is_none() && scenario.bad_share().is_none() {
        ("page < 5 min".to_string(), Some(MTTD_TARGET_S))
    } else if let Some(x) = expected {
        (
            format!("page by {} (+1 tick)", human(x)),
            Some(x * (1.0 + ROUNDING_TOLERANCE) + tick),
        )
    } else {
        ("no page (below every page burn rate)".to_string(), None)
    };
    let goal = format!("{goal}, resolve < 15 min");
    let mut misses = Vec::new();
    match (mttd_limit, mttd_page) {
        (Some(limit), Some(t)) if t >= limit => misses.push(format!("paged after {}", human(t))),
        (Some(_), None) => misses.push("never paged".to_string()),
        (None, Some(t)) => misses.push(format!("paged after {} unexpectedly", human(t))),
        _ => {}
    }
    if mttd_page.is_some() {
        match mttr_page {
            Some(t) if t >= MTTR_TARGET_S => misses.push(format!("resolved after {}", human(t))),
            None => misses.push("page never resolved".to_string()),
            _ => {}
        }
    }
    if m.noisy {
        misses.push("alert fired in steady state".to_string());
    }
    let period_events = m.events_per_tick * slo.period.as_secs() as f64 / tick;
    let budget_events = period_events * slo.objective.error_budget();
    Row {
        scenario: scenario.name(),
        fault: scenario.fault_label(),
        slo: slo.id(),
        objective,
        mttd_page_seconds: mttd_page,
        mttd_ticket_seconds: secs(m.fired[1], m.fault_at),
        ticket_exact: false,
        mttr_page_seconds: mttr_page,
        mttr_ticket_seconds: secs(m.resolved[1], m.removed_at),
        expected_page_seconds: expected,
        fault_seconds: (m.removed_at - m.fault_at) as f64 / 1000.0,
        budget_consumed: if budget_events > 0.0 {
            m.bad_events / budget_events
        } else {
            0.0
        },
        requests_sent: sent,
        requests_failed: failed,
        simulated_rps: f64::from(tick_requests) / tick,
        goal,
        goal_met: misses.is_empty(),
        verdict: if misses.is_empty() {
            "met".to_string()
        } else {
            format!("MISSED: {}", misses.join("; "))
        },
    }
}

/// `55 s`, `8.7 min`, `1.2 h`.
fn human(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn maybe(seconds: Option<f64>, none: &str) -> String {
    seconds.map_or_else(|| none.to_string(), human)
}

/// The drill's table, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | fault | SLO | MTTD page | MTTD ticket | MTTR | budget consumed | requests sent | requests failed | goal | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} ({}%) | {} | {} | {} | {:.2}% | {} | {} | {} | {} |\n",
            r.scenario,
            r.fault,
            r.slo,
            pct(r.objective),
            maybe(r.mttd_page_seconds, "never"),
            maybe(r.mttd_ticket_seconds, "never") + if r.ticket_exact { "" } else { "*" },
            maybe(r.mttr_page_seconds, "-"),
            r.budget_consumed * 100.0,
            r.requests_sent,
            r.requests_failed,
            r.goal,
            r.verdict,
        ));
    }
    out
}

/// The window arithmetic behind the expected figures, for the SLOs the
/// scenarios measure.
pub fn arithmetic(drill: &OutageDrill, slos: &[Slo]) -> String {
    let mut out = String::from("Window arithmetic (multiwindow, multi-burn-rate; SRE Workbook):\n");
    let mut seen = Vec::new();
    for scenario in &drill.scenarios {
        let Some(slo) = slos.iter().find(|s| s.id() == scenario.fault.slo_id()) else {
            continue;
        };
        if !seen.contains(&slo.id()) {
            seen.push(slo.id());
            let budget = slo.objective.error_budget();
            out.push_str(&format!(
                "  {}: {}% over {} -> error budget {}% = {} of full outage\n",
                slo.id(),
                pct(slo.objective.ratio()),
                slo.period,
                pct(budget),
                human(budget * slo.period.as_secs() as f64),
            ));
            for p in burn::WINDOW_PAIRS {
                let factor = p.factor(slo.period).value();
                out.push_str(&format!(
                    "    {}: {} and {} error ratios above {} x {}% = {}%\n",
                    p.severity,
                    p.long,
                    p.short,
                    pct(factor / 100.0),
                    pct(budget),
                    pct(factor * budget)
                ));
            }
        }
        if let Some(share) = scenario.bad_share() {
            let budget = slo.objective.error_budget();
            let factor = burn::WINDOW_PAIRS[0].factor(slo.period).value();
            out.push_str(&format!(
                "  {}: {}% x 3600 s / {}% = {}",
                scenario.name(),
                pct(factor * budget),
                pct(share),
                maybe(
                    expected_page_seconds(slo, share),
                    "never (below every page threshold)"
                )
            ));
            out.push_str(" to page, plus up to one 10 s tick\n");
        }
    }
    out.push_str(&format!(
        "  faults start and end half-way through a tick ({} s after an evaluation); one starting right after an evaluation is seen up to {} s later\n",
        TICK.as_secs() / 2,
        TICK.as_secs() / 2,
    ));
    if drill.steady < std::time::Duration::from_secs(3 * 86_400) {
        out.push_str(&format!(
            "  * ticket: the 1d and 3d windows read only the {} of history the drill has, so ticket times are earlier than on a platform with days of history (--steady 3d for exact ones)\n",
            humantime::format_duration(drill.steady)
        ));
    }
    out
}

/// The drill as one event on the changes timeline, with the table's figures.
pub fn change_event(at: DateTime<Utc>, drill: &OutageDrill, rows: &[Row]) -> ChangeEvent {
    let figures: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}: page {}, resolved {}, budget {:.2}%, {} of {} failed, {}",
                r.scenario,
                maybe(r.mttd_page_seconds, "never"),
                maybe(r.mttr_page_seconds, "-"),
                r.budget_consumed * 100.0,
                r.requests_failed,
                r.requests_sent,
                r.verdict
            )
        })
        .collect();
    let modules: Vec<&str> = drill.modules.iter().map(|m| m.name()).collect();
    ChangeEvent::new(
        at,
        ChangeKind::Drill,
        "platform",
        "reliable drill outage",
        format!("outage drill ({})", modules.join(", ")),
        figures.join("; "),
    )
}
