//! What a run prints and writes: the summary table, JSON, the per-second
//! CSV, the self-contained HTML report, the live progress line and the
//! Prometheus push.
//!
//! STUB (interface fixed, bodies being written).

use crate::plan::Plan;
use crate::results::Results;
use crate::threshold::Verdict;

/// The end-of-run table: per scenario and request name, then thresholds.
pub fn summary(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> String {
    let _ = (plan, results, verdicts);
    todo!("output::summary")
}

/// Everything `summary` says, for machines (`--json`).
pub fn json(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> serde_json::Value {
    let _ = (plan, results, verdicts);
    todo!("output::json")
}

/// One self-contained HTML file (no scripts or styles from elsewhere).
pub fn html(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> String {
    let _ = (plan, results, verdicts);
    todo!("output::html")
}

/// The live one-line status (stub).
pub struct Progress;

impl Progress {
    pub fn new() -> Option<Self> {
        None
    }
}

impl crate::observe::Observer for Progress {
    fn tick(&mut self, _: &Plan, _: &crate::results::Tick) {}
}

/// The per-second CSV (stub).
pub struct CsvSeries;

impl CsvSeries {
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let _ = path;
        Ok(Self)
    }
}

impl crate::observe::Observer for CsvSeries {
    fn tick(&mut self, _: &Plan, _: &crate::results::Tick) {}
}

/// The Pushgateway push (stub).
pub struct PrometheusPush;

impl PrometheusPush {
    pub fn new(url: url::Url) -> Self {
        let _ = url;
        Self
    }
}

impl crate::observe::Observer for PrometheusPush {
    fn tick(&mut self, _: &Plan, _: &crate::results::Tick) {}
}
