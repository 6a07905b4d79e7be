//! OpenSLO indicators: `ratioMetric` and `thresholdMetric` specs, and
//! turning a pending SLO plus its (inline or referenced) indicator into the
//! model's [`Sli`].

use super::{PendingSlo, SliSpec};
use crate::fields::{At, Fields};
use crate::model::{ErrorEvents, Sli, Slo};
use crate::yaml::Node;
use crate::{promql, SpecError};

pub(super) fn parse_sli_spec(at: At<'_>, node: &Node) -> Result<SliSpec, SpecError> {
    let mut f = Fields::new(at, node)?;
    let _ = f.string("description")?;
    let ratio = f.take("ratioMetric");
    let threshold = f.take("thresholdMetric");
    let spec = match (ratio, threshold) {
        (Some(_), Some(_)) => {
            return Err(f.at.error(
                f.key_line("thresholdMetric"),
                f.at.field("thresholdMetric"),
                "contradicts `ratioMetric`: give one of them",
            ))
        }
        (None, None) => {
            return Err(f
                .at
                .here(f.line, "needs `ratioMetric` or `thresholdMetric`"))
        }
        (Some(r), None) => {
            let mut r = Fields::new(f.at.child("ratioMetric"), r)?;
            if r.bool("counter")? != Some(true) {
                return Err(r.at.error(
                    r.line,
                    r.at.field("counter"),
                    "only `counter: true` (raw counters) is supported",
                ));
            }
            if let Some(node) = r.take("raw") {
                return Err(r.at.error(
                    node.line,
                    r.at.field("raw"),
                    "raw ratio metrics are not supported; give good or bad and total counters",
                ));
            }
            let good = r
                .take("good")
                .map(|n| source(r.at.child("good"), n))
                .transpose()?;
            let bad = r
                .take("bad")
                .map(|n| source(r.at.child("bad"), n))
                .transpose()?;
            let total = source(r.at.child("total"), r.required("total")?)?;
            let errors = match (good, bad) {
                (Some(_), Some(_)) => {
                    return Err(r.at.here(
                        r.line,
                        "`good` contradicts `bad`: give one of them with `total`",
                    ))
                }
                (None, None) => {
                    return Err(r
                        .at
                        .here(r.line, "a ratio SLI needs a `good` or a `bad` query"))
                }
                (Some(g), None) => ErrorEvents::Good(promql::rate_of(&g)),
                (None, Some(b)) => ErrorEvents::Bad(promql::rate_of(&b)),
            };
            r.finish()?;
            SliSpec::Ratio {
                errors,
                total: promql::rate_of(&total),
            }
        }
        (None, Some(t)) => {
            let bucket = source(f.at.child("thresholdMetric"), t)?;
            if !bucket
                .split('{')
                .next()
                .unwrap_or_default()
                .ends_with("_bucket")
            {
                return Err(f.at.error(
                    t.line,
                    f.at.field("thresholdMetric"),
                    "must select a histogram's `_bucket` series",
                ));
            }
            SliSpec::Threshold {
                bucket,
                line: t.line,
            }
        }
    };
    f.finish()?;
    Ok(spec)
}

/// `{metricSource: {type: Prometheus, spec: {query: ...}}}` to a selector.
fn source(at: At<'_>, node: &Node) -> Result<String, SpecError> {
    let mut f = Fields::new(at, node)?;
    let ms = f.required("metricSource")?;
    f.finish()?;
    let mut m = Fields::new(f.at.child("metricSource"), ms)?;
    let (kind, line) = m.required_string("type")?;
    if !kind.eq_ignore_ascii_case("prometheus") {
        return Err(m.at.error(
            line,
            m.at.field("type"),
            format!("`{kind}` is not supported; use Prometheus"),
        ));
    }
    let spec = m.required("spec")?;
    m.finish()?;
    let mut s = Fields::new(m.at.child("spec"), spec)?;
    let (query, line) = s.required_string("query")?;
    let selector = promql::counter_selector(&s.at.child("query"), line, &query)?;
    s.finish()?;
    Ok(selector)
}

/// Fills in the SLI of a pending SLO from its spec.
pub fn resolve(mut pending: PendingSlo, spec: &SliSpec) -> Result<Slo, SpecError> {
    let at = At::root(&pending.slo.source.file).child(&pending.at_path);
    pending.slo.sli = match (spec, pending.threshold) {
        (SliSpec::Ratio { errors, total }, None) => Sli::Events {
            errors: errors.clone(),
            total: total.clone(),
            latency_threshold: None,
        },
        (SliSpec::Ratio { .. }, Some((_, _, line))) => {
            return Err(at.error(
                line,
                "spec.objectives[0].op".into(),
                "`op`/`value` only apply to a thresholdMetric SLI",
            ))
        }
        (SliSpec::Threshold { line, .. }, None) => {
            return Err(at.error(
                *line,
                "spec.objectives[0].value".into(),
                "a thresholdMetric SLI needs an objective with `op: lte` and `value` (seconds)",
            ))
        }
        (SliSpec::Threshold { bucket, .. }, Some((op, value, line))) => {
            if op != "lte" && op != "lt" {
                return Err(at.error(
                    line,
                    "spec.objectives[0].op".into(),
                    format!("`{op}` is not supported for latency; use lte"),
                ));
            }
            if !value.is_finite() || value <= 0.0 {
                return Err(at.error(
                    line,
                    "spec.objectives[0].value".into(),
                    "must be a positive number of seconds",
                ));
            }
            let good = promql::with_matcher(bucket, &format!("le=\"{value}\""));
            let name_end = bucket.find('{').unwrap_or(bucket.len());
            let count = format!(
                "{}_count{}",
                bucket[..name_end].trim_end_matches("_bucket"),
                &bucket[name_end..]
            );
            Sli::Events {
                errors: ErrorEvents::Good(promql::rate_of(&good)),
                total: promql::rate_of(&count),
                latency_threshold: Some(value),
            }
        }
    };
    Ok(pending.slo)
}
