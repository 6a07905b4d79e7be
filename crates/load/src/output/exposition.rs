//! The run's metrics in the Prometheus text exposition format (0.0.4), as
//! the Pushgateway takes them. Kept apart from the pushing so the text can
//! be tested without a network.
//!
//! Label values are user input (scenario, request and check names), so
//! they are escaped as the format says: `\` `"` and line feeds.

use std::collections::BTreeMap;
use std::fmt::Write;

/// What one (scenario, request name) has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameMetrics {
    pub ok: u64,
    pub unexpected_status: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    /// Per check name: (passed, failed).
    pub checks: BTreeMap<String, (u64, u64)>,
    /// p50, p90, p99, p99.9 in microseconds, over the latest push interval
    /// that had answers.
    pub latency_us: Option<[u64; 4]>,
    /// The generator's lateness p99.9, same interval.
    pub lateness_p999_us: Option<u64>,
}

/// Everything one push carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    /// Keyed by (scenario, request name).
    pub names: BTreeMap<(String, String), NameMetrics>,
    /// Per scenario: arrivals never sent plus requests skipped on an empty
    /// pool (the `dropped` threshold metric).
    pub dropped: BTreeMap<String, u64>,
    pub in_flight: u64,
    pub queued: u64,
}

pub const QUANTILES: [&str; 4] = ["0.5", "0.9", "0.99", "0.999"];

/// `\` -> `\\`, `"` -> `\"`, line feed -> `\n`.
pub fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

impl RunMetrics {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let labels = |(scenario, name): &(String, String)| {
            format!(
                "scenario=\"{}\",name=\"{}\"",
                label_value(scenario),
                label_value(name)
            )
        };

        family(
            &mut out,
            "reliable_load_requests_total",
            "counter",
            "Requests that ended, by outcome (ok, unexpected_status, timeout, transport_error).",
        );
        for (key, m) in &self.names {
            for (outcome, n) in [
                ("ok", m.ok),
                ("unexpected_status", m.unexpected_status),
                ("timeout", m.timeouts),
                ("transport_error", m.transport_errors),
            ] {
                let _ = writeln!(
                    out,
                    "reliable_load_requests_total{{{},outcome=\"{outcome}\"}} {n}",
                    labels(key)
                );
            }
        }

        family(
            &mut out,
            "reliable_load_checks_total",
            "counter",
            "Checks evaluated, by check name and result (passed, failed).",
        );
        for (key, m) in &self.names {
            for (check, (passed, failed)) in &m.checks {
                for (result, n) in [("passed", passed), ("failed", failed)] {
                    let _ = writeln!(
                        out,
                        "reliable_load_checks_total{{{},check=\"{}\",result=\"{result}\"}} {n}",
                        labels(key),
                        label_value(check)
                    );
                }
            }
        }

        family(
            &mut out,
            "reliable_load_latency_seconds",
            "gauge",
            "Latency quantiles over the last push interval, from the due time (open model).",
        );
        for (key, m) in &self.names {
            if let Some(latency) = m.latency_us {
                for (quantile, us) in QUANTILES.iter().zip(latency) {
                    let _ = writeln!(
                        out,
                        "reliable_load_latency_seconds{{{},quantile=\"{quantile}\"}} {}",
                        labels(key),
                        seconds(us)
                    );
                }
            }
        }

        family(
            &mut out,
            "reliable_load_generator_lateness_seconds",
            "gauge",
            "The load generator's own lateness in sending, p99.9 over the last push interval.",
        );
        for (key, m) in &self.names {
            if let Some(us) = m.lateness_p999_us {
                let _ = writeln!(
                    out,
                    "reliable_load_generator_lateness_seconds{{{},quantile=\"0.999\"}} {}",
                    labels(key),
                    seconds(us)
                );
            }
        }

        family(
            &mut out,
            "reliable_load_dropped_total",
            "counter",
            "Arrivals never sent (open model) plus requests skipped on an empty pool.",
        );
        for (scenario, n) in &self.dropped {
            let _ = writeln!(
                out,
                "reliable_load_dropped_total{{scenario=\"{}\"}} {n}",
                label_value(scenario)
            );
        }

        family(
            &mut out,
            "reliable_load_in_flight",
            "gauge",
            "Requests on the wire.",
        );
        let _ = writeln!(out, "reliable_load_in_flight {}", self.in_flight);
        family(
            &mut out,
            "reliable_load_queued",
            "gauge",
            "Arrivals due and waiting for a free connection.",
        );
        let _ = writeln!(out, "reliable_load_queued {}", self.queued);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> RunMetrics {
        let mut names = BTreeMap::new();
        names.insert(
            ("base\"line".to_string(), "re\\dir\nect".to_string()),
            NameMetrics {
                ok: 10,
                unexpected_status: 1,
                timeouts: 2,
                transport_errors: 3,
                checks: BTreeMap::from([("is \"302\"".to_string(), (9, 1))]),
                latency_us: Some([1_200, 3_000, 25_000, 1_500_000]),
                lateness_p999_us: Some(80),
            },
        );
        names.insert(
            ("baseline".to_string(), "idle".to_string()),
            NameMetrics::default(),
        );
        RunMetrics {
            names,
            dropped: BTreeMap::from([("baseline".to_string(), 4)]),
            in_flight: 7,
            queued: 2,
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let text = metrics().text();
        assert!(text.contains(
            "reliable_load_requests_total{scenario=\"base\\\"line\",name=\"re\\\\dir\\nect\",outcome=\"ok\"} 10\n"
        ), "{text}");
        assert!(
            text.contains("check=\"is \\\"302\\\"\",result=\"failed\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let text = metrics().text();
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap_or_default().to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            // name{labels} value, or name value; the value parses.
            let (series, value) = line.rsplit_once(' ').unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap_or_default();
            assert_eq!(families.last().map(String::as_str), Some(name), "{line}");
            assert!(!line.contains('\n'));
        }
        let mut unique = families.clone();
        unique.dedup();
        assert_eq!(unique.len(), families.len(), "one TYPE line per family");
        assert_eq!(families.len(), 7);
    }

    #[test]
    fn quantiles_in_seconds_and_idle_names_without_latency() {
        let text = metrics().text();
        assert!(
            text.contains("name=\"re\\\\dir\\nect\",quantile=\"0.99\"} 0.025\n"),
            "{text}"
        );
        assert!(text.contains("quantile=\"0.999\"} 1.5\n"));
        assert!(!text.contains("name=\"idle\",quantile"), "{text}");
        assert!(text.contains("reliable_load_requests_total{scenario=\"baseline\",name=\"idle\",outcome=\"timeout\"} 0\n"));
        assert!(text.contains("reliable_load_dropped_total{scenario=\"baseline\"} 4\n"));
        assert!(text.contains("reliable_load_in_flight 7\n"));
        assert!(text.contains("reliable_load_queued 2\n"));
    }
}
