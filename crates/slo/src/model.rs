//! The one internal model both spec formats parse into.
//!
//! Everything downstream (rules, live evaluation, status, policy) reads
//! only these types, so a new spec format is one more parser, not one
//! more code path. Values are already checked: an [`Slo`] that exists is
//! one we can generate rules for.

use crate::objective::Objective;
use crate::window::Window;
use std::collections::BTreeMap;

/// The `{{.window}}` placeholder of Sloth queries.
pub const WINDOW_PLACEHOLDER: &str = "{{.window}}";

#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub service: String,
    pub name: String,
    pub description: String,
    pub objective: Objective,
    /// The rolling period the error budget is computed over.
    pub period: Window,
    pub sli: Sli,
    /// Labels added to every generated series and alert.
    pub labels: BTreeMap<String, String>,
    pub alerting: Alerting,
    pub source: Source,
}

impl Slo {
    /// `service-name`: unique across all specs, the `slo_id` label.
    pub fn id(&self) -> String {
        format!("{}-{}", self.service, self.name)
    }
}

/// Where an SLO was declared, for errors found after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Counted events: errors (directly or as `total - good`) over total.
    Events {
        errors: ErrorEvents,
        total: QueryTemplate,
        /// For latency SLIs from a histogram: the bucket bound in seconds.
        latency_threshold: Option<f64>,
    },
    /// A ready-made error ratio; no traffic weights are known.
    Raw { error_ratio: QueryTemplate },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ErrorEvents {
    Bad(QueryTemplate),
    Good(QueryTemplate),
}

/// A PromQL query with a `{{.window}}` placeholder, already checked to
/// parse once the placeholder is filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplate(String);

impl QueryTemplate {
    /// Only [`crate::promql`] builds these, after checking the query parses.
    pub(crate) fn new_checked(text: String) -> Self {
        Self(text)
    }

    pub fn render(&self, window: Window) -> String {
        self.0.replace(WINDOW_PLACEHOLDER, &window.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alerting {
    /// The `alertname` of both tiers (they differ by `severity`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `None`: the tier is switched off.
    pub page: Option<AlertTier>,
    pub ticket: Option<AlertTier>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertTier {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// How long the condition must hold before firing.
    pub for_: Option<Window>,
}

/// `[A-Za-z0-9_.-]{1,128}`: SLO and service names end up in label values,
/// group names and file names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A Prometheus label or alert name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("gateway-availability"));
        assert!(!valid_name("has space"));
        assert!(!valid_name(""));
        assert!(valid_label_name("slo_id"));
        assert!(!valid_label_name("9lives"));
        assert!(!valid_label_name("a-b"));
    }

    #[test]
    fn template_renders_the_window() {
        let q = QueryTemplate::new_checked("sum(rate(x[{{.window}}]))".into());
        assert_eq!(q.render(Window::hours(6)), "sum(rate(x[6h]))");
    }
}
