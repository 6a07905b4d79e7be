//! The HTML report: one file that holds everything (inline CSS, charts as
//! inline SVG, no script), so it opens offline, from a CI artifact or a
//! mail, years later, exactly as it looked.
//!
//! Every string that came from the user (scenario and request names,
//! threshold keys, check names, capture labels) goes through [`escape`]:
//! a request named `<script>` is text on the page, never markup.

use super::digest::{Percentiles, PhaseDigest, RequestDigest, RunDigest, ScenarioDigest};
use super::plots::{self, Legend};
use super::units::{self, Micros};
use crate::results::Results;
use std::fmt::Write;
use std::time::Duration;

/// Text for HTML content and attribute values (both quote kinds).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1120px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#555;margin:0 0 8px}
.banner{padding:8px 12px;border-radius:4px;margin:8px 0;font-weight:600}
.bad{background:#fdecea;color:#a31515}.good{background:#e8f5e9;color:#1b5e20}.note{background:#fff8e1;color:#6d4c00}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f5f5f5;font-weight:600}td.name,th.name{text-align:left;white-space:normal;min-width:8em;max-width:260px;overflow-wrap:anywhere}
tr.total td{font-weight:600;border-top:1px solid #bbb}
.pass{color:#1b7f2a;font-weight:700}.fail{color:#c62828;font-weight:700}
ul.facts{margin:4px 0 8px;padding-left:20px;font-size:13px}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px}
ul.legend span{display:inline-block;width:14px;height:4px;margin-right:6px;vertical-align:middle}
svg.chart{display:block;margin:6px 0 14px;max-width:100%;height:auto}
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .frame{fill:none;stroke:#999;stroke-width:1}
svg text{font-family:system-ui,sans-serif;fill:#444}svg .tick{font-size:11px}svg .axis{font-size:12px}
svg .title{font-size:14px;font-weight:600;fill:#222}
";

pub fn render(digest: &RunDigest, results: &Results) -> String {
    let names: Vec<&str> = digest.scenarios.iter().map(|s| s.name.as_str()).collect();
    let title = format!(
        "reliable load: {} — {}",
        if names.is_empty() {
            "no scenario".to_string()
        } else {
            names.join(", ")
        },
        units::utc(digest.started_unix_ms)
    );
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(page, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        page,
        "<p class=\"meta\">Started {}, load phase {}, {} scenario{}.</p>",
        units::utc(digest.started_unix_ms),
        units::span(Duration::from_secs_f64(digest.elapsed_s.max(0.0))),
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    );
    if let Some(threshold) = &digest.aborted_by {
        let _ = writeln!(
            page,
            "<p class=\"banner bad\">Aborted: threshold <code>{}</code> failed with abort_on_fail.</p>",
            escape(threshold)
        );
    }
    if let Some(dau) = &digest.dau {
        let _ = writeln!(page, "<p class=\"meta\">DAU model: {}</p>", escape(dau));
    }
    thresholds(&mut page, digest);
    page.push_str("<h2>Summary</h2>\n");
    phases(&mut page, "Setup", &digest.setup);
    for scenario in &digest.scenarios {
        scenario_section(&mut page, scenario);
    }
    phases(&mut page, "Teardown", &digest.teardown);
    charts(&mut page, results);
    page.push_str("</body></html>\n");
    page
}

fn thresholds(page: &mut String, digest: &RunDigest) {
    page.push_str("<h2>Thresholds</h2>\n");
    if digest.thresholds.is_empty() {
        page.push_str("<p class=\"meta\">None.</p>\n");
        return;
    }
    let passed = digest.thresholds.iter().filter(|t| t.passed).count();
    let _ = writeln!(
        page,
        "<p class=\"banner {}\">{passed} of {} thresholds passed{}.</p>",
        if digest.thresholds_passed {
            "good"
        } else {
            "bad"
        },
        digest.thresholds.len(),
        if digest.thresholds_passed {
            ""
        } else {
            " (exit code 99)"
        }
    );
    page.push_str(
        "<table><tr><th></th><th class=\"name\">key</th><th class=\"name\">expression</th>\
         <th>observed</th><th class=\"name\">abort_on_fail</th></tr>\n",
    );
    for threshold in &digest.thresholds {
        let _ = writeln!(
            page,
            "<tr><td class=\"{}\">{}</td><td class=\"name\">{}</td><td class=\"name\">{}</td><td>{}</td><td class=\"name\">{}</td></tr>",
            if threshold.passed { "pass" } else { "fail" },
            if threshold.passed { "✓" } else { "✗" },
            escape(&threshold.key),
            escape(&threshold.expression),
            threshold
                .observed
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "nothing matched".to_string()),
            if threshold.abort_on_fail { "yes" } else { "" },
        );
    }
    page.push_str("</table>\n");
}

const COLUMNS: &str = "<tr><th class=\"name\">name</th><th>sent</th><th>ok</th><th>errors</th>\
<th>timeouts</th><th>transport</th><th>unexpected status</th><th>rate/s</th><th>p50</th><th>p90</th>\
<th>p99</th><th>p99.9</th><th>max</th><th>generator lateness p99.9</th></tr>\n";

fn row(page: &mut String, request: &RequestDigest, class: &str) {
    let latency = |pick: fn(&Percentiles) -> u64| {
        request
            .latency
            .as_ref()
            .map(|p| Micros(pick(p)).to_string())
            .unwrap_or_else(|| "-".to_string())
    };
    let _ = writeln!(
        page,
        "<tr class=\"{class}\"><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&request.name),
        request.sent,
        request.ok,
        request.errors,
        request.timeouts,
        request.transport_errors,
        request.unexpected_status,
        request.rate_per_s.map(units::rate).unwrap_or_default(),
        latency(|p| p.p50_us),
        latency(|p| p.p90_us),
        latency(|p| p.p99_us),
        latency(|p| p.p999_us),
        latency(|p| p.max_us),
        request
            .lateness
            .as_ref()
            .map(|p| Micros(p.p999_us).to_string())
            .unwrap_or_else(|| "-".to_string()),
    );
}

/// Unexpected statuses and checks, as a list under the table.
fn facts(page: &mut String, requests: &[&RequestDigest], extra: &[String]) {
    let mut items: Vec<String> = extra.to_vec();
    for request in requests {
        if !request.unexpected_statuses.is_empty() {
            let codes: Vec<String> = request
                .unexpected_statuses
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            items.push(format!(
                "<b>{}</b>: unexpected statuses {}",
                escape(&request.name),
                escape(&codes.join(", "))
            ));
        }
        for check in &request.checks {
            items.push(format!(
                "<b>{}</b> check <q>{}</q>: {} passed, <span class=\"{}\">{} failed</span> ({} passed)",
                escape(&request.name),
                escape(&check.name),
                check.passed,
                if check.failed > 0 { "fail" } else { "pass" },
                check.failed,
                units::percent(check.passed, check.passed + check.failed)
            ));
        }
    }
    if items.is_empty() {
        return;
    }
    page.push_str("<ul class=\"facts\">");
    for item in items {
        let _ = write!(page, "<li>{item}</li>");
    }
    page.push_str("</ul>\n");
}

fn phases(page: &mut String, title: &str, phases: &[PhaseDigest]) {
    if phases.is_empty() {
        return;
    }
    let _ = writeln!(page, "<h3>{title}</h3>\n<table>{COLUMNS}");
    for phase in phases {
        row(page, &phase.request, "");
    }
    page.push_str("</table>\n");
    let captured: Vec<String> = phases
        .iter()
        .flat_map(|p| {
            p.captured.iter().map(move |(label, n)| {
                format!(
                    "<b>{}</b> captured {n} values: {}",
                    escape(&p.request.name),
                    escape(label)
                )
            })
        })
        .collect();
    let requests: Vec<&RequestDigest> = phases.iter().map(|p| &p.request).collect();
    facts(page, &requests, &captured);
}

fn scenario_section(page: &mut String, scenario: &ScenarioDigest) {
    let shape = match scenario.target_rate_per_s {
        Some(rate) if scenario.model == "open" => format!(
            "open model at {}/s, {} connections",
            units::rate(rate),
            scenario.connections
        ),
        _ => format!(
            "closed model, {} connections back to back (latencies are service times)",
            scenario.connections
        ),
    };
    let _ = writeln!(
        page,
        "<h3>Scenario {}</h3><p class=\"meta\">{}: {shape}; {} from {}.</p>",
        escape(&scenario.name),
        escape(&scenario.executor),
        units::span(Duration::from_secs_f64(scenario.duration_s.max(0.0))),
        units::span(Duration::from_secs_f64(scenario.start_s.max(0.0))),
    );
    let _ = write!(page, "<table>{COLUMNS}");
    for request in &scenario.requests {
        row(page, request, "");
    }
    if scenario.requests.len() > 1 {
        row(page, &scenario.total, "total");
    }
    page.push_str("</table>\n");
    let mut extra = Vec::new();
    if scenario.model == "open" {
        extra.push(format!(
            "schedule: {} due, {} sent, {} never sent, {} skipped (empty pool)",
            scenario.scheduled, scenario.total.sent, scenario.dropped, scenario.skipped_empty_pool
        ));
        if !scenario.rate_held {
            let _ = writeln!(
                page,
                "<p class=\"banner bad\">Rate not held: {} of {} scheduled arrivals ({}) were never sent, \
                 so the latencies leave out the slowest requests users would have seen.</p>",
                scenario.dropped,
                scenario.scheduled,
                units::percent(scenario.dropped, scenario.scheduled)
            );
        }
    }
    let requests: Vec<&RequestDigest> = scenario.requests.iter().collect();
    facts(page, &requests, &extra);
}

fn legend(page: &mut String, legend: &Legend) {
    page.push_str("<ul class=\"legend\">");
    for (scenario, name, color) in &legend.entries {
        let _ = write!(
            page,
            "<li><span style=\"background:{color}\"></span>{} / {}</li>",
            escape(scenario),
            escape(name)
        );
    }
    page.push_str("</ul>\n");
}

fn charts(page: &mut String, results: &Results) {
    let colours = Legend::of(results);
    page.push_str("<h2>Over time</h2>\n");
    if results.series.iter().all(|s| s.points.is_empty()) {
        page.push_str("<p class=\"meta\">No per-second data was recorded.</p>\n");
    } else {
        legend(page, &colours);
        page.push_str(&plots::latency_over_time(results, &colours).svg());
        page.push_str(&plots::rate_over_time(results, &colours).svg());
        page.push_str(&plots::errors_over_time(results, &colours).svg());
    }
    page.push_str("\n<h2>Latency by percentile</h2>\n");
    let percentiles = plots::latency_by_percentile(results, &colours);
    if percentiles.lines.is_empty() {
        page.push_str("<p class=\"meta\">No latency was recorded.</p>\n");
    } else {
        legend(page, &colours);
        page.push_str(&percentiles.svg());
    }
    page.push('\n');
}

#[cfg(test)]
mod tests;
