use super::super::fixture::{self, HOSTILE};
use super::*;

fn summary() -> String {
    let digest = RunDigest::of(&fixture::plan(), &fixture::results(), &fixture::verdicts());
    render(&digest)
}

#[test]
fn every_line_fits_100_columns() {
    let text = summary();
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}\n{text}",
            line.chars().count()
        );
    }
}

#[test]
fn rows_per_scenario_and_request_name_with_totals() {
    let text = summary();
    let baseline = text
        .lines()
        .skip_while(|l| !l.starts_with("scenario baseline"))
        .take(5)
        .collect::<Vec<_>>();
    assert!(
        baseline[0].contains("constant-arrival-rate at 20.0/s, 32 connections, 1m00s"),
        "{text}"
    );
    assert!(baseline[1].contains("p99.9") && baseline[1].contains("late99.9"));
    assert!(
        baseline[2].trim_start().starts_with("create"),
        "{baseline:?}"
    );
    // redirect: 1,105 sent, 1,100 ok, 5 errors, 1,105 completed in 60 s.
    let redirect: Vec<&str> = baseline[3].split_whitespace().collect();
    assert_eq!(&redirect[..5], ["redirect", "1105", "1100", "5", "18.4"]);
    assert!(baseline[4].trim_start().starts_with("all"));
    assert!(text.contains("5.00s"), "the timeouts own the max:\n{text}");
}

#[test]
fn errors_checks_and_the_schedule_are_spelled_out() {
    let text = summary();
    assert!(
        text.contains("errors    redirect: 2 timeouts, 3 unexpected status (503: 3)"),
        "{text}"
    );
    assert!(
        text.contains("checks    redirect / is redirect: 1100 passed, 1 failed (99.91% passed)"),
        "{text}"
    );
    assert!(
        text.contains("1200 due, 1115 sent, 90 never sent, 4 skipped (empty pool): RATE NOT HELD"),
        "{text}"
    );
    assert!(text.contains("90 of 1200 scheduled arrivals (7.50%) were never sent"));
    assert!(
        text.contains("closed model: connections send back to back; latencies are service times")
    );
    assert!(text.contains("ABORTED: threshold `errors: rate < 0.1%`"));
}

#[test]
fn setup_shows_its_captures() {
    let text = summary();
    assert!(
        text.starts_with(
            "reliable load: started 2023-11-14 22:13:20 UTC, load phase 1m30s\n\
             scenarios: baseline, <script>alert(\"x\")</script>\n"
        ),
        "{text}"
    );
    assert!(text.contains("\nsetup\n"), "{text}");
    assert!(text.contains("captured  create-link: slugs <- json /slug: 100 values"));
    assert!(text.contains("checks    create-link / created: 1 passed, 0 failed (100% passed)"));
}

#[test]
fn thresholds_with_marks_and_observed_values() {
    let text = summary();
    assert!(
        text.contains("thresholds: 1 of 3 passed (exit code 99)"),
        "{text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ✓") || l.starts_with("  ✗"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("http_req_duration") && lines[0].contains("observed 12.3ms"));
    assert!(lines[1].starts_with("  ✗ errors") && lines[1].ends_with("(abort_on_fail)"));
    assert!(lines[2].contains(HOSTILE) && lines[2].contains("nothing matched the key"));
}

#[test]
fn a_held_rate_and_no_thresholds_are_quiet() {
    let mut results = fixture::results();
    results.scenarios[0].dropped = 1;
    results.aborted_by = None;
    let text = render(&RunDigest::of(&fixture::plan(), &results, &[]));
    assert!(!text.contains("NOT HELD"), "{text}");
    assert!(text.contains("rate held"));
    assert!(!text.contains("ABORTED"));
    assert!(text.ends_with("thresholds: none\n"));
}
