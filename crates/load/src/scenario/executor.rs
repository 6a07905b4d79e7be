//! A scenario's executor from its fields: which fields each executor
//! takes, and rates resolved from numbers or DAU profiles.
//!
//! A rate of zero, a negative or infinite rate, or a field that belongs to
//! another executor is refused here: the engine's schedule divides by the
//! rate, and a `rate:` silently ignored by a closed-model scenario would
//! mislead whoever reads the file.

use super::dau::{Dau, Profile};
use super::file::{ExecutorKind, ScenarioSection};
use super::request::{self, error};
use super::values::RateText;
use super::ScenarioError;
use crate::plan::{Executor, Stage};
use std::time::Duration;
use yamlspec::Located;

pub fn executor(
    written: &ScenarioSection,
    line: usize,
    path: &str,
    dau: Option<&Dau>,
) -> Result<Executor, ScenarioError> {
    let kind = written.executor;
    let kind_name = match kind {
        ExecutorKind::ConstantArrivalRate => "constant-arrival-rate",
        ExecutorKind::RampingArrivalRate => "ramping-arrival-rate",
        ExecutorKind::ConstantConnections => "constant-connections",
    };
    let not_for = |field: &str, field_line: usize, instead: &str| {
        error(
            field_line,
            format!("{path}.{field}"),
            format!("`{field}` is not used by {kind_name}; {instead}"),
        )
    };
    let duration = |required: bool| -> Result<Duration, ScenarioError> {
        match &written.duration {
            Some(d) => request::duration(d, &format!("{path}.duration")),
            None if required => Err(error(
                line,
                format!("{path}.duration"),
                format!("{kind_name} needs a `duration`"),
            )),
            None => Ok(Duration::ZERO),
        }
    };
    match kind {
        ExecutorKind::ConstantArrivalRate | ExecutorKind::ConstantConnections => {
            if let Some(stages) = &written.stages {
                return Err(not_for(
                    "stages",
                    stages.line,
                    "stages are for ramping-arrival-rate",
                ));
            }
            if let Some(start) = &written.start_rate {
                return Err(not_for(
                    "start_rate",
                    start.line,
                    "it is for ramping-arrival-rate",
                ));
            }
            let duration = duration(true)?;
            if kind == ExecutorKind::ConstantConnections {
                if let Some(rate) = &written.rate {
                    return Err(not_for(
                        "rate",
                        rate.line,
                        "the closed model sends as fast as the server answers",
                    ));
                }
                return Ok(Executor::ConstantConnections { duration });
            }
            let rate = written.rate.as_ref().ok_or_else(|| {
                error(
                    line,
                    format!("{path}.rate"),
                    "constant-arrival-rate needs a `rate` (per second)",
                )
            })?;
            let rate = resolve_rate(rate, &format!("{path}.rate"), dau, false)?;
            Ok(Executor::ConstantArrivalRate { rate, duration })
        }
        ExecutorKind::RampingArrivalRate => {
            if let Some(rate) = &written.rate {
                return Err(not_for("rate", rate.line, "give `start_rate` and `stages`"));
            }
            if let Some(d) = &written.duration {
                return Err(not_for(
                    "duration",
                    d.line,
                    "the stages' durations add up to it",
                ));
            }
            let start_rate = match &written.start_rate {
                Some(rate) => resolve_rate(rate, &format!("{path}.start_rate"), dau, true)?,
                None => 0.0,
            };
            let stages_written = written.stages.as_ref().ok_or_else(|| {
                error(
                    line,
                    format!("{path}.stages"),
                    "ramping-arrival-rate needs `stages`",
                )
            })?;
            if stages_written.value.is_empty() {
                return Err(error(
                    stages_written.line,
                    format!("{path}.stages"),
                    "give at least one stage",
                ));
            }
            let mut stages = Vec::new();
            for (i, stage) in stages_written.value.iter().enumerate() {
                let stage_path = format!("{path}.stages[{i}]");
                stages.push(Stage {
                    target: resolve_rate(
                        &stage.value.target,
                        &format!("{stage_path}.target"),
                        dau,
                        true,
                    )?,
                    duration: request::duration(
                        &stage.value.duration,
                        &format!("{stage_path}.duration"),
                    )?,
                });
            }
            if start_rate == 0.0 && stages.iter().all(|s| s.target == 0.0) {
                return Err(error(
                    stages_written.line,
                    format!("{path}.stages"),
                    "every rate is 0, so nothing would be sent",
                ));
            }
            Ok(Executor::RampingArrivalRate { start_rate, stages })
        }
    }
}

/// A number, `dau.X`, `K * dau.X` or `dau.X * K`; positive and finite
/// (zero allowed where a ramp may start or end at nothing).
fn resolve_rate(
    written: &Located<RateText>,
    path: &str,
    dau: Option<&Dau>,
    zero_allowed: bool,
) -> Result<f64, ScenarioError> {
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
                        return Err(error(
                            line,
                            path,
                            format!("`{text}` names two DAU profiles"),
                        ));
                    }
                } else {
                    factor *= term.parse::<f64>().map_err(|_| {
                        error(line, path, format!("`{text}` is not a rate: give a number or `K * dau.baseline|peak|viral`"))
                    })?;
                }
            }
            let profile =
                profile.ok_or_else(|| error(line, path, format!("`{text}` is not a rate")))?;
            let dau =
                dau.ok_or_else(|| error(line, path, format!("`{text}` needs a `dau:` section")))?;
            let rates = dau
                .rates(profile)
                .map_err(|message| error(line, path, message))?;
            factor * rates.total()
        }
    };
    let valid = rate.is_finite() && (rate > 0.0 || (zero_allowed && rate == 0.0));
    if !valid {
        let expected = if zero_allowed {
            "zero or more"
        } else {
            "more than zero"
        };
        return Err(error(
            line,
            path,
            format!(
                "the rate must be a finite number of requests per second, {expected}; got {rate}"
            ),
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dau() -> Dau {
        Dau {
            users: 86_400.0,
            actions_per_user_per_day: 1.0,
            read_write_ratio: 9.0,
            peak_factor: Some(2.0),
            spike_factor: None,
        }
    }

    fn rate(text: &str, zero_allowed: bool) -> Result<f64, String> {
        let written = Located {
            line: 7,
            value: match text.parse::<f64>() {
                Ok(number) => RateText::PerSecond(number),
                Err(_) => RateText::Expression(text.into()),
            },
        };
        resolve_rate(&written, "scenarios.s.rate", Some(&dau()), zero_allowed).map_err(|e| {
            assert_eq!((e.line, e.path.as_str()), (7, "scenarios.s.rate"));
            e.message
        })
    }

    #[test]
    fn dau_profiles_resolve_to_writes_plus_reads() {
        // 86,400 users x 1/day = 1 write/s, plus 9 reads/s.
        assert_eq!(rate("dau.baseline", false), Ok(10.0));
        assert_eq!(rate("dau.peak", false), Ok(20.0));
        assert_eq!(rate("3 * dau.peak", false), Ok(60.0));
        assert_eq!(rate("dau.peak * 0.5", false), Ok(10.0));
    }

    #[test]
    fn rates_that_mean_nothing_are_refused() {
        assert!(rate("dau.viral", false)
            .unwrap_err()
            .contains("spike_factor"));
        assert!(rate("dau.busy", false)
            .unwrap_err()
            .contains("not a DAU profile"));
        assert!(rate("dau.peak * dau.baseline", false)
            .unwrap_err()
            .contains("two DAU profiles"));
        assert!(rate("2 * 3", false).unwrap_err().contains("is not a rate"));
        assert!(rate("fast", false).unwrap_err().contains("is not a rate"));
        assert!(rate("0", false).unwrap_err().contains("more than zero"));
        assert!(rate("inf", true).unwrap_err().contains("finite"));
        assert_eq!(rate("0", true), Ok(0.0));
        assert!(rate("-1", true).unwrap_err().contains("zero or more"));
    }
}
