//! OpenSLO v1 (`apiVersion: openslo/v1`): `kind: SLO` with an inline
//! `indicator` or an `indicatorRef` to a `kind: SLI` document (in any file
//! loaded together).
//!
//! Supported: `ratioMetric` with `counter: true` and `good` or `bad` plus
//! `total` Prometheus selectors on raw counters (we add the rate and sum
//! per window); `thresholdMetric` on a histogram's `_bucket` selector with
//! an objective `op: lte` and `value` in seconds (a latency SLO: good is
//! the bucket at `value`, total the `_count`); one rolling `timeWindow`;
//! `budgetingMethod: Occurrences`; exactly one objective. Alerting is
//! steered by `metadata.annotations` under `reliable.dev/` (see
//! [`ANNOTATIONS`]). Everything else is refused with its line, so an SLO
//! never means less than its author wrote.

use crate::fields::{scalar, seq, At, Fields};
use crate::model::{
    valid_label_name, valid_name, AlertTier, Alerting, ErrorEvents, Sli, Slo, Source,
};
use crate::objective::Objective;
use crate::window::Window;
use crate::yaml::Node;
use crate::{promql, SpecError};
use std::collections::BTreeMap;

mod indicator;
use indicator::parse_sli_spec;
pub use indicator::resolve;

pub const API_VERSION: &str = "openslo/v1";

/// The `metadata.annotations` keys we read.
pub const ANNOTATIONS: &[&str] = &[
    "reliable.dev/alert-name",
    "reliable.dev/page",
    "reliable.dev/ticket",
    "reliable.dev/page-for",
    "reliable.dev/ticket-for",
    "reliable.dev/summary",
    "reliable.dev/runbook",
];

/// One OpenSLO document we understood.
#[derive(Debug)]
pub enum Document {
    Slo(Box<PendingSlo>),
    Sli {
        name: String,
        line: usize,
        spec: SliSpec,
    },
    /// `kind: Service`: describes, generates nothing.
    Service,
}

/// An SLO whose indicator may still be a reference.
#[derive(Debug)]
pub struct PendingSlo {
    pub slo: Slo,
    pub indicator: Indicator,
    /// `(op, value, line)` of the objective, needed by threshold SLIs.
    threshold: Option<Threshold>,
    at_path: String,
}

/// An objective's `op`, `value` and line.
type Threshold = (String, f64, usize);

#[derive(Debug)]
pub enum Indicator {
    Inline(SliSpec),
    Ref { name: String, line: usize },
}

#[derive(Debug, Clone)]
pub enum SliSpec {
    Ratio {
        errors: ErrorEvents,
        total: crate::model::QueryTemplate,
    },
    /// A histogram `_bucket` selector.
    Threshold { bucket: String, line: usize },
}

pub fn parse(file: &str, doc: &Node) -> Result<Document, SpecError> {
    let mut f = Fields::new(At::root(file), doc)?;
    let (api, line) = f.required_string("apiVersion")?;
    if api != API_VERSION {
        return Err(f.at.error(
            line,
            "apiVersion".into(),
            format!("expected `{API_VERSION}`, found `{api}`"),
        ));
    }
    let (kind, kind_line) = f.required_string("kind")?;
    let meta = f.required("metadata")?;
    let spec = f.required("spec")?;
    f.finish()?;
    match kind.as_str() {
        "SLO" => parse_slo(file, meta, spec).map(|p| Document::Slo(Box::new(p))),
        "SLI" => {
            let name = metadata(At::root(file).child("metadata"), meta)?.name;
            let spec = parse_sli_spec(At::root(file).child("spec"), spec)?;
            Ok(Document::Sli {
                name,
                line: doc.line,
                spec,
            })
        }
        "Service" => Ok(Document::Service),
        other => Err(At::root(file).error(
            kind_line,
            "kind".into(),
            format!("kind `{other}` is not supported (SLO, SLI, Service)"),
        )),
    }
}

struct Metadata {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// The line of each annotation key, for errors about one of them.
    annotation_lines: BTreeMap<String, usize>,
    line: usize,
}

fn metadata(at: At<'_>, node: &Node) -> Result<Metadata, SpecError> {
    let mut m = Fields::new(at, node)?;
    let (name, line) = m.required_string("name")?;
    if !valid_name(&name) {
        return Err(m
            .at
            .error(line, m.at.field("name"), "must match [A-Za-z0-9_.-]{1,128}"));
    }
    let _ = m.string("displayName")?;
    let labels = crate::sloth::labels(&mut m, "labels")?;
    let annotation_lines = match m.take("annotations").map(|n| &n.value) {
        Some(crate::yaml::Value::Map(entries)) => {
            entries.iter().map(|e| (e.key.clone(), e.line)).collect()
        }
        _ => BTreeMap::new(),
    };
    let annotations = m.string_map("annotations")?;
    let _ = m.take("namespace");
    m.finish()?;
    Ok(Metadata {
        name,
        labels,
        annotations,
        annotation_lines,
        line: node.line,
    })
}

fn parse_slo(file: &str, meta: &Node, spec: &Node) -> Result<PendingSlo, SpecError> {
    let root = At::root(file);
    let Metadata {
        name,
        labels,
        annotations,
        annotation_lines,
        line: meta_line,
    } = metadata(root.child("metadata"), meta)?;
    let mut s = Fields::new(root.child("spec"), spec)?;
    let description = s.string("description")?.map(|d| d.0).unwrap_or_default();
    let (service, line) = s.required_string("service")?;
    if !valid_name(&service) {
        return Err(s.at.error(
            line,
            s.at.field("service"),
            "must match [A-Za-z0-9_.-]{1,128}",
        ));
    }
    let indicator = match (s.take("indicator"), s.string("indicatorRef")?) {
        (Some(_), Some((_, line))) => {
            return Err(s.at.error(
                line,
                s.at.field("indicatorRef"),
                "contradicts `indicator`: give one of them",
            ))
        }
        (None, None) => return Err(s.at.here(s.line, "needs `indicator` or `indicatorRef`")),
        (None, Some((name, line))) => Indicator::Ref { name, line },
        (Some(node), None) => {
            let mut i = Fields::new(s.at.child("indicator"), node)?;
            if let Some(m) = i.take("metadata") {
                metadata(i.at.child("metadata"), m)?;
            }
            let spec = parse_sli_spec(i.at.child("spec"), i.required("spec")?)?;
            i.finish()?;
            Indicator::Inline(spec)
        }
    };
    let period = time_window(&mut s)?;
    let (method, line) = s.required_string("budgetingMethod")?;
    if method != "Occurrences" {
        return Err(s.at.error(
            line,
            s.at.field("budgetingMethod"),
            format!("`{method}` is not supported; use Occurrences"),
        ));
    }
    let (objective, threshold) = objectives(&mut s)?;
    if s.take("alertPolicies").is_some() {
        return Err(s.at.error(s.key_line("alertPolicies"), s.at.field("alertPolicies"), "not supported: page and ticket burn-rate alerts are generated; steer them with reliable.dev/ annotations"));
    }
    s.finish()?;
    let alerting = alerting(
        &root.child("metadata").child("annotations"),
        &annotation_lines,
        &annotations,
    )?;
    Ok(PendingSlo {
        slo: Slo {
            service,
            name,
            description,
            objective,
            period,
            // Replaced by `resolve` once the indicator is known.
            sli: Sli::Raw {
                error_ratio: promql::rate_of("placeholder"),
            },
            labels,
            alerting,
            source: Source {
                file: file.to_string(),
                line: meta_line,
            },
        },
        indicator,
        threshold,
        at_path: "spec".into(),
    })
}

fn time_window(s: &mut Fields<'_, '_>) -> Result<Window, SpecError> {
    let node = s.required("timeWindow")?;
    let at = s.at.child("timeWindow");
    let items = seq(&at, node)?;
    if items.len() != 1 {
        return Err(at.here(node.line, "needs exactly one time window"));
    }
    let mut w = Fields::new(at.index(0), &items[0])?;
    let (text, line) = w.required_string("duration")?;
    let period = Window::parse(&text).map_err(|m| w.at.error(line, w.at.field("duration"), m))?;
    if period < Window::days(1) {
        return Err(w
            .at
            .error(line, w.at.field("duration"), "must be at least 1d"));
    }
    if w.bool("isRolling")? != Some(true) {
        return Err(w.at.error(
            items[0].line,
            w.at.field("isRolling"),
            "only rolling windows are supported: set isRolling: true",
        ));
    }
    if w.take("calendar").is_some() {
        return Err(w.at.error(
            w.key_line("calendar"),
            w.at.field("calendar"),
            "contradicts isRolling: true",
        ));
    }
    w.finish()?;
    Ok(period)
}

fn objectives(s: &mut Fields<'_, '_>) -> Result<(Objective, Option<Threshold>), SpecError> {
    let node = s.required("objectives")?;
    let at = s.at.child("objectives");
    let items = seq(&at, node)?;
    if items.len() != 1 {
        return Err(at.here(node.line, "needs exactly one objective"));
    }
    let mut o = Fields::new(at.index(0), &items[0])?;
    let _ = o.string("displayName")?;
    let number = |o: &mut Fields<'_, '_>, key: &str| -> Result<Option<(f64, usize)>, SpecError> {
        let Some(node) = o.take(key) else {
            return Ok(None);
        };
        let text = scalar(&o.at.child(key), node)?;
        let value = text.trim().parse::<f64>().map_err(|_| {
            o.at.error(
                node.line,
                o.at.field(key),
                format!("`{text}` is not a number"),
            )
        })?;
        Ok(Some((value, node.line)))
    };
    let target = number(&mut o, "target")?;
    let percent = number(&mut o, "targetPercent")?;
    let objective = match (target, percent) {
        (Some(_), Some((_, line))) => {
            return Err(o.at.error(
                line,
                o.at.field("targetPercent"),
                "contradicts `target`: give one of them",
            ))
        }
        (None, None) => {
            return Err(o
                .at
                .error(items[0].line, o.at.field("target"), "is required"))
        }
        (Some((t, line)), None) => {
            Objective::from_ratio(t).map_err(|m| o.at.error(line, o.at.field("target"), m))?
        }
        (None, Some((p, line))) => Objective::from_percent(p)
            .map_err(|m| o.at.error(line, o.at.field("targetPercent"), m))?,
    };
    let op = o.string("op")?;
    let value = number(&mut o, "value")?;
    o.finish()?;
    let threshold = match (op, value) {
        (Some((op, _)), Some((value, line))) => Some((op, value, line)),
        (None, None) => None,
        (_, _) => return Err(o.at.here(items[0].line, "`op` and `value` go together")),
    };
    Ok((objective, threshold))
}

fn alerting(
    at: &At<'_>,
    lines: &BTreeMap<String, usize>,
    annotations: &BTreeMap<String, String>,
) -> Result<Alerting, SpecError> {
    let line = |key: &str| lines.get(key).copied().unwrap_or(0);
    if let Some(bad) = annotations
        .keys()
        .find(|k| k.starts_with("reliable.dev/") && !ANNOTATIONS.contains(&k.as_str()))
    {
        return Err(at.error(
            line(bad),
            at.field(bad),
            format!("unknown annotation; known: {}", ANNOTATIONS.join(", ")),
        ));
    }
    let switch = |key: &str| match annotations.get(key).map(String::as_str) {
        None | Some("true") => Ok(Some(AlertTier::default())),
        Some("false") => Ok(None),
        Some(other) => Err(at.error(
            line(key),
            at.field(key),
            format!("expected \"true\" or \"false\", found `{other}`"),
        )),
    };
    let mut out = Alerting {
        page: switch("reliable.dev/page")?,
        ticket: switch("reliable.dev/ticket")?,
        ..Alerting::default()
    };
    for (tier, key) in [
        (&mut out.page, "reliable.dev/page-for"),
        (&mut out.ticket, "reliable.dev/ticket-for"),
    ] {
        if let (Some(tier), Some(text)) = (tier.as_mut(), annotations.get(key)) {
            let window = Window::parse(text).map_err(|m| at.error(line(key), at.field(key), m))?;
            tier.for_ = Some(window);
        }
    }
    if let Some(name) = annotations.get("reliable.dev/alert-name") {
        if !valid_label_name(name) {
            return Err(at.error(
                line("reliable.dev/alert-name"),
                at.field("reliable.dev/alert-name"),
                "an alert name must match [a-zA-Z_][a-zA-Z0-9_]*",
            ));
        }
        out.name = name.clone();
    }
    for (key, annotation) in [
        ("reliable.dev/summary", "summary"),
        ("reliable.dev/runbook", "runbook_url"),
    ] {
        if let Some(v) = annotations.get(key) {
            out.annotations.insert(annotation.to_string(), v.clone());
        }
    }
    Ok(out)
}
