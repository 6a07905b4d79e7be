//! A run's histograms, losslessly, for merging runs of several machines.
//!
//! One generator box runs out before a cluster does, so a big test runs N
//! agents and merges what they measured. Percentiles do not average: the
//! p99 of three agents is not the mean of their p99s. So each agent writes
//! its HDR histograms themselves (`--out-hist FILE`), with every counter
//! the summary shows, and `reliable load merge` adds the histograms, which
//! is exact: the merged percentiles, counts, min and max are those of one
//! run that had recorded every sample.
//!
//! - `file`: the on-disk shape (versioned JSON, histograms in HdrHistogram's
//!   V2 + DEFLATE encoding, base64);
//! - `merge`: adding runs together;
//! - this module: [`HistRun`], a run as the reports read it (a plan
//!   skeleton and the results), to and from the file.

mod codec;
mod file;
mod merge;
mod skeleton;
#[cfg(test)]
mod tests;

pub use file::{HistFile, FORMAT, VERSION};
pub use merge::{merge, MergeError};

use crate::plan::{Plan, RequestPlan, SetupStep};
use crate::results::{PhaseResults, Results, ScenarioResults, Series};
use crate::threshold::Threshold;
use codec::{executor_kind, micros, ranges, stats, stats_entry, status_set, threshold_entry};
use file::{PhaseEntry, RequestEntry, ScenarioEntry, SeriesEntry};
use skeleton::{skeleton_request, skeleton_scenario, skeleton_step};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run (or a merge of runs) as the summary, JSON and HTML reports read
/// it. `plan` is a skeleton: the scenarios' executors, each request's
/// expected statuses, the thresholds and the DAU text, which is all the
/// reports take from a plan.
#[derive(Debug, Clone)]
pub struct HistRun {
    pub plan: Plan,
    pub results: Results,
    /// How many runs this is the merge of.
    pub agents: u64,
}

/// What is wrong with a file's content.
#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("not JSON ({0}); is it a file written by `reliable load --out-hist`?")]
    NotJson(serde_json::Error),
    #[error("not a `reliable load --out-hist` file (its `format` is {0}, expected \"{FORMAT}\")")]
    Format(String),
    #[error("format version {found}, but this reliable reads version {VERSION} only; merge files written by the same version of reliable")]
    Version { found: String },
    #[error("a field is missing or malformed: {0}")]
    Shape(serde_json::Error),
    #[error("{at}: the histogram does not decode: {message}")]
    Histogram { at: String, message: String },
    #[error("scenario `{scenario}`: unknown executor `{executor}`")]
    Executor { scenario: String, executor: String },
    #[error("threshold `{key}: {expression}` does not parse: {message}")]
    Threshold {
        key: String,
        expression: String,
        message: String,
    },
}

/// A file that could not be read or written, with its path.
#[derive(Debug, thiserror::Error)]
pub enum HistFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Content { path: PathBuf, source: HistError },
}

impl HistRun {
    /// The run `results` of `plan`, ready to write.
    pub fn of(plan: &Plan, results: &Results) -> Self {
        let expect = |steps: &[SetupStep], name: &str| {
            steps
                .iter()
                .find(|s| s.request.name == name)
                .map(|s| s.request.expect_status.clone())
                .unwrap_or_default()
        };
        let phase = |phases: &[PhaseResults], steps: &[SetupStep]| -> Vec<SetupStep> {
            phases
                .iter()
                .map(|p| skeleton_step(&p.name, expect(steps, &p.name)))
                .collect()
        };
        let scenarios = results
            .scenarios
            .iter()
            .map(|s| {
                let planned = plan.scenarios.iter().find(|p| p.name == s.name);
                let expected = |name: &str| {
                    planned
                        .and_then(|p| p.requests.iter().find(|r| r.name == name))
                        .map(|r| r.expect_status.clone())
                        .unwrap_or_default()
                };
                let requests = s
                    .requests
                    .iter()
                    .map(|(name, _)| skeleton_request(name, expected(name)))
                    .collect();
                skeleton_scenario(s, requests)
            })
            .collect();
        Self {
            plan: Plan {
                pools: Vec::new(),
                setup: phase(&results.setup, &plan.setup),
                scenarios,
                teardown: phase(&results.teardown, &plan.teardown),
                thresholds: plan.thresholds.clone(),
                dau: plan.dau.clone(),
            },
            results: results.clone(),
            agents: 1,
        }
    }

    /// The file's text: indented JSON, so that no line is long (a
    /// container runtime splits log lines past 16 KiB, and `--out-hist -`
    /// goes through the log).
    pub fn encode(&self) -> String {
        // Plain structs of strings and numbers always serialize.
        serde_json::to_string_pretty(&self.to_file()).unwrap_or_default()
    }

    /// Reads a file's text; the error says what is wrong with it.
    pub fn decode(text: &str) -> Result<Self, HistError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(HistError::NotJson)?;
        match value.get("format") {
            Some(serde_json::Value::String(f)) if f == FORMAT => {}
            Some(other) => return Err(HistError::Format(other.to_string())),
            None => return Err(HistError::Format("missing".to_string())),
        }
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
            Some(v) => {
                return Err(HistError::Version {
                    found: v.to_string(),
                })
            }
            None => {
                return Err(HistError::Version {
                    found: "missing".to_string(),
                })
            }
        }
        let file: HistFile = serde_json::from_value(value).map_err(HistError::Shape)?;
        Self::from_file(file)
    }

    /// Reads `path`; errors name it.
    pub fn read(path: &Path) -> Result<Self, HistFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| HistFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&text).map_err(|source| HistFileError::Content {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `path` (replacing it), or stdout when `path` is `-`.
    pub fn write(&self, path: &Path) -> Result<(), HistFileError> {
        let mut text = self.encode();
        text.push('\n');
        let written = if path.as_os_str() == "-" {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        } else {
            std::fs::write(path, text)
        };
        written.map_err(|source| HistFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn to_file(&self) -> HistFile {
        let expect_of = |requests: &[RequestPlan], name: &str| {
            ranges(
                &requests
                    .iter()
                    .find(|r| r.name == name)
                    .map(|r| r.expect_status.clone())
                    .unwrap_or_default(),
            )
        };
        let phase = |phases: &[PhaseResults], steps: &[SetupStep]| -> Vec<PhaseEntry> {
            let requests: Vec<RequestPlan> = steps.iter().map(|s| s.request.clone()).collect();
            phases
                .iter()
                .map(|p| PhaseEntry {
                    phase: p.phase.to_string(),
                    name: p.name.clone(),
                    expect_status: expect_of(&requests, &p.name),
                    stats: stats_entry(&p.stats),
                    captured: p.captured.clone(),
                })
                .collect()
        };
        let results = &self.results;
        HistFile {
            format: FORMAT.to_string(),
            version: VERSION,
            started_unix_ms: results.started_unix_ms,
            elapsed_us: micros(results.elapsed),
            aborted_by: results.aborted_by.clone(),
            agents: self.agents,
            dau: self.plan.dau.clone(),
            thresholds: self.plan.thresholds.iter().map(threshold_entry).collect(),
            setup: phase(&results.setup, &self.plan.setup),
            scenarios: results
                .scenarios
                .iter()
                .map(|s| {
                    let planned = self.plan.scenarios.iter().find(|p| p.name == s.name);
                    let requests = planned.map(|p| p.requests.as_slice()).unwrap_or_default();
                    ScenarioEntry {
                        name: s.name.clone(),
                        executor: s.executor.to_string(),
                        target_rate_per_s: s.target_rate,
                        connections: s.connections as u64,
                        start_us: micros(s.start),
                        duration_us: micros(s.duration),
                        scheduled: s.scheduled,
                        dropped: s.dropped,
                        requests: s
                            .requests
                            .iter()
                            .map(|(name, stats)| RequestEntry {
                                name: name.clone(),
                                expect_status: expect_of(requests, name),
                                stats: stats_entry(stats),
                            })
                            .collect(),
                    }
                })
                .collect(),
            teardown: phase(&results.teardown, &self.plan.teardown),
            series: results
                .series
                .iter()
                .map(|s| SeriesEntry {
                    scenario: s.scenario.clone(),
                    name: s.name.clone(),
                    points: s.points.clone(),
                })
                .collect(),
        }
    }

    fn from_file(file: HistFile) -> Result<Self, HistError> {
        let mut thresholds = Vec::new();
        for t in &file.thresholds {
            let delay = Duration::from_micros(t.delay_abort_eval_us);
            let parsed =
                Threshold::parse(&t.key, &t.expression, t.abort_on_fail, delay).map_err(|e| {
                    HistError::Threshold {
                        key: t.key.clone(),
                        expression: t.expression.clone(),
                        message: e.0,
                    }
                })?;
            thresholds.push(parsed);
        }
        let (setup_steps, setup) = phases(&file.setup)?;
        let (teardown_steps, teardown) = phases(&file.teardown)?;
        let mut scenario_plans = Vec::new();
        let mut scenarios = Vec::new();
        for s in &file.scenarios {
            let executor = executor_kind(&s.executor).ok_or_else(|| HistError::Executor {
                scenario: s.name.clone(),
                executor: s.executor.clone(),
            })?;
            let mut requests = Vec::new();
            let mut request_plans = Vec::new();
            for r in &s.requests {
                let at = format!("scenario `{}`, request `{}`", s.name, r.name);
                requests.push((r.name.clone(), stats(&r.stats, &at)?));
                request_plans.push(skeleton_request(&r.name, status_set(&r.expect_status)));
            }
            let results = ScenarioResults {
                name: s.name.clone(),
                executor,
                target_rate: s.target_rate_per_s,
                connections: usize::try_from(s.connections).unwrap_or(usize::MAX),
                start: Duration::from_micros(s.start_us),
                duration: Duration::from_micros(s.duration_us),
                scheduled: s.scheduled,
                dropped: s.dropped,
                requests,
            };
            scenario_plans.push(skeleton_scenario(&results, request_plans));
            scenarios.push(results);
        }
        let series = file
            .series
            .iter()
            .map(|s| Series {
                scenario: s.scenario.clone(),
                name: s.name.clone(),
                points: s.points.clone(),
            })
            .collect();
        Ok(Self {
            plan: Plan {
                pools: Vec::new(),
                setup: setup_steps,
                scenarios: scenario_plans,
                teardown: teardown_steps,
                thresholds,
                dau: file.dau,
            },
            results: Results {
                setup,
                scenarios,
                teardown,
                series,
                started_unix_ms: file.started_unix_ms,
                elapsed: Duration::from_micros(file.elapsed_us),
                aborted_by: file.aborted_by,
            },
            agents: file.agents,
        })
    }
}

fn phases(entries: &[PhaseEntry]) -> Result<(Vec<SetupStep>, Vec<PhaseResults>), HistError> {
    let mut steps = Vec::new();
    let mut results = Vec::new();
    for p in entries {
        let phase = match p.phase.as_str() {
            "setup" => "setup",
            "teardown" => "teardown",
            other => {
                return Err(HistError::Histogram {
                    at: format!("step `{}`", p.name),
                    message: format!("unknown phase `{other}`"),
                })
            }
        };
        let at = format!("{phase} step `{}`", p.name);
        steps.push(skeleton_step(&p.name, status_set(&p.expect_status)));
        results.push(PhaseResults {
            phase,
            name: p.name.clone(),
            stats: stats(&p.stats, &at)?,
            captured: p.captured.clone(),
        });
    }
    Ok((steps, results))
}
