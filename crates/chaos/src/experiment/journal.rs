//! The record of a run: every check with every probe's value against its
//! tolerance (and when, in seconds from the start), every action, the
//! deviations, and the outcome. `--json` prints it as is; people get
//! [`Journal::render`].

use super::exit;
use super::model::Phase;
use super::tolerance::show;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The hypothesis held before, during and after.
    Ok,
    /// A probe left its tolerance.
    Deviated,
    /// An action failed: the hypothesis was not tested to the end.
    Aborted,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Journal {
    pub title: String,
    pub status: Status,
    pub deviated: bool,
    /// Unix milliseconds.
    pub started_unix_ms: u64,
    pub duration_s: f64,
    pub checks: Vec<Check>,
    pub activities: Vec<ActivityRecord>,
    /// The readings outside their tolerance.
    pub deviations: Vec<Reading>,
    /// Processes stopped and files removed at the end.
    pub clean_up: Vec<String>,
    /// Why the run aborted, if it did.
    pub error: Option<String>,
}

/// One check of the hypothesis.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub phase: Phase,
    pub at_s: f64,
    pub ok: bool,
    pub readings: Vec<Reading>,
}

/// One probe's value against its tolerance.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub probe: String,
    pub phase: Phase,
    pub at_s: f64,
    pub value: Option<f64>,
    pub error: Option<String>,
    pub tolerance: String,
    pub ok: bool,
    /// Which bound broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// How the value came about (a count's two sides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActivityRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `method` or `rollbacks`.
    pub section: &'static str,
    pub started_s: f64,
    pub duration_s: f64,
    pub ok: bool,
    pub note: String,
}

impl Journal {
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Ok => exit::OK,
            Status::Deviated => exit::DEVIATED,
            Status::Aborted => exit::ABORTED,
            Status::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "experiment: {}", self.title);
        for check in &self.checks {
            let _ = writeln!(
                out,
                "  {:>7.1}s {:<6} {}",
                check.at_s,
                phase_name(check.phase),
                if check.ok { "ok" } else { "DEVIATED" }
            );
        }
        for activity in &self.activities {
            let _ = writeln!(
                out,
                "  {:>7.1}s {:<9} {} ({}): {}{}",
                activity.started_s,
                activity.section,
                activity.name,
                activity.kind,
                if activity.ok { "" } else { "FAILED: " },
                activity.note
            );
        }
        for reading in &self.deviations {
            let _ = writeln!(out, "  deviation: {}", reading_line(reading));
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "  error: {error}");
        }
        let _ = writeln!(
            out,
            "result: {} after {:.1}s (exit {})",
            match self.status {
                Status::Ok => "the hypothesis held",
                Status::Deviated => "DEVIATED",
                Status::Aborted => "ABORTED",
                Status::Interrupted => "INTERRUPTED",
            },
            self.duration_s,
            self.exit_code()
        );
        out
    }
}

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Before => "before",
        Phase::During => "during",
        Phase::After => "after",
    }
}

/// `p99 (during, 12.0s) = 31.2, tolerance <= 250: ok`.
pub fn reading_line(reading: &Reading) -> String {
    let value = match (&reading.value, &reading.error) {
        (Some(v), _) => show(*v),
        (None, Some(e)) => format!("error ({e})"),
        (None, None) => "none".to_string(),
    };
    let mut line = format!(
        "{} ({}, {:.1}s) = {value}, tolerance {}: {}",
        reading.probe,
        phase_name(reading.phase),
        reading.at_s,
        reading.tolerance,
        if reading.ok { "ok" } else { "OUT" }
    );
    if let Some(why) = &reading.why {
        let _ = write!(line, " ({why})");
    }
    if let Some(detail) = &reading.detail {
        let _ = write!(line, " [{detail}]");
    }
    line
}
