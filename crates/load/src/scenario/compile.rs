//! The file as written to a checked [`Plan`]: defaults applied, start
//! offsets laid out, pools gathered, weights and names checked, thresholds
//! parsed. Executors and rates are in `executor`, requests in `request`.
//!
//! The plan's promise to the engine ("everything is already checked") is
//! kept here: each refusal names the line and the field path, so a person
//! fixes the file instead of reading a stack of engine errors.

use super::dau::Dau;
use super::executor::executor;
use super::file::{DetailedThreshold, ScenarioFile, ScenarioSection, SetupRequest, ThresholdEntry};
use super::request::{self, error, RequestContext, DEFAULT_TIMEOUT};
use super::template::Scope;
use super::{CompileOptions, ScenarioError};
use crate::plan::{Plan, PoolSpec, RequestPlan, ScenarioPlan, SetupStep, StatusSet};
use crate::threshold::Threshold;
use std::collections::BTreeMap;
use std::time::Duration;
use yamlspec::Located;

/// A pool's capacity when the file does not set one.
pub const DEFAULT_POOL_CAPACITY: usize = 100_000;
/// Keep-alive connections per scenario when nothing sets them.
pub const DEFAULT_CONNECTIONS: usize = 64;

pub fn compile(
    text: &str,
    options: &CompileOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ScenarioError> {
    let file: ScenarioFile = yamlspec::from_str(text).map_err(|e| ScenarioError {
        line: e.line,
        path: e.path,
        message: e.message,
    })?;

    let vars: BTreeMap<String, String> = file
        .vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.0.clone()))
        .collect();
    let dau = dau(&file)?;
    let (pools, filled_pools) = pools(&file)?;
    let target = options
        .target
        .as_ref()
        .map(|url| url.as_str().trim_end_matches('/').to_string());
    let scope = Scope {
        target: target.as_deref(),
        vars: &vars,
        env,
        pools: &pools,
    };

    let defaults = &file.defaults;
    let context = RequestContext {
        headers: request::headers(&defaults.headers, "defaults.headers", &scope)?
            .into_iter()
            .map(|(name, value, _)| (name, value))
            .collect(),
        timeout: match &defaults.timeout {
            Some(timeout) => request::duration(timeout, "defaults.timeout")?,
            None => DEFAULT_TIMEOUT,
        },
        expect_status: match &defaults.expect_status {
            Some(statuses) => request::status_set(statuses, "defaults.expect_status")?,
            None => StatusSet::default(),
        },
        filled_pools,
        scope,
    };
    let compiler = ScenarioCompiler {
        dau: dau.as_ref(),
        connections: match &defaults.connections {
            Some(c) => at_least_one(c, "defaults.connections")?,
            None => DEFAULT_CONNECTIONS,
        },
        http2: defaults.http2.unwrap_or(false),
        insecure_tls: defaults.insecure_tls.unwrap_or(false),
        context: &context,
    };

    let setup = phase(&file.setup, "setup", &compiler)?;
    let teardown = phase(&file.teardown, "teardown", &compiler)?;

    if file.scenarios.value.is_empty() {
        return Err(error(
            file.scenarios.line,
            "scenarios",
            "give at least one scenario",
        ));
    }
    let mut scenarios = Vec::new();
    let mut end_so_far = Duration::ZERO;
    for (name, section) in file.scenarios.value.iter() {
        let scenario = compiler.scenario(name, section, end_so_far)?;
        end_so_far = end_so_far.max(scenario.start + scenario.duration());
        scenarios.push(scenario);
    }

    let thresholds = thresholds(&file, &scenarios)?;
    Ok(Plan {
        pools,
        setup,
        scenarios,
        teardown,
        thresholds,
        dau: dau.map(|d| d.explain()),
    })
}

/// What every scenario is compiled against.
struct ScenarioCompiler<'a> {
    dau: Option<&'a Dau>,
    /// `defaults.connections`, `defaults.http2`, `defaults.insecure_tls`.
    connections: usize,
    http2: bool,
    insecure_tls: bool,
    context: &'a RequestContext<'a>,
}

fn at_least_one(value: &Located<usize>, path: &str) -> Result<usize, ScenarioError> {
    if value.value == 0 {
        return Err(error(value.line, path, "must be at least 1"));
    }
    Ok(value.value)
}

fn dau(file: &ScenarioFile) -> Result<Option<Dau>, ScenarioError> {
    let Some(section) = &file.dau else {
        return Ok(None);
    };
    let dau = Dau {
        users: section.value.users,
        actions_per_user_per_day: section.value.actions_per_user_per_day,
        read_write_ratio: section.value.read_write_ratio,
        peak_factor: section.value.peak_factor,
        spike_factor: section.value.spike_factor,
    };
    dau.check()
        .map_err(|(field, message)| error(section.line, format!("dau.{field}"), message))?;
    Ok(Some(dau))
}

/// Declared pools first, then the ones captures name, in file order; and
/// per pool, whether some capture fills it.
fn pools(file: &ScenarioFile) -> Result<(Vec<PoolSpec>, Vec<bool>), ScenarioError> {
    let mut pools = Vec::new();
    for (name, section) in file.pools.iter() {
        let capacity = section.value.capacity.unwrap_or(DEFAULT_POOL_CAPACITY);
        if capacity == 0 {
            return Err(error(
                section.line,
                format!("pools.{name}.capacity"),
                "must be at least 1",
            ));
        }
        pools.push(PoolSpec {
            name: name.to_string(),
            capacity,
        });
    }
    let setup = file
        .setup
        .iter()
        .chain(&file.teardown)
        .map(|r| r.value.fields().capture);
    let scenarios = file.scenarios.value.iter().flat_map(|(_, s)| {
        s.value
            .requests
            .value
            .iter()
            .map(|r| r.value.fields().capture)
    });
    let mut filled = vec![false; pools.len()];
    for captures in setup.chain(scenarios) {
        for (name, _) in captures.iter() {
            match pools.iter().position(|p: &PoolSpec| p.name == name) {
                Some(index) => filled[index] = true,
                None => {
                    pools.push(PoolSpec {
                        name: name.to_string(),
                        capacity: DEFAULT_POOL_CAPACITY,
                    });
                    filled.push(true);
                }
            }
        }
    }
    Ok((pools, filled))
}

fn phase(
    requests: &[Located<SetupRequest>],
    phase: &str,
    compiler: &ScenarioCompiler<'_>,
) -> Result<Vec<SetupStep>, ScenarioError> {
    let mut steps = Vec::new();
    for (i, written) in requests.iter().enumerate() {
        let path = format!("{phase}[{i}]");
        let step = &written.value;
        let repeat = match &step.repeat {
            Some(r) if r.value == 0 => {
                return Err(error(
                    r.line,
                    format!("{path}.repeat"),
                    "must be at least 1",
                ))
            }
            Some(r) => r.value,
            None => 1,
        };
        let concurrency = match &step.concurrency {
            Some(c) => at_least_one(c, &format!("{path}.concurrency"))?,
            None => 1,
        };
        let request = request::request(&step.name, 0, step.fields(), &path, compiler.context)?;
        steps.push(SetupStep {
            request,
            repeat,
            concurrency,
            insecure_tls: compiler.insecure_tls,
        });
    }
    Ok(steps)
}

impl ScenarioCompiler<'_> {
    fn scenario(
        &self,
        name: &str,
        section: &Located<ScenarioSection>,
        previous_end: Duration,
    ) -> Result<ScenarioPlan, ScenarioError> {
        let path = &format!("scenarios.{name}");
        let written = &section.value;
        let executor = executor(written, section.line, path, self.dau)?;
        let connections = match &written.connections {
            Some(c) => at_least_one(c, &format!("{path}.connections"))?,
            None => self.connections,
        };

        let list = &written.requests;
        if list.value.is_empty() {
            return Err(error(
                list.line,
                format!("{path}.requests"),
                "give at least one request",
            ));
        }
        let mut requests = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let request_path = format!("{path}.requests[{i}]");
            let written = &item.value;
            let duplicate = requests
                .iter()
                .any(|r: &RequestPlan| r.name == written.name.value);
            if duplicate {
                let message = format!(
                    "a request named `{}` is already in scenario `{name}`; names are metric labels",
                    written.name.value
                );
                return Err(error(
                    written.name.line,
                    format!("{request_path}.name"),
                    message,
                ));
            }
            let weight = written.weight.as_ref().map_or(1, |w| w.value);
            requests.push(request::request(
                &written.name,
                weight,
                written.fields(),
                &request_path,
                self.context,
            )?);
        }
        if requests.iter().all(|r| r.weight == 0) {
            return Err(error(
                list.line,
                format!("{path}.requests"),
                "every weight is 0, so no request could ever be picked",
            ));
        }

        Ok(ScenarioPlan {
            name: name.to_string(),
            executor,
            start: written
                .start_time
                .as_ref()
                .map_or(previous_end, |s| s.value.0),
            connections,
            http2: written.http2.unwrap_or(self.http2),
            insecure_tls: written.insecure_tls.unwrap_or(self.insecure_tls),
            warmup: written
                .warmup
                .as_ref()
                .map_or(Duration::ZERO, |w| w.value.0),
            requests,
        })
    }
}

/// Parsed, and their `{scenario:X}` and `{name:Y}` tags bound to what the
/// file has: a typo there would select nothing, and the threshold would
/// judge an empty set instead of failing loudly.
fn thresholds(
    file: &ScenarioFile,
    scenarios: &[ScenarioPlan],
) -> Result<Vec<Threshold>, ScenarioError> {
    let mut thresholds = Vec::new();
    for (key, entries) in file.thresholds.iter() {
        if entries.value.is_empty() {
            return Err(error(
                entries.line,
                format!("thresholds.{key}"),
                "give at least one expression",
            ));
        }
        for (i, entry) in entries.value.iter().enumerate() {
            let path = format!("thresholds.{key}[{i}]");
            let (expression, abort_on_fail, delay) = match &entry.value {
                ThresholdEntry::Expression(expression) => {
                    (expression.as_str(), false, Duration::ZERO)
                }
                ThresholdEntry::Detailed(DetailedThreshold {
                    threshold,
                    abort_on_fail,
                    delay_abort_eval,
                }) => (
                    threshold.as_str(),
                    *abort_on_fail,
                    delay_abort_eval.map_or(Duration::ZERO, |d| d.0),
                ),
            };
            let threshold =
                Threshold::parse(key, expression, abort_on_fail, delay).map_err(|e| {
                    // Name the expression unless the parser's message does.
                    let message = e.to_string();
                    if message.contains(expression) {
                        error(entry.line, &path, message)
                    } else {
                        error(entry.line, &path, format!("`{expression}`: {message}"))
                    }
                })?;
            check_tags(&threshold, scenarios)
                .map_err(|message| error(entry.line, &path, message))?;
            thresholds.push(threshold);
        }
    }
    Ok(thresholds)
}

fn check_tags(threshold: &Threshold, scenarios: &[ScenarioPlan]) -> Result<(), String> {
    let mut selected: Vec<&ScenarioPlan> = scenarios.iter().collect();
    if let Some(scenario) = threshold.scenario_tag() {
        selected.retain(|s| s.name == scenario);
        if selected.is_empty() {
            let known: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "no scenario named `{scenario}` (scenarios: {})",
                known.join(", ")
            ));
        }
    }
    if let Some(name) = threshold.name_tag() {
        let exists = selected
            .iter()
            .any(|s| s.requests.iter().any(|r| r.name == name));
        if !exists {
            let scope = match threshold.scenario_tag() {
                Some(scenario) => format!("scenario `{scenario}`"),
                None => "any scenario".to_string(),
            };
            return Err(format!("no request named `{name}` in {scope}"));
        }
    }
    Ok(())
}
