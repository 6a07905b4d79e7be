//! What a run prints and writes: the summary table, JSON, the per-second
//! CSV, the self-contained HTML report, the live progress line and the
//! Prometheus push. docs/tools/load-output.md documents every field.
//!
//! Two kinds of output:
//! - **After the run**, from the plan, the results and the threshold
//!   verdicts: [`summary`] (text), [`json`] and [`html`]. All three read
//!   one [`RunDigest`], built once, so they never disagree on a number.
//! - **During the run**, as [`Observer`](crate::observe::Observer)s told
//!   about every second: [`CsvSeries`] (`--out FILE.csv`), [`Progress`]
//!   (the status line on a terminal) and [`PrometheusPush`]
//!   (`--prometheus-push URL`).
//!
//! Modules:
//! - `units`: `840us`, `12.3ms`, `1.50s`; rates, spans, percentages.
//! - `digest`: the numbers every report shows, with the JSON field names.
//! - `table`: the summary text.
//! - `html`, `plots`, `chart`: the report page, its four charts, and the
//!   SVG line chart they are drawn with.
//! - `csv`, `progress`, `push`: the live observers; `exposition` and
//!   `pushgateway` are the push's text format and its HTTP thread.

mod chart;
mod csv;
mod digest;
mod exposition;
mod html;
mod plots;
mod progress;
mod push;
mod pushgateway;
mod table;
mod units;

#[cfg(test)]
mod fixture;

pub use chart::PALETTE as SERIES_COLORS;
pub use csv::{CsvSeries, CSV_HEADER};
pub use digest::{
    CheckDigest, Percentiles, PhaseDigest, PointDigest, RequestDigest, RunDigest, ScenarioDigest,
    SeriesDigest, ThresholdDigest, UNSENT_TOLERANCE,
};
pub use exposition::{NameMetrics, RunMetrics};
pub use html::escape as escape_html;
pub use progress::{status_line, Progress};
pub use push::{PrometheusPush, DEFAULT_PUSH_EVERY};
pub use pushgateway::{default_run_id, PushError, PushTally};
pub use units::Micros;

use crate::plan::Plan;
use crate::results::Results;
use crate::threshold::Verdict;
use serde::Serialize;

/// The end-of-run table: per scenario and request name, then thresholds.
pub fn summary(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> String {
    table::render(&RunDigest::of(plan, results, verdicts))
}

/// `--json`: the digest plus the per-second series.
#[derive(Serialize)]
struct JsonReport {
    #[serde(flatten)]
    digest: RunDigest,
    series: Vec<SeriesDigest>,
}

/// Everything `summary` says, for machines (`--json`).
pub fn json(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> serde_json::Value {
    let report = JsonReport {
        digest: RunDigest::of(plan, results, verdicts),
        series: results.series.iter().map(SeriesDigest::of).collect(),
    };
    // Plain structs of strings and numbers always serialize; a NaN rate
    // would become `null`, not an error.
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

/// One self-contained HTML file (no scripts or styles from elsewhere).
pub fn html(plan: &Plan, results: &Results, verdicts: &[Verdict]) -> String {
    html::render(&RunDigest::of(plan, results, verdicts), results)
}

#[cfg(test)]
mod tests {
    use super::fixture::{self, HOSTILE};
    use super::*;

    fn report() -> serde_json::Value {
        json(&fixture::plan(), &fixture::results(), &fixture::verdicts())
    }

    #[test]
    fn json_carries_what_the_summary_says() {
        let value = report();
        assert_eq!(value["started_unix_ms"], 1_700_000_000_000u64);
        assert_eq!(value["started"], "2023-11-14T22:13:20.000Z");
        assert_eq!(value["elapsed_s"], 90.0);
        assert_eq!(value["thresholds_passed"], false);
        assert_eq!(value["aborted_by"], "errors: rate < 0.1%");
        let baseline = &value["scenarios"][0];
        assert_eq!(baseline["model"], "open");
        assert_eq!(baseline["scheduled"], 1_200);
        assert_eq!(baseline["dropped"], 90);
        assert_eq!(baseline["skipped_empty_pool"], 4);
        assert_eq!(baseline["rate_held"], false);
        let redirect = &baseline["requests"][1];
        assert_eq!(redirect["name"], "redirect");
        assert_eq!(redirect["errors"], 5);
        assert_eq!(redirect["timeouts"], 2);
        assert_eq!(redirect["unexpected_statuses"]["503"], 3);
        assert_eq!(redirect["status_counts"]["200"], 1_100);
        assert!(redirect["latency"]["p999_us"]
            .as_u64()
            .is_some_and(|us| us >= 5_000_000));
        assert!(redirect["lateness"]["p99_us"]
            .as_u64()
            .is_some_and(|us| us >= 100));
        assert_eq!(redirect["checks"][0]["name"], "is redirect");
        assert_eq!(redirect["checks"][0]["failed"], 1);
        assert_eq!(baseline["total"]["sent"], 1_115);
        assert_eq!(value["scenarios"][1]["model"], "closed");
        assert_eq!(value["scenarios"][1]["rate_held"], true);
        assert_eq!(value["setup"][0]["phase"], "setup");
        assert_eq!(value["setup"][0]["name"], "create-link");
        assert_eq!(value["setup"][0]["rate_per_s"], serde_json::Value::Null);
        assert_eq!(value["setup"][0]["captured"]["slugs <- json /slug"], 100);
        assert_eq!(value["thresholds"][1]["abort_on_fail"], true);
        assert_eq!(value["thresholds"][2]["observed"], serde_json::Value::Null);
        assert_eq!(
            value["thresholds"][2]["key"],
            format!("http_req_duration{{name:{HOSTILE}}}")
        );
    }

    #[test]
    fn json_has_the_series_with_unit_suffixed_fields() {
        let value = report();
        let series = value["series"].as_array().map(Vec::len);
        assert_eq!(series, Some(3));
        let point = &value["series"][1]["points"][0];
        assert_eq!(value["series"][1]["name"], "redirect");
        for field in [
            "t_s",
            "width_s",
            "sent",
            "completed",
            "errors",
            "check_failures",
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us",
            "lateness_p99_us",
        ] {
            assert!(point.get(field).is_some(), "{field} in {point}");
        }
        assert_eq!(point["t_s"], 1.0);
    }

    #[test]
    fn every_json_key_is_snake_case() {
        fn walk(value: &serde_json::Value, path: &str) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, child) in map {
                        // status codes and capture labels are data, not fields
                        let is_data = path.ends_with("status_counts")
                            || path.ends_with("unexpected_statuses")
                            || path.ends_with("captured");
                        if !is_data {
                            assert!(
                                key.chars().all(|c| c.is_ascii_lowercase()
                                    || c.is_ascii_digit()
                                    || c == '_'),
                                "{path}.{key}"
                            );
                        }
                        walk(child, &format!("{path}.{key}"));
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, path)),
                _ => {}
            }
        }
        walk(&report(), "");
    }

    #[test]
    fn the_three_reports_agree() {
        let (plan, results, verdicts) = (fixture::plan(), fixture::results(), fixture::verdicts());
        let text = summary(&plan, &results, &verdicts);
        let page = html(&plan, &results, &verdicts);
        let p99 = Micros(
            results.scenarios[0].requests[1]
                .1
                .latency
                .value_at_quantile(0.99),
        )
        .to_string();
        assert!(text.contains(&p99) && page.contains(&p99), "{p99}");
    }
}
