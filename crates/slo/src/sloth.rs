//! Sloth's `prometheus/v1` spec format.
//!
//! ```yaml
//! version: prometheus/v1
//! service: gateway
//! labels: {team: platform}
//! slos:
//!   - name: availability
//!     objective: 99.9            # percent
//!     sli:
//!       events:
//!         error_query: sum(rate(http_..._count{code=~"5.."}[{{.window}}]))
//!         total_query: sum(rate(http_..._count[{{.window}}]))
//!     alerting:
//!       name: GatewayAvailability
//!       page_alert: {labels: {severity: page}}
//!       ticket_alert: {disable: true}
//! ```
//!
//! Sloth has no period in the file (its CLI picks one); ours is 30 days.
//! Beyond Sloth we accept `for` in `page_alert`/`ticket_alert`.

use crate::fields::{scalar, seq, At, Fields};
use crate::model::{
    valid_label_name, valid_name, AlertTier, Alerting, ErrorEvents, Sli, Slo, Source,
};
use crate::objective::Objective;
use crate::window::Window;
use crate::yaml::Node;
use crate::{promql, SpecError};

pub const VERSION: &str = "prometheus/v1";

/// Sloth's default period.
pub const PERIOD: Window = Window::days(30);

pub fn parse(file: &str, doc: &Node) -> Result<Vec<Slo>, SpecError> {
    let mut top = Fields::new(At::root(file), doc)?;
    let (version, line) = top.required_string("version")?;
    if version != VERSION {
        return Err(top.at.error(
            line,
            "version".into(),
            format!("expected `{VERSION}`, found `{version}`"),
        ));
    }
    let (service, line) = top.required_string("service")?;
    if !valid_name(&service) {
        return Err(top
            .at
            .error(line, "service".into(), "must match [A-Za-z0-9_.-]{1,128}"));
    }
    let labels = labels(&mut top, "labels")?;
    let slos_node = top.required("slos")?;
    let at = top.at.child("slos");
    let items = seq(&at, slos_node)?;
    if items.is_empty() {
        return Err(at.here(slos_node.line, "must list at least one SLO"));
    }
    top.finish()?;
    items
        .iter()
        .enumerate()
        .map(|(i, node)| parse_slo(at.index(i), node, &service, &labels))
        .collect()
}

fn parse_slo(
    at: At<'_>,
    node: &Node,
    service: &str,
    service_labels: &std::collections::BTreeMap<String, String>,
) -> Result<Slo, SpecError> {
    let mut f = Fields::new(at, node)?;
    let (name, line) = f.required_string("name")?;
    if !valid_name(&name) {
        return Err(f
            .at
            .error(line, f.at.field("name"), "must match [A-Za-z0-9_.-]{1,128}"));
    }
    let objective_node = f.required("objective")?;
    let text = scalar(&f.at.child("objective"), objective_node)?;
    let objective = text
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number"))
        .and_then(Objective::from_percent)
        .map_err(|m| f.at.error(objective_node.line, f.at.field("objective"), m))?;
    let description = f.string("description")?.map(|d| d.0).unwrap_or_default();
    let mut all_labels = service_labels.clone();
    all_labels.extend(labels(&mut f, "labels")?);
    let sli = parse_sli(f.at.child("sli"), f.required("sli")?)?;
    let alerting = match f.take("alerting") {
        Some(node) => parse_alerting(f.at.child("alerting"), node)?,
        None => Alerting {
            page: Some(AlertTier::default()),
            ticket: Some(AlertTier::default()),
            ..Alerting::default()
        },
    };
    let source = Source {
        file: f.at.file.to_string(),
        line: f.line,
    };
    f.finish()?;
    Ok(Slo {
        service: service.to_string(),
        name,
        description,
        objective,
        period: PERIOD,
        sli,
        labels: all_labels,
        alerting,
        source,
    })
}

fn parse_sli(at: At<'_>, node: &Node) -> Result<Sli, SpecError> {
    let mut f = Fields::new(at, node)?;
    let events = f.take("events");
    let raw = f.take("raw");
    if f.take("plugin").is_some() {
        return Err(f.at.error(
            f.line,
            f.at.field("plugin"),
            "Sloth SLI plugins are not supported; use events or raw",
        ));
    }
    let sli = match (events, raw) {
        (Some(_), Some(_)) => {
            return Err(f.at.error(
                f.key_line("raw"),
                f.at.field("raw"),
                "contradicts `events`: an SLI is either events or raw",
            ))
        }
        (None, None) => {
            return Err(f.at.here(
                f.line,
                "needs `events` (error_query, total_query) or `raw` (error_ratio_query)",
            ))
        }
        (Some(events), None) => {
            let mut e = Fields::new(f.at.child("events"), events)?;
            let (error, error_line) = e.required_string("error_query")?;
            let (total, total_line) = e.required_string("total_query")?;
            let errors = promql::template(&e.at.child("error_query"), error_line, &error, true)?;
            let total = promql::template(&e.at.child("total_query"), total_line, &total, true)?;
            e.finish()?;
            Sli::Events {
                errors: ErrorEvents::Bad(errors),
                total,
                latency_threshold: None,
            }
        }
        (None, Some(raw)) => {
            let mut r = Fields::new(f.at.child("raw"), raw)?;
            let (query, line) = r.required_string("error_ratio_query")?;
            let error_ratio =
                promql::template(&r.at.child("error_ratio_query"), line, &query, true)?;
            r.finish()?;
            Sli::Raw { error_ratio }
        }
    };
    f.finish()?;
    Ok(sli)
}

fn parse_alerting(at: At<'_>, node: &Node) -> Result<Alerting, SpecError> {
    let mut f = Fields::new(at, node)?;
    let name = match f.string("name")? {
        Some((name, line)) if !valid_label_name(&name) => {
            return Err(f.at.error(
                line,
                f.at.field("name"),
                "an alert name must match [a-zA-Z_][a-zA-Z0-9_]*",
            ))
        }
        Some((name, _)) => name,
        None => String::new(),
    };
    let labels = labels(&mut f, "labels")?;
    let annotations = f.string_map("annotations")?;
    let page = tier(&mut f, "page_alert")?;
    let ticket = tier(&mut f, "ticket_alert")?;
    f.finish()?;
    Ok(Alerting {
        name,
        labels,
        annotations,
        page,
        ticket,
    })
}

fn tier(parent: &mut Fields<'_, '_>, key: &str) -> Result<Option<AlertTier>, SpecError> {
    let Some(node) = parent.take(key) else {
        return Ok(Some(AlertTier::default()));
    };
    let mut f = Fields::new(parent.at.child(key), node)?;
    let disabled = f.bool("disable")?.unwrap_or(false);
    let labels = labels(&mut f, "labels")?;
    let annotations = f.string_map("annotations")?;
    let for_ = match f.string("for")? {
        None => None,
        Some((text, line)) => {
            Some(Window::parse(&text).map_err(|m| f.at.error(line, f.at.field("for"), m))?)
        }
    };
    f.finish()?;
    Ok((!disabled).then_some(AlertTier {
        labels,
        annotations,
        for_,
    }))
}

/// A label map whose keys are valid Prometheus label names.
pub(crate) fn labels(
    f: &mut Fields<'_, '_>,
    key: &str,
) -> Result<std::collections::BTreeMap<String, String>, SpecError> {
    let line = f.line;
    let map = f.string_map(key)?;
    if let Some(bad) = map.keys().find(|k| !valid_label_name(k)) {
        return Err(f.at.error(
            line,
            f.at.field(key),
            format!("`{bad}` is not a valid label name"),
        ));
    }
    Ok(map)
}
