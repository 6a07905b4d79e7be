//! Several agents' runs as one.
//!
//! What adds: every counter, and the histograms (HDR histograms add bucket
//! by bucket, so merged percentiles, min and max are exact). The scenario's
//! target rates and connections add too (N agents at 1,000/s are a test at
//! N x 1,000/s). The window is the agents' union: the earliest start to
//! the latest end, so `http_reqs` `rate` is the whole fleet's throughput.
//!
//! What cannot add exactly is the per-second series: a file keeps each
//! second's percentiles, not its histogram. Points of the same second
//! (agents started together with `--start-at`) add their counts and keep
//! the largest of each percentile: an upper bound for the charts, never a
//! flattering mean. The summary's figures never come from the series.
//!
//! Refused: scenarios of one name run with different executors, and files
//! judged by different thresholds (unless the caller brings its own).

use super::HistRun;
use crate::plan::{Plan, ScenarioPlan, SetupStep};
use crate::results::{PhaseResults, Point, Results, ScenarioResults, Series};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give at least one file")]
    Empty,
    #[error("{}: scenario `{scenario}` ran as {theirs}, but in {} as {ours}", file.display(), first.display())]
    Executor {
        file: PathBuf,
        first: PathBuf,
        scenario: String,
        ours: String,
        theirs: String,
    },
    #[error("{}: its thresholds differ from those of {}; pass --thresholds FILE.yaml to judge the merge by one set", file.display(), first.display())]
    Thresholds { file: PathBuf, first: PathBuf },
}

/// Merges `runs` (each with the path it came from, for errors). With
/// `judge_thresholds_elsewhere`, the runs' own thresholds need not agree
/// (the caller replaces them).
pub fn merge(
    runs: Vec<(PathBuf, HistRun)>,
    judge_thresholds_elsewhere: bool,
) -> Result<HistRun, MergeError> {
    let mut runs = runs.into_iter();
    let (first_path, mut merged) = runs.next().ok_or(MergeError::Empty)?;
    for (path, run) in runs {
        if !judge_thresholds_elsewhere && !same_thresholds(&merged.plan, &run.plan) {
            return Err(MergeError::Thresholds {
                file: path,
                first: first_path,
            });
        }
        add_run(&mut merged, run, &path, &first_path)?;
    }
    Ok(merged)
}

fn same_thresholds(a: &Plan, b: &Plan) -> bool {
    let keys = |p: &Plan| -> Vec<(String, String)> {
        p.thresholds
            .iter()
            .map(|t| (t.key.clone(), t.expression.clone()))
            .collect()
    };
    keys(a) == keys(b)
}

fn add_run(into: &mut HistRun, run: HistRun, path: &Path, first: &Path) -> Result<(), MergeError> {
    for scenario in &run.results.scenarios {
        if let Some(ours) = into
            .results
            .scenarios
            .iter()
            .find(|s| s.name == scenario.name)
        {
            if ours.executor != scenario.executor {
                return Err(MergeError::Executor {
                    file: path.to_path_buf(),
                    first: first.to_path_buf(),
                    scenario: scenario.name.clone(),
                    ours: ours.executor.to_string(),
                    theirs: scenario.executor.to_string(),
                });
            }
        }
    }
    let HistRun {
        plan,
        results,
        agents,
    } = run;
    into.agents += agents;
    add_window(&mut into.results, &results);
    if into.results.aborted_by.is_none() {
        into.results.aborted_by = results.aborted_by;
    }
    if into.plan.dau.is_none() {
        into.plan.dau = plan.dau;
    }
    add_phases(&mut into.results.setup, results.setup);
    add_phases(&mut into.results.teardown, results.teardown);
    add_steps(&mut into.plan.setup, plan.setup);
    add_steps(&mut into.plan.teardown, plan.teardown);
    for scenario in results.scenarios {
        add_scenario(&mut into.results.scenarios, scenario);
    }
    add_scenario_plans(&mut into.plan.scenarios, plan.scenarios);
    for series in results.series {
        add_series(&mut into.results.series, series);
    }
    Ok(())
}

/// The union of the two load phases, on the wall clock.
fn add_window(into: &mut Results, other: &Results) {
    let end = |r: &Results| r.started_unix_ms as u128 * 1_000 + r.elapsed.as_micros();
    let start_us = into.started_unix_ms.min(other.started_unix_ms) as u128 * 1_000;
    let end_us = end(into).max(end(other));
    into.started_unix_ms = into.started_unix_ms.min(other.started_unix_ms);
    into.elapsed = Duration::from_micros(u64::try_from(end_us - start_us).unwrap_or(u64::MAX));
}

fn add_phases(into: &mut Vec<PhaseResults>, phases: Vec<PhaseResults>) {
    for phase in phases {
        match into
            .iter_mut()
            .find(|p| p.phase == phase.phase && p.name == phase.name)
        {
            Some(ours) => {
                ours.stats.merge(&phase.stats);
                for (label, n) in phase.captured {
                    *ours.captured.entry(label).or_default() += n;
                }
            }
            None => into.push(phase),
        }
    }
}

fn add_steps(into: &mut Vec<SetupStep>, steps: Vec<SetupStep>) {
    for step in steps {
        if !into.iter().any(|s| s.request.name == step.request.name) {
            into.push(step);
        }
    }
}

fn add_scenario(into: &mut Vec<ScenarioResults>, scenario: ScenarioResults) {
    let Some(ours) = into.iter_mut().find(|s| s.name == scenario.name) else {
        into.push(scenario);
        return;
    };
    ours.target_rate = match (ours.target_rate, scenario.target_rate) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    ours.connections += scenario.connections;
    ours.start = ours.start.min(scenario.start);
    ours.duration = ours.duration.max(scenario.duration);
    ours.scheduled += scenario.scheduled;
    ours.dropped += scenario.dropped;
    for (name, stats) in scenario.requests {
        match ours.requests.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => existing.merge(&stats),
            None => ours.requests.push((name, stats)),
        }
    }
}

fn add_scenario_plans(into: &mut Vec<ScenarioPlan>, plans: Vec<ScenarioPlan>) {
    for plan in plans {
        match into.iter_mut().find(|p| p.name == plan.name) {
            Some(ours) => {
                for request in plan.requests {
                    if !ours.requests.iter().any(|r| r.name == request.name) {
                        ours.requests.push(request);
                    }
                }
            }
            None => into.push(plan),
        }
    }
}

/// Same-second points side by side: counts add, percentiles keep the max.
fn add_series(into: &mut Vec<Series>, series: Series) {
    let Some(ours) = into
        .iter_mut()
        .find(|s| s.scenario == series.scenario && s.name == series.name)
    else {
        into.push(series);
        return;
    };
    let at = |p: &Point| (p.t * 1_000.0).round() as i64;
    let mut index: std::collections::HashMap<i64, usize> = ours
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (at(p), i))
        .collect();
    for point in series.points {
        match index.get(&at(&point)).and_then(|&i| ours.points.get_mut(i)) {
            Some(existing) => {
                existing.width = existing.width.max(point.width);
                existing.sent += point.sent;
                existing.completed += point.completed;
                existing.errors += point.errors;
                existing.check_failures += point.check_failures;
                existing.p50_us = existing.p50_us.max(point.p50_us);
                existing.p90_us = existing.p90_us.max(point.p90_us);
                existing.p99_us = existing.p99_us.max(point.p99_us);
                existing.max_us = existing.max_us.max(point.max_us);
                existing.lateness_p99_us = existing.lateness_p99_us.max(point.lateness_p99_us);
            }
            None => {
                index.insert(at(&point), ours.points.len());
                ours.points.push(point);
            }
        }
    }
    ours.points.sort_by(|a, b| a.t.total_cmp(&b.t));
}
