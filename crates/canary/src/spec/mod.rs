//! Canary specs: YAML a team keeps in Git next to the service, read with
//! the same bounded reader as SLO specs and load scenarios
//! ([`yamlspec`]), then compiled into a [`CanaryPlan`] the controller runs.
//!
//! Compiling checks what serde cannot: weights above 0, at most 100 and
//! increasing; dwells above zero; each metric naming an SLO that exists in
//! the SLO specs given (the judge's objectives and latency thresholds come
//! from there, so a canary is judged by what the service promises); a
//! Prometheus URL that is a URL. Every refusal names its line and field.

mod file;
#[cfg(test)]
mod tests;

pub use file::{
    FailSafePolicy, InconclusivePolicy, MetricKind, RestartPolicy, SpecFile, TargetSection,
};

use serde::Serialize;
use slo::model::{ErrorEvents, Sli};
use slo::Slo;
use std::time::Duration;
use yamlspec::{Located, SpecError};

/// A spec, checked and with its defaults filled in.
#[derive(Debug, Clone)]
pub struct CanaryPlan {
    pub name: String,
    pub target: TargetSection,
    pub steps: Vec<Step>,
    pub metrics: Vec<MetricPlan>,
    pub judge: JudgeSettings,
    pub max_duration: Duration,
    pub on_inconclusive: InconclusivePolicy,
    pub on_metrics_error: FailSafePolicy,
    pub on_restart: RestartPolicy,
    /// `None`: this process's own metrics registry.
    pub prometheus: Option<url::Url>,
}

impl CanaryPlan {
    /// The key that at most one active run may hold: `gateway/ROUTE` or
    /// `inference/MODEL`.
    pub fn target_key(&self) -> String {
        match &self.target {
            TargetSection::Gateway { route, .. } => format!("gateway/{route}"),
            TargetSection::Inference { model, .. } => format!("inference/{model}"),
        }
    }

    /// How many looks a run that lasts `max_duration` takes at most: the
    /// per-look significance is the run's significance spread over them.
    pub fn planned_looks(&self) -> u64 {
        let interval = self.judge.interval.as_secs_f64().max(0.001);
        (self.max_duration.as_secs_f64() / interval).ceil().max(1.0) as u64
    }
}

/// One step of the plan.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Step {
    /// Percent of traffic on the canary.
    pub weight: f64,
    #[serde(with = "humantime_text")]
    pub dwell: Duration,
}

/// One judged metric, resolved against its SLO.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricPlan {
    /// The SLO id, `service-name`.
    pub slo: String,
    pub kind: MetricKind,
    /// The SLO's objective as a ratio (0.999).
    pub objective: f64,
    /// A latency SLO's threshold in seconds.
    pub latency_threshold: Option<f64>,
    pub min_effect: f64,
    pub weight: f64,
    pub critical: bool,
}

/// How the judge looks, defaults applied.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct JudgeSettings {
    #[serde(with = "humantime_text")]
    pub interval: Duration,
    pub significance: f64,
    pub min_samples: u64,
    pub pass_score: f64,
    pub marginal_score: f64,
    pub page_burn_rate: f64,
    pub metrics_error_limit: u32,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            significance: 0.05,
            min_samples: 50,
            pass_score: 95.0,
            marginal_score: 75.0,
            page_burn_rate: 14.4,
            metrics_error_limit: 3,
        }
    }
}

/// Default smallest latency increase worth a rollback: 10 % of the mean.
pub const DEFAULT_LATENCY_EFFECT: f64 = 0.10;
/// Default smallest bad-ratio increase worth a rollback: 0.1 point.
pub const DEFAULT_PROPORTION_EFFECT: f64 = 0.001;

/// Parses and checks `text` against the SLOs in `slos`.
pub fn compile(text: &str, slos: &[Slo]) -> Result<CanaryPlan, SpecError> {
    let file: SpecFile = yamlspec::from_str(text)?;
    compile_file(file, slos)
}

fn refuse(line: usize, path: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        line,
        path: path.to_string(),
        message: message.into(),
    }
}

fn compile_file(file: SpecFile, slos: &[Slo]) -> Result<CanaryPlan, SpecError> {
    let name = file.name.value.trim().to_string();
    if name.is_empty()
        || name.len() > 100
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(refuse(
            file.name.line,
            "name",
            "must be 1 to 100 letters, digits, `-`, `_` or `.`",
        ));
    }
    check_target(&file.target)?;
    let steps = compile_steps(&file.steps)?;
    let judge = compile_judge(&file.judge)?;
    let metrics = compile_metrics(&file.metrics, slos)?;
    let max_duration = file.max_duration.value.0;
    if max_duration.is_zero() {
        return Err(refuse(
            file.max_duration.line,
            "max_duration",
            "must be above zero",
        ));
    }
    let least: Duration = steps.iter().map(|s| s.dwell).sum();
    if max_duration < least {
        return Err(refuse(
            file.max_duration.line,
            "max_duration",
            format!(
                "{} is shorter than the steps' dwells added up ({})",
                humantime::format_duration(max_duration),
                humantime::format_duration(least)
            ),
        ));
    }
    let prometheus = file
        .metrics_source
        .as_ref()
        .map(|source| {
            let url = url::Url::parse(&source.prometheus.value)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    refuse(
                        source.prometheus.line,
                        "metrics_source.prometheus",
                        format!(
                            "`{}` is not an http:// or https:// URL",
                            source.prometheus.value
                        ),
                    )
                })?;
            Ok::<_, SpecError>(url)
        })
        .transpose()?;
    Ok(CanaryPlan {
        name,
        target: file.target.value,
        steps,
        metrics,
        judge,
        max_duration,
        on_inconclusive: file.on_inconclusive,
        on_metrics_error: file.on_metrics_error,
        on_restart: file.on_restart,
        prometheus,
    })
}

fn check_target(target: &Located<TargetSection>) -> Result<(), SpecError> {
    let word = |s: &str| {
        !s.is_empty()
            && s.len() <= 200
            && s.bytes().all(|b| b.is_ascii_graphic())
            && !s.contains(['?', '#', '%'])
    };
    let url_ok = |u: &Option<String>| {
        u.as_deref().is_none_or(|u| {
            url::Url::parse(u)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        })
    };
    let env_ok = |e: &Option<String>| {
        e.as_deref().is_none_or(|e| {
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    };
    let line = target.line;
    match &target.value {
        TargetSection::Gateway {
            route,
            admin_url,
            admin_key_env,
        } => {
            if !word(route) {
                return Err(refuse(line, "target.gateway.route", "must be a route name"));
            }
            if !url_ok(admin_url) {
                return Err(refuse(
                    line,
                    "target.gateway.admin_url",
                    "must be an http:// or https:// URL",
                ));
            }
            if !env_ok(admin_key_env) {
                return Err(refuse(
                    line,
                    "target.gateway.admin_key_env",
                    "must be an environment variable name",
                ));
            }
        }
        TargetSection::Inference {
            model,
            baseline_version,
            canary_version,
            url,
            admin_key_env,
        } => {
            if !word(model) || model.contains('/') {
                return Err(refuse(
                    line,
                    "target.inference.model",
                    "must be a model name",
                ));
            }
            if baseline_version == canary_version {
                return Err(refuse(
                    line,
                    "target.inference.canary_version",
                    format!("is the baseline version ({baseline_version}); a canary compares two versions"),
                ));
            }
            if !url_ok(url) {
                return Err(refuse(
                    line,
                    "target.inference.url",
                    "must be an http:// or https:// URL",
                ));
            }
            if !env_ok(admin_key_env) {
                return Err(refuse(
                    line,
                    "target.inference.admin_key_env",
                    "must be an environment variable name",
                ));
            }
        }
    }
    Ok(())
}

fn compile_steps(steps: &Located<Vec<Located<file::StepSection>>>) -> Result<Vec<Step>, SpecError> {
    if steps.value.is_empty() {
        return Err(refuse(steps.line, "steps", "needs at least one step"));
    }
    if steps.value.len() > 100 {
        return Err(refuse(steps.line, "steps", "at most 100 steps"));
    }
    let mut out: Vec<Step> = Vec::new();
    for (i, step) in steps.value.iter().enumerate() {
        let weight = *step.value.weight;
        let path = format!("steps[{i}].weight");
        if !weight.is_finite() || weight <= 0.0 {
            return Err(refuse(
                step.value.weight.line,
                &path,
                format!("{weight} must be above 0"),
            ));
        }
        if weight > 100.0 {
            return Err(refuse(
                step.value.weight.line,
                &path,
                format!("{weight} is over 100 (a weight is a percentage)"),
            ));
        }
        if let Some(previous) = out.last() {
            if weight <= previous.weight {
                return Err(refuse(
                    step.value.weight.line,
                    &path,
                    format!(
                        "{weight} does not increase on the step before ({}); weights must increase",
                        previous.weight
                    ),
                ));
            }
        }
        let dwell = step.value.dwell.value.0;
        if dwell.is_zero() {
            return Err(refuse(
                step.value.dwell.line,
                &format!("steps[{i}].dwell"),
                "must be above zero (the judge needs time at each weight)",
            ));
        }
        out.push(Step { weight, dwell });
    }
    Ok(out)
}

fn compile_judge(judge: &file::JudgeSection) -> Result<JudgeSettings, SpecError> {
    let mut out = JudgeSettings::default();
    if let Some(interval) = &judge.interval {
        if interval.value.0 < Duration::from_millis(100) {
            return Err(refuse(
                interval.line,
                "judge.interval",
                "must be at least 100ms",
            ));
        }
        out.interval = interval.value.0;
    }
    if let Some(s) = &judge.significance {
        if !(s.value > 0.0 && s.value < 0.5) {
            return Err(refuse(
                s.line,
                "judge.significance",
                format!("{} must be above 0 and below 0.5, e.g. 0.05", s.value),
            ));
        }
        out.significance = s.value;
    }
    if let Some(n) = &judge.min_samples {
        if n.value == 0 {
            return Err(refuse(n.line, "judge.min_samples", "must be above zero"));
        }
        out.min_samples = n.value;
    }
    let score = |v: &Option<Located<f64>>, field: &str, default: f64| match v {
        Some(v) if !(0.0..=100.0).contains(&v.value) => Err(refuse(
            v.line,
            field,
            format!("{} must be from 0 to 100", v.value),
        )),
        Some(v) => Ok(v.value),
        None => Ok(default),
    };
    out.pass_score = score(&judge.pass_score, "judge.pass_score", out.pass_score)?;
    out.marginal_score = score(
        &judge.marginal_score,
        "judge.marginal_score",
        out.marginal_score,
    )?;
    if out.marginal_score > out.pass_score {
        let line = judge.marginal_score.as_ref().map_or(0, |v| v.line);
        return Err(refuse(
            line,
            "judge.marginal_score",
            format!(
                "{} is above pass_score ({})",
                out.marginal_score, out.pass_score
            ),
        ));
    }
    if let Some(b) = &judge.page_burn_rate {
        if !(b.value.is_finite() && b.value > 1.0) {
            return Err(refuse(
                b.line,
                "judge.page_burn_rate",
                format!("{} must be above 1, e.g. 14.4", b.value),
            ));
        }
        out.page_burn_rate = b.value;
    }
    if let Some(n) = &judge.metrics_error_limit {
        if n.value == 0 {
            return Err(refuse(
                n.line,
                "judge.metrics_error_limit",
                "must be above zero",
            ));
        }
        out.metrics_error_limit = n.value;
    }
    Ok(out)
}

fn compile_metrics(
    metrics: &Located<Vec<Located<file::MetricSection>>>,
    slos: &[Slo],
) -> Result<Vec<MetricPlan>, SpecError> {
    if metrics.value.is_empty() {
        return Err(refuse(
            metrics.line,
            "metrics",
            "needs at least one SLO to judge",
        ));
    }
    let mut out: Vec<MetricPlan> = Vec::new();
    for (i, metric) in metrics.value.iter().enumerate() {
        let m = &metric.value;
        let path = |field: &str| format!("metrics[{i}].{field}");
        let id = m.slo.value.trim();
        if out.iter().any(|o| o.slo == id) {
            return Err(refuse(
                m.slo.line,
                &path("slo"),
                format!("`{id}` is listed twice"),
            ));
        }
        let resolved = metric_for(id, m.kind, slos)
            .map_err(|(field, message)| refuse(m.slo.line, &path(field), message))?;
        let default_effect = resolved.min_effect;
        let min_effect = match &m.min_effect {
            Some(e) if !(e.value.is_finite() && e.value >= 0.0 && e.value < 10.0) => {
                return Err(refuse(
                    e.line,
                    &path("min_effect"),
                    format!("{} must be from 0 to 10 (0.10 = 10 %)", e.value),
                ))
            }
            Some(e) => e.value,
            None => default_effect,
        };
        let weight = match &m.weight {
            Some(w) if !(w.value.is_finite() && w.value > 0.0) => {
                return Err(refuse(
                    w.line,
                    &path("weight"),
                    format!("{} must be above 0", w.value),
                ))
            }
            Some(w) => w.value,
            None => 1.0,
        };
        out.push(MetricPlan {
            min_effect,
            weight,
            critical: m.critical,
            ..resolved
        });
    }
    Ok(out)
}

/// The metric judging SLO `id` (by its kind, or `kind` when given), with
/// default effect floor and weight; the error names the field at fault
/// (`slo` or `kind`).
pub fn metric_for(
    id: &str,
    kind: Option<MetricKind>,
    slos: &[Slo],
) -> Result<MetricPlan, (&'static str, String)> {
    let Some(slo) = slos.iter().find(|s| s.id() == id) else {
        let mut known: Vec<String> = slos.iter().map(Slo::id).collect();
        known.sort();
        return Err((
            "slo",
            format!(
                "`{id}` is not in any SLO spec (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let kind = kind.unwrap_or_else(|| infer_kind(slo));
    let latency_threshold = match &slo.sli {
        Sli::Events {
            latency_threshold, ..
        } => *latency_threshold,
        Sli::Raw { .. } => None,
    };
    if kind == MetricKind::Latency && latency_threshold.is_none() {
        return Err((
            "kind",
            format!("`{id}` has no latency threshold, so it cannot be judged as latency"),
        ));
    }
    Ok(MetricPlan {
        slo: id.to_string(),
        kind,
        objective: slo.objective.ratio(),
        latency_threshold,
        min_effect: match kind {
            MetricKind::Latency => DEFAULT_LATENCY_EFFECT,
            _ => DEFAULT_PROPORTION_EFFECT,
        },
        weight: 1.0,
        critical: false,
    })
}

/// The kind an SLO's indicator measures, from its shape: a latency
/// threshold is latency; the inference module's feedback and shadow
/// counters are accuracy and agreement; any other event ratio is errors.
pub fn infer_kind(slo: &Slo) -> MetricKind {
    let Sli::Events {
        errors,
        latency_threshold,
        ..
    } = &slo.sli
    else {
        return MetricKind::Errors;
    };
    if latency_threshold.is_some() {
        return MetricKind::Latency;
    }
    let query = match errors {
        ErrorEvents::Bad(q) | ErrorEvents::Good(q) => q,
    };
    let name = slo::promql::summed_counter(query).and_then(|c| c.name);
    match name.as_deref() {
        Some("inference_feedback_total") => MetricKind::Accuracy,
        Some("inference_shadow_total") => MetricKind::Agreement,
        _ => MetricKind::Errors,
    }
}

/// Durations serialized as `30s`, `1m 30s`.
mod humantime_text {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}
