//! The run reduced to the numbers people read: one [`RunDigest`] built
//! once from the plan, the results and the verdicts, then printed as the
//! summary table, serialized as `--json` and laid out in the HTML report.
//! Building it once is what keeps the three from disagreeing (a rate or an
//! error count computed twice drifts).
//!
//! Field names are the JSON's, so they are stable: snake_case, latencies as
//! integer microseconds (`*_us`), rates per second (`*_per_s`), spans in
//! seconds (`*_s`). docs/tools/load-output.md documents each one.

use super::units;
use crate::plan::{Executor, Plan, RequestPlan};
use crate::results::{PhaseResults, Results, ScenarioResults, Series, Stats};
use crate::threshold::Verdict;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// Fewer arrivals left unsent than this fraction of the schedule cannot
/// move the p99.9 by more than one rank, so the rate counts as held.
pub const UNSENT_TOLERANCE: f64 = 0.001;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunDigest {
    pub started_unix_ms: u64,
    /// RFC 3339, UTC.
    pub started: Option<String>,
    pub elapsed_s: f64,
    /// Every threshold passed (the exit code is 0 rather than 99).
    pub thresholds_passed: bool,
    /// The threshold (`key: expression`) that stopped the run early.
    pub aborted_by: Option<String>,
    /// The DAU helper's arithmetic, when the file used it.
    pub dau: Option<String>,
    pub setup: Vec<PhaseDigest>,
    pub scenarios: Vec<ScenarioDigest>,
    pub teardown: Vec<PhaseDigest>,
    pub thresholds: Vec<ThresholdDigest>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioDigest {
    pub name: String,
    pub executor: String,
    /// `open` (arrivals on a schedule) or `closed` (back to back).
    pub model: &'static str,
    pub target_rate_per_s: Option<f64>,
    pub connections: usize,
    pub start_s: f64,
    pub duration_s: f64,
    /// Arrivals the schedule asked for (closed model: requests sent).
    pub scheduled: u64,
    /// Scheduled arrivals never sent (every connection busy, or aborted).
    pub dropped: u64,
    /// Requests not sent because a pool they pick from was empty.
    pub skipped_empty_pool: u64,
    /// False when more than 0.1% of the schedule was never sent: the
    /// latencies then leave out what users would have seen worst.
    pub rate_held: bool,
    /// Every request name together.
    pub total: RequestDigest,
    /// Per request name, in the scenario's order.
    pub requests: Vec<RequestDigest>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestDigest {
    pub name: String,
    pub sent: u64,
    /// Answered or failed, one way or the other.
    pub completed: u64,
    pub ok: u64,
    /// `timeouts + transport_errors + unexpected_status`.
    pub errors: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub unexpected_status: u64,
    /// Every status seen, as `"200": count`.
    pub status_counts: BTreeMap<String, u64>,
    /// The statuses that counted as errors (outside `expect_status`).
    pub unexpected_statuses: BTreeMap<String, u64>,
    pub skipped_empty_pool: u64,
    pub bytes_received: u64,
    /// Completed per second of the measured window; `null` in setup and
    /// teardown, which have no window.
    pub rate_per_s: Option<f64>,
    /// `null` when nothing was measured.
    pub latency: Option<Percentiles>,
    /// The generator's own delay in sending (already inside `latency`).
    pub lateness: Option<Percentiles>,
    pub checks: Vec<CheckDigest>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckDigest {
    pub name: String,
    pub passed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseDigest {
    /// `setup` or `teardown`.
    pub phase: String,
    #[serde(flatten)]
    pub request: RequestDigest,
    /// Per capture label (`slugs <- json /slug`): values kept.
    pub captured: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdDigest {
    pub key: String,
    pub expression: String,
    /// The metric's value, formatted in the expression's unit; `null`
    /// when nothing matched the key.
    pub observed: Option<String>,
    pub passed: bool,
    pub abort_on_fail: bool,
}

/// One per-second series, for `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesDigest {
    pub scenario: String,
    pub name: String,
    pub points: Vec<PointDigest>,
}

/// One second of one name, as `--json` prints it.
pub type PointDigest = crate::results::Point;

impl Percentiles {
    /// `None` for an empty histogram, whose percentiles would read as 0.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        Some(Self {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean().round() as u64,
        })
    }
}

impl RequestDigest {
    /// `plan` says which statuses were expected; without it every status
    /// outside 200-399 is listed as unexpected.
    pub fn of(
        name: &str,
        stats: &Stats,
        plan: Option<&RequestPlan>,
        window_s: Option<f64>,
    ) -> Self {
        let expected = |code: u16| match plan {
            Some(request) => request.expect_status.contains(code),
            None => (200..=399).contains(&code),
        };
        let completed = stats.completed();
        Self {
            name: name.to_string(),
            sent: stats.sent,
            completed,
            ok: stats.ok,
            errors: stats.errors(),
            timeouts: stats.timeouts,
            transport_errors: stats.transport_errors,
            unexpected_status: stats.unexpected_status,
            status_counts: stats
                .status_counts
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            unexpected_statuses: stats
                .status_counts
                .iter()
                .filter(|(code, _)| !expected(**code))
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            skipped_empty_pool: stats.skipped_empty_pool,
            bytes_received: stats.bytes_received,
            rate_per_s: window_s.map(|secs| {
                if secs > 0.0 {
                    completed as f64 / secs
                } else {
                    0.0
                }
            }),
            latency: Percentiles::of(&stats.latency),
            lateness: Percentiles::of(&stats.lateness),
            checks: stats
                .checks
                .iter()
                .map(|(name, (passed, failed))| CheckDigest {
                    name: name.clone(),
                    passed: *passed,
                    failed: *failed,
                })
                .collect(),
        }
    }
}

impl ScenarioDigest {
    pub fn of(scenario: &ScenarioResults, plan: &Plan) -> Self {
        let scenario_plan = plan.scenarios.iter().find(|s| s.name == scenario.name);
        let request_plan =
            |name: &str| scenario_plan.and_then(|s| s.requests.iter().find(|r| r.name == name));
        let open = match scenario_plan {
            Some(s) => !matches!(s.executor, Executor::ConstantConnections { .. }),
            None => scenario.target_rate.is_some(),
        };
        let window_s = scenario.duration.as_secs_f64();
        let total = scenario.total();
        let requests: Vec<RequestDigest> = scenario
            .requests
            .iter()
            .map(|(name, stats)| RequestDigest::of(name, stats, request_plan(name), Some(window_s)))
            .collect();
        let mut total = RequestDigest::of("all", &total, None, Some(window_s));
        // The total's unexpected statuses are the sum of each name's, each
        // judged by its own `expect_status`.
        total.unexpected_statuses = BTreeMap::new();
        for request in &requests {
            for (code, n) in &request.unexpected_statuses {
                *total.unexpected_statuses.entry(code.clone()).or_default() += n;
            }
        }
        Self {
            name: scenario.name.clone(),
            executor: scenario.executor.to_string(),
            model: if open { "open" } else { "closed" },
            target_rate_per_s: scenario.target_rate,
            connections: scenario.connections,
            start_s: scenario.start.as_secs_f64(),
            duration_s: window_s,
            scheduled: scenario.scheduled,
            dropped: scenario.dropped,
            skipped_empty_pool: total.skipped_empty_pool,
            rate_held: !open
                || scenario.dropped as f64 <= UNSENT_TOLERANCE * scenario.scheduled as f64,
            total,
            requests,
        }
    }
}

impl PhaseDigest {
    pub fn of(phase: &PhaseResults, plan: &Plan) -> Self {
        let steps = if phase.phase == "teardown" {
            &plan.teardown
        } else {
            &plan.setup
        };
        let request_plan = steps
            .iter()
            .map(|step| &step.request)
            .find(|r| r.name == phase.name);
        Self {
            phase: phase.phase.to_string(),
            request: RequestDigest::of(&phase.name, &phase.stats, request_plan, None),
            captured: phase.captured.clone(),
        }
    }
}

impl RunDigest {
    pub fn of(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> Self {
        let abort_on_fail = |verdict: &Verdict| {
            plan.thresholds.iter().any(|t| {
                t.key == verdict.key && t.expression == verdict.expression && t.abort_on_fail
            })
        };
        Self {
            started_unix_ms: results.started_unix_ms,
            started: units::rfc3339(results.started_unix_ms),
            elapsed_s: results.elapsed.as_secs_f64(),
            thresholds_passed: verdicts.iter().all(|v| v.passed),
            aborted_by: results.aborted_by.clone(),
            dau: plan.dau.clone(),
            setup: results
                .setup
                .iter()
                .map(|p| PhaseDigest::of(p, plan))
                .collect(),
            scenarios: results
                .scenarios
                .iter()
                .map(|s| ScenarioDigest::of(s, plan))
                .collect(),
            teardown: results
                .teardown
                .iter()
                .map(|p| PhaseDigest::of(p, plan))
                .collect(),
            thresholds: verdicts
                .iter()
                .map(|v| ThresholdDigest {
                    key: v.key.clone(),
                    expression: v.expression.clone(),
                    observed: v.observed.clone(),
                    passed: v.passed,
                    abort_on_fail: abort_on_fail(v),
                })
                .collect(),
        }
    }
}

impl SeriesDigest {
    pub fn of(series: &Series) -> Self {
        Self {
            scenario: series.scenario.clone(),
            name: series.name.clone(),
            points: series.points.to_vec(),
        }
    }
}
