//! The checks types cannot express: URLs, tolerances with a bound,
//! toxic types and attribute ranges (toxiproxy's names), the load
//! section's mode, and processes named only after they are started.

use super::model::*;
use super::parse::{ExperimentError, Step};
use std::collections::HashSet;

pub(super) fn check_url(text: &str, step: &Step, key: &str) -> Result<(), ExperimentError> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        Ok(url) => Err(step.error(
            key,
            format!(
                "`{text}`: only http:// and https:// URLs, not {}://",
                url.scheme()
            ),
        )),
        Err(e) => Err(step.error(key, format!("`{text}` is not a URL: {e}"))),
    }
}

pub(super) fn check_tolerance(tolerance: &Tolerance, step: &Step) -> Result<(), ExperimentError> {
    let bounds = [
        tolerance.min,
        tolerance.max,
        tolerance.equals,
        tolerance.max_increase,
    ];
    if bounds.iter().all(Option::is_none) && tolerance.one_of.is_empty() {
        return Err(step.error(
            "tolerance",
            "give at least one of min, max, equals, one_of, max_increase",
        ));
    }
    if let (Some(min), Some(max)) = (tolerance.min, tolerance.max) {
        if min > max {
            return Err(step.error("tolerance", format!("min {min} is above max {max}")));
        }
    }
    Ok(())
}

/// The attributes each toxic type takes, as toxiproxy names them.
fn toxic_attributes(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["delay"],
        "timeout" | "reset_peer" => &["timeout"],
        "limit_data" => &["bytes"],
        "slicer" => &["average_size", "size_variation", "delay"],
        "blackhole" => &[],
        _ => return None,
    })
}

pub(super) fn check_toxic(toxic: &ToxicBody, step: &Step) -> Result<(), ExperimentError> {
    let Some(known) = toxic_attributes(&toxic.kind) else {
        return Err(step.error(
            "toxic.type",
            format!("unknown toxic type `{}` (known: latency, bandwidth, slow_close, timeout, reset_peer, limit_data, slicer, blackhole)", toxic.kind),
        ));
    };
    if let Some(toxicity) = toxic.toxicity {
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(step.error(
                "toxic.toxicity",
                format!("must be between 0 and 1, got {toxicity}"),
            ));
        }
    }
    for (name, value) in &toxic.attributes {
        if !known.contains(&name.as_str()) {
            return Err(step.error(
                &format!("toxic.attributes.{name}"),
                format!(
                    "`{}` takes no attribute `{name}` (it takes: {})",
                    toxic.kind,
                    known.join(", ")
                ),
            ));
        }
        if !(value.is_finite() && *value >= 0.0) {
            return Err(step.error(
                &format!("toxic.attributes.{name}"),
                format!("must be a non-negative number, got {value}"),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_load(load: &LoadSection, line: usize) -> Result<(), ExperimentError> {
    let error =
        |key: &str, message: &str| ExperimentError::at(line, &format!("load.{key}"), message);
    match (&load.url, &load.scenario) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(error(
                "url",
                "give exactly one of `url` (quick mode) and `scenario`",
            ))
        }
        (Some(url), None) => {
            if url::Url::parse(url).is_err() {
                return Err(error("url", "is not a URL"));
            }
            match load.rate {
                Some(rate) if rate.is_finite() && rate > 0.0 => {}
                _ => {
                    return Err(error(
                        "rate",
                        "quick mode needs a positive rate (requests per second)",
                    ))
                }
            }
        }
        (None, Some(_)) => {}
    }
    if load.connections == Some(0) {
        return Err(error("connections", "must be at least 1"));
    }
    Ok(())
}

/// A `process` named by a signal or restart must be started earlier.
pub(super) fn check_processes(
    method: &[Action],
    rollbacks: &[Action],
) -> Result<(), ExperimentError> {
    let mut started = HashSet::new();
    for (i, action) in method.iter().chain(rollbacks).enumerate() {
        let section = if i < method.len() {
            format!("method[{i}]")
        } else {
            format!("rollbacks[{}]", i - method.len())
        };
        let named = match &action.spec {
            ActionSpec::ProcessStart(start) => {
                started.insert(start.process.clone());
                None
            }
            ActionSpec::ProcessSignal(signal) => signal.process.as_ref(),
            ActionSpec::ProcessRestart(restart) => Some(&restart.process),
            _ => None,
        };
        if let Some(name) = named {
            if !started.contains(name) {
                return Err(ExperimentError::at(
                    action.line,
                    &format!("{section}.process"),
                    format!("no `process.start` before this starts a process named `{name}`"),
                ));
            }
        }
    }
    Ok(())
}
