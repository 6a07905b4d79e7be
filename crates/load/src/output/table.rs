//! The end-of-run summary: what an SRE reads in the terminal or the CI
//! log. Per scenario, one row per request name with counts, rate and the
//! latency percentiles, then what went wrong (error kinds, failed checks,
//! arrivals never sent), then the thresholds. It fits 100 columns; long
//! request names are cut in the table (the JSON and HTML keep them whole).
//!
//! An open-model run that did not hold its rate says so in capitals: its
//! latencies leave out the requests that would have been slowest, and a
//! reader skimming percentiles must not miss that.

use super::digest::{PhaseDigest, RequestDigest, RunDigest, ScenarioDigest};
use super::units::{self, Micros};
use std::fmt::Write;
use std::time::Duration;

/// The widest a request name gets in the table, so a row stays within 100
/// columns: 2 + 20 + 77.
const NAME_WIDTH: usize = 20;

/// Above this, the generator's own lateness is a visible share of the tail.
const LATENESS_WARNING_US: u64 = 1_000;

pub fn render(digest: &RunDigest) -> String {
    let mut out = String::new();
    header(&mut out, digest);
    phases(&mut out, "setup", &digest.setup);
    for scenario in &digest.scenarios {
        scenario_block(&mut out, scenario);
    }
    phases(&mut out, "teardown", &digest.teardown);
    if digest.scenarios.iter().any(|s| s.model == "open") {
        out.push_str(
            "late99.9: the generator's own delay in sending, p99.9 (already inside the latencies)\n\n",
        );
    }
    thresholds(&mut out, digest);
    out
}

fn header(out: &mut String, digest: &RunDigest) {
    let names: Vec<&str> = digest.scenarios.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        out,
        "reliable load: started {}, load phase {}",
        units::utc(digest.started_unix_ms),
        units::span(Duration::from_secs_f64(digest.elapsed_s.max(0.0))),
    );
    let scenarios = format!("scenarios: {}", names.join(", "));
    let _ = writeln!(out, "{}", units::fit(&scenarios, 100));
    if let Some(dau) = &digest.dau {
        let _ = writeln!(out, "dau: {dau}");
    }
    if let Some(threshold) = &digest.aborted_by {
        let _ = writeln!(
            out,
            "ABORTED: threshold `{threshold}` failed with abort_on_fail and stopped the run early"
        );
    }
    out.push('\n');
}

fn column_header(out: &mut String, with_rate: bool) {
    let _ = writeln!(
        out,
        "  {:<NAME_WIDTH$}{:>9}{:>9}{:>7}{:>8}{:>7}{:>7}{:>7}{:>7}{:>7}{:>9}",
        "name",
        "sent",
        "ok",
        "errors",
        if with_rate { "rate/s" } else { "" },
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "late99.9",
    );
}

fn row(out: &mut String, request: &RequestDigest) {
    let latency = |pick: fn(&super::digest::Percentiles) -> u64| match &request.latency {
        Some(p) => Micros(pick(p)).to_string(),
        None => "-".to_string(),
    };
    let lateness = match &request.lateness {
        Some(p) => Micros(p.p999_us).to_string(),
        None => "-".to_string(),
    };
    let _ = writeln!(
        out,
        "  {:<NAME_WIDTH$}{:>9}{:>9}{:>7}{:>8}{:>7}{:>7}{:>7}{:>7}{:>7}{:>9}",
        units::fit(&request.name, NAME_WIDTH - 1),
        request.sent,
        request.ok,
        request.errors,
        request.rate_per_s.map(units::rate).unwrap_or_default(),
        latency(|p| p.p50_us),
        latency(|p| p.p90_us),
        latency(|p| p.p99_us),
        latency(|p| p.p999_us),
        latency(|p| p.max_us),
        lateness,
    );
}

/// `2 timeouts, 3 unexpected status (503: 3)`, or `None` without errors.
fn error_kinds(request: &RequestDigest) -> Option<String> {
    if request.errors == 0 {
        return None;
    }
    let mut kinds = Vec::new();
    if request.timeouts > 0 {
        kinds.push(format!("{} timeouts", request.timeouts));
    }
    if request.transport_errors > 0 {
        kinds.push(format!("{} transport errors", request.transport_errors));
    }
    if request.unexpected_status > 0 {
        let codes: Vec<String> = request
            .unexpected_statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        kinds.push(format!(
            "{} unexpected status ({})",
            request.unexpected_status,
            codes.join(", ")
        ));
    }
    Some(kinds.join(", "))
}

/// Error kinds and checks, one line per request name that has any.
fn problems(out: &mut String, requests: &[RequestDigest]) {
    for request in requests {
        if let Some(kinds) = error_kinds(request) {
            let _ = writeln!(out, "  errors    {}: {kinds}", request.name);
        }
    }
    for request in requests {
        for check in &request.checks {
            let _ = writeln!(
                out,
                "  checks    {} / {}: {} passed, {} failed ({} passed)",
                request.name,
                check.name,
                check.passed,
                check.failed,
                units::percent(check.passed, check.passed + check.failed),
            );
        }
    }
}

fn phases(out: &mut String, phase_name: &str, phases: &[PhaseDigest]) {
    if phases.is_empty() {
        return;
    }
    let _ = writeln!(out, "{phase_name}");
    column_header(out, false);
    for phase in phases {
        row(out, &phase.request);
    }
    let requests: Vec<RequestDigest> = phases.iter().map(|p| p.request.clone()).collect();
    problems(out, &requests);
    for phase in phases {
        for (label, n) in &phase.captured {
            let _ = writeln!(
                out,
                "  captured  {}: {label}: {n} values",
                phase.request.name
            );
        }
    }
    out.push('\n');
}

fn scenario_block(out: &mut String, scenario: &ScenarioDigest) {
    let shape = match scenario.target_rate_per_s {
        Some(rate) if scenario.model == "open" => format!(
            "{} at {}/s, {} connections",
            scenario.executor,
            units::rate(rate),
            scenario.connections
        ),
        _ => format!(
            "{}, {} connections",
            scenario.executor, scenario.connections
        ),
    };
    let rest = format!(
        ": {shape}, {} from {}",
        units::span(Duration::from_secs_f64(scenario.duration_s.max(0.0))),
        units::span(Duration::from_secs_f64(scenario.start_s.max(0.0))),
    );
    // The name gets what the line has left, and never less than 12.
    let name_width = 100usize
        .saturating_sub("scenario ".len() + rest.chars().count())
        .max(12);
    let first_line = format!("scenario {}{rest}", units::fit(&scenario.name, name_width));
    let _ = writeln!(out, "{first_line}");
    if scenario.model != "open" {
        out.push_str(
            "  closed model: connections send back to back; latencies are service times, not what\n  users arriving on their own would see\n",
        );
    }
    column_header(out, true);
    for request in &scenario.requests {
        row(out, request);
    }
    if scenario.requests.len() > 1 {
        row(out, &scenario.total);
    }
    problems(out, &scenario.requests);
    if scenario.model == "open" {
        schedule(out, scenario);
        if let Some(lateness) = &scenario.total.lateness {
            if lateness.p999_us > LATENESS_WARNING_US {
                let _ = writeln!(
                    out,
                    "  generator ran {} late at p99.9: that much of the tail is the client's, not the server's",
                    Micros(lateness.p999_us)
                );
            }
        }
    } else if scenario.skipped_empty_pool > 0 {
        let _ = writeln!(
            out,
            "  skipped   {} requests: a pool they pick from was empty",
            scenario.skipped_empty_pool
        );
    }
    out.push('\n');
}

fn schedule(out: &mut String, scenario: &ScenarioDigest) {
    let _ = writeln!(
        out,
        "  schedule  {} due, {} sent, {} never sent, {} skipped (empty pool): {}",
        scenario.scheduled,
        scenario.total.sent,
        scenario.dropped,
        scenario.skipped_empty_pool,
        if scenario.rate_held {
            "rate held"
        } else {
            "RATE NOT HELD"
        },
    );
    if !scenario.rate_held {
        let _ = writeln!(
            out,
            "  RATE NOT HELD: {} of {} scheduled arrivals ({}) were never sent, so the latencies",
            scenario.dropped,
            scenario.scheduled,
            units::percent(scenario.dropped, scenario.scheduled),
        );
        let _ = writeln!(
            out,
            "  above leave out the slowest requests users would have seen; add connections or lower the rate"
        );
    }
}

fn thresholds(out: &mut String, digest: &RunDigest) {
    if digest.thresholds.is_empty() {
        out.push_str("thresholds: none\n");
        return;
    }
    let passed = digest.thresholds.iter().filter(|t| t.passed).count();
    let _ = writeln!(
        out,
        "thresholds: {passed} of {} passed{}",
        digest.thresholds.len(),
        if passed == digest.thresholds.len() {
            ""
        } else {
            " (exit code 99)"
        }
    );
    let key_width = digest
        .thresholds
        .iter()
        .map(|t| t.key.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let expression_width = digest
        .thresholds
        .iter()
        .map(|t| t.expression.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    for threshold in &digest.thresholds {
        let observed = match &threshold.observed {
            Some(value) => format!("observed {value}"),
            None => "nothing matched the key".to_string(),
        };
        let _ = writeln!(
            out,
            "  {} {:<key_width$}  {:<expression_width$}  {observed}{}",
            if threshold.passed { "✓" } else { "✗" },
            threshold.key,
            threshold.expression,
            if threshold.abort_on_fail {
                "  (abort_on_fail)"
            } else {
                ""
            },
        );
    }
}

#[cfg(test)]
mod tests;
