//! The file as written to a checked [`Plan`]: defaults applied, rates
//! resolved (numbers or DAU profiles), start offsets laid out, pools
//! gathered, thresholds parsed.
//!
//! The plan's promise to the engine ("everything is already checked") is
//! kept here: each refusal names the line and the field path, so a person
//! fixes the file instead of reading a stack of engine errors.

use super::dau::{Dau, Profile};
use super::file::{DetailedThreshold, ExecutorKind, ScenarioFile, ScenarioSection, ThresholdEntry};
use super::request::{self, error, RequestDefaults, DEFAULT_TIMEOUT};
use super::template::Scope;
use super::values::RateText;
use super::{CompileOptions, ScenarioError};
use crate::plan::{Executor, Plan, PoolSpec, ScenarioPlan, SetupStep, Stage, StatusSet};
use crate::threshold::Threshold;
use std::collections::BTreeMap;
use std::time::Duration;
use yamlspec::Located;

/// A pool's capacity when the file does not set one.
pub const DEFAULT_POOL_CAPACITY: usize = 100_000;
/// Keep-alive connections per scenario when nothing sets them.
pub const DEFAULT_CONNECTIONS: usize = 64;

pub fn compile(text: &str, options: &CompileOptions) -> Result<Plan, ScenarioError> {
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
    let pools = pools(&file)?;
    let process_env = |name: &str| std::env::var(name).ok();
    let given_env = |name: &str| options.env.as_ref().and_then(|env| env.get(name).cloned());
    let env: &dyn Fn(&str) -> Option<String> = if options.env.is_some() {
        &given_env
    } else {
        &process_env
    };
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
    let request_defaults = RequestDefaults {
        headers: request::headers(&defaults.headers, "defaults.headers", &scope)?,
        timeout: match &defaults.timeout {
            Some(timeout) => request::duration(timeout, "defaults.timeout")?,
            None => DEFAULT_TIMEOUT,
        },
        expect_status: match &defaults.expect_status {
            Some(statuses) => request::status_set(statuses, "defaults.expect_status")?,
            None => StatusSet::default(),
        },
    };
    let connections = match &defaults.connections {
        Some(c) => at_least_one(c, "defaults.connections")?,
        None => DEFAULT_CONNECTIONS,
    };
    let shared = ScenarioDefaults {
        connections,
        http2: defaults.http2.unwrap_or(false),
        insecure_tls: defaults.insecure_tls.unwrap_or(false),
    };

    let setup = phase(&file.setup, "setup", &scope, &request_defaults)?;
    let teardown = phase(&file.teardown, "teardown", &scope, &request_defaults)?;

    if file.scenarios.value.is_empty() {
        return Err(error(file.scenarios.line, "scenarios", "give at least one scenario"));
    }
    let mut scenarios = Vec::new();
    let mut end_so_far = Duration::ZERO;
    for (name, section) in file.scenarios.value.iter() {
        let path = format!("scenarios.{name}");
        let scenario = scenario(name, section, &path, end_so_far, dau.as_ref(), &shared, &scope, &request_defaults)?;
        end_so_far = end_so_far.max(scenario.start + scenario.duration());
        scenarios.push(scenario);
    }

    Ok(Plan {
        pools,
        setup,
        scenarios,
        teardown,
        thresholds: thresholds(&file)?,
        dau: dau.map(|d| d.explain()),
    })
}

struct ScenarioDefaults {
    connections: usize,
    http2: bool,
    insecure_tls: bool,
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

/// Declared pools first, then the ones captures name, in file order.
fn pools(file: &ScenarioFile) -> Result<Vec<PoolSpec>, ScenarioError> {
    let mut pools = Vec::new();
    for (name, section) in file.pools.iter() {
        let capacity = section.value.capacity.unwrap_or(DEFAULT_POOL_CAPACITY);
        if capacity == 0 {
            return Err(error(section.line, format!("pools.{name}.capacity"), "must be at least 1"));
        }
        pools.push(PoolSpec {
            name: name.to_string(),
            capacity,
        });
    }
    let setup = file.setup.iter().chain(&file.teardown).map(|r| r.value.fields().capture);
    let scenarios = file
        .scenarios
        .value
        .iter()
        .flat_map(|(_, s)| s.value.requests.value.iter().map(|r| r.value.fields().capture));
    for captures in setup.chain(scenarios) {
        for (name, _) in captures.iter() {
            if !pools.iter().any(|p: &PoolSpec| p.name == name) {
                pools.push(PoolSpec {
                    name: name.to_string(),
                    capacity: DEFAULT_POOL_CAPACITY,
                });
            }
        }
    }
    Ok(pools)
}

fn phase(
    requests: &[Located<super::file::SetupRequest>],
    phase: &str,
    scope: &Scope<'_>,
    defaults: &RequestDefaults,
) -> Result<Vec<SetupStep>, ScenarioError> {
    let mut steps = Vec::new();
    for (i, written) in requests.iter().enumerate() {
        let path = format!("{phase}[{i}]");
        let step = &written.value;
        let repeat = match &step.repeat {
            Some(r) if r.value == 0 => return Err(error(r.line, format!("{path}.repeat"), "must be at least 1")),
            Some(r) => r.value,
            None => 1,
        };
        let concurrency = match &step.concurrency {
            Some(c) => at_least_one(c, &format!("{path}.concurrency"))?,
            None => 1,
        };
        let request = request::request(&step.name, 0, step.fields(), &path, scope, defaults)?;
        steps.push(SetupStep {
            request,
            repeat,
            concurrency,
        });
    }
    Ok(steps)
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    name: &str,
    section: &Located<ScenarioSection>,
    path: &str,
    previous_end: Duration,
    dau: Option<&Dau>,
    shared: &ScenarioDefaults,
    scope: &Scope<'_>,
    defaults: &RequestDefaults,
) -> Result<ScenarioPlan, ScenarioError> {
    let written = &section.value;
    let executor = executor(written, section.line, path, dau)?;
    let connections = match &written.connections {
        Some(c) => at_least_one(c, &format!("{path}.connections"))?,
        None => shared.connections,
    };

    let list = &written.requests;
    if list.value.is_empty() {
        return Err(error(list.line, format!("{path}.requests"), "give at least one request"));
    }
    let mut requests = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let request_path = format!("{path}.requests[{i}]");
        let written = &item.value;
        if requests.iter().any(|r: &crate::plan::RequestPlan| r.name == written.name.value) {
            return Err(error(
                written.name.line,
                format!("{request_path}.name"),
                format!("a request named `{}` is already in scenario `{name}`; names are metric labels", written.name.value),
            ));
        }
        let weight = written.weight.as_ref().map_or(1, |w| w.value);
        requests.push(request::request(&written.name, weight, written.fields(), &request_path, scope, defaults)?);
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
        start: written.start_time.as_ref().map_or(previous_end, |s| s.value.0),
        connections,
        http2: written.http2.unwrap_or(shared.http2),
        insecure_tls: written.insecure_tls.unwrap_or(shared.insecure_tls),
        warmup: written.warmup.as_ref().map_or(Duration::ZERO, |w| w.value.0),
        requests,
    })
}

fn executor(written: &ScenarioSection, line: usize, path: &str, dau: Option<&Dau>) -> Result<Executor, ScenarioError> {
    let kind = written.executor;
    let kind_name = match kind {
        ExecutorKind::ConstantArrivalRate => "constant-arrival-rate",
        ExecutorKind::RampingArrivalRate => "ramping-arrival-rate",
        ExecutorKind::ConstantConnections => "constant-connections",
    };
    let not_for = |field: &str, field_line: usize, instead: &str| {
        error(field_line, format!("{path}.{field}"), format!("`{field}` is not used by {kind_name}; {instead}"))
    };
    let duration = |required: bool| -> Result<Duration, ScenarioError> {
        match &written.duration {
            Some(d) => request::duration(d, &format!("{path}.duration")),
            None if required => Err(error(line, format!("{path}.duration"), format!("{kind_name} needs a `duration`"))),
            None => Ok(Duration::ZERO),
        }
    };
    match kind {
        ExecutorKind::ConstantArrivalRate | ExecutorKind::ConstantConnections => {
            if let Some(stages) = &written.stages {
                return Err(not_for("stages", stages.line, "stages are for ramping-arrival-rate"));
            }
            if let Some(start) = &written.start_rate {
                return Err(not_for("start_rate", start.line, "it is for ramping-arrival-rate"));
            }
            let duration = duration(true)?;
            if kind == ExecutorKind::ConstantConnections {
                if let Some(rate) = &written.rate {
                    return Err(not_for("rate", rate.line, "the closed model sends as fast as the server answers"));
                }
                return Ok(Executor::ConstantConnections { duration });
            }
            let rate = written
                .rate
                .as_ref()
                .ok_or_else(|| error(line, format!("{path}.rate"), "constant-arrival-rate needs a `rate` (per second)"))?;
            let rate = resolve_rate(rate, &format!("{path}.rate"), dau, false)?;
            Ok(Executor::ConstantArrivalRate { rate, duration })
        }
        ExecutorKind::RampingArrivalRate => {
            if let Some(rate) = &written.rate {
                return Err(not_for("rate", rate.line, "give `start_rate` and `stages`"));
            }
            if let Some(d) = &written.duration {
                return Err(not_for("duration", d.line, "the stages' durations add up to it"));
            }
            let start_rate = match &written.start_rate {
                Some(rate) => resolve_rate(rate, &format!("{path}.start_rate"), dau, true)?,
                None => 0.0,
            };
            let stages_written = written
                .stages
                .as_ref()
                .ok_or_else(|| error(line, format!("{path}.stages"), "ramping-arrival-rate needs `stages`"))?;
            if stages_written.value.is_empty() {
                return Err(error(stages_written.line, format!("{path}.stages"), "give at least one stage"));
            }
            let mut stages = Vec::new();
            for (i, stage) in stages_written.value.iter().enumerate() {
                let stage_path = format!("{path}.stages[{i}]");
                stages.push(Stage {
                    target: resolve_rate(&stage.value.target, &format!("{stage_path}.target"), dau, true)?,
                    duration: request::duration(&stage.value.duration, &format!("{stage_path}.duration"))?,
                });
            }
            if start_rate == 0.0 && stages.iter().all(|s| s.target == 0.0) {
                return Err(error(stages_written.line, format!("{path}.stages"), "every rate is 0, so nothing would be sent"));
            }
            Ok(Executor::RampingArrivalRate { start_rate, stages })
        }
    }
}

/// A number, `dau.X`, `K * dau.X` or `dau.X * K`; positive and finite
/// (zero allowed where a ramp may start or end at nothing).
fn resolve_rate(written: &Located<RateText>, path: &str, dau: Option<&Dau>, zero_allowed: bool) -> Result<f64, ScenarioError> {
    let line = written.line;
    let rate = match &written.value {
        RateText::PerSecond(rate) => *rate,
        RateText::Expression(text) => {
            let mut factor = 1.0;
            let mut profile = None;
            for term in text.split('*').map(str::trim) {
                if let Some(name) = term.strip_prefix("dau.") {
                    let parsed = Profile::parse(name).ok_or_else(|| {
                        error(line, path, format!("`{term}` is not a DAU profile; use dau.baseline, dau.peak or dau.viral"))
                    })?;
                    if profile.replace(parsed).is_some() {
                        return Err(error(line, path, format!("`{text}` names two DAU profiles")));
                    }
                } else {
                    factor *= term.parse::<f64>().map_err(|_| {
                        error(line, path, format!("`{text}` is not a rate: give a number or `K * dau.baseline|peak|viral`"))
                    })?;
                }
            }
            let profile = profile.ok_or_else(|| error(line, path, format!("`{text}` is not a rate")))?;
            let dau = dau.ok_or_else(|| error(line, path, format!("`{text}` needs a `dau:` section")))?;
            let rates = dau.rates(profile).map_err(|message| error(line, path, message))?;
            factor * rates.total()
        }
    };
    let valid = rate.is_finite() && (rate > 0.0 || (zero_allowed && rate == 0.0));
    if !valid {
        let expected = if zero_allowed { "zero or more" } else { "more than zero" };
        return Err(error(line, path, format!("the rate must be a finite number {expected} per second, got {rate}")));
    }
    Ok(rate)
}

fn thresholds(file: &ScenarioFile) -> Result<Vec<Threshold>, ScenarioError> {
    let mut thresholds = Vec::new();
    for (key, entries) in file.thresholds.iter() {
        if entries.value.is_empty() {
            return Err(error(entries.line, format!("thresholds.{key}"), "give at least one expression"));
        }
        for (i, entry) in entries.value.iter().enumerate() {
            let path = format!("thresholds.{key}[{i}]");
            let (expression, abort_on_fail, delay) = match &entry.value {
                ThresholdEntry::Expression(expression) => (expression.as_str(), false, Duration::ZERO),
                ThresholdEntry::Detailed(DetailedThreshold {
                    threshold,
                    abort_on_fail,
                    delay_abort_eval,
                }) => (threshold.as_str(), *abort_on_fail, delay_abort_eval.map_or(Duration::ZERO, |d| d.0)),
            };
            let threshold = Threshold::parse(key, expression, abort_on_fail, delay)
                .map_err(|e| error(entry.line, &path, format!("`{expression}`: {e}")))?;
            thresholds.push(threshold);
        }
    }
    Ok(thresholds)
}
