use super::*;
use crate::results::{record, Outcome, ScenarioResults};

fn threshold(key: &str, expression: &str) -> Threshold {
    Threshold::parse(key, expression, false, Duration::ZERO)
        .unwrap_or_else(|e| panic!("{key}: {expression}: {e}"))
}

fn refusal(key: &str, expression: &str) -> String {
    match Threshold::parse(key, expression, false, Duration::ZERO) {
        Ok(t) => panic!("{key}: {expression} parsed as {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_the_documented_forms() {
    let t = threshold("http_req_duration", "p(99) < 25ms");
    assert_eq!(t.metric(), "http_req_duration");
    assert_eq!(
        (t.aggregate, t.op, t.bound),
        (
            Aggregate::Percentile(0.99),
            Op::Lt,
            Bound {
                value: 25_000.0,
                unit: Unit::Millis
            }
        )
    );
    let t = threshold("http_req_duration", "p(99.9)<=1s");
    assert_eq!(t.op, Op::Le);
    assert_eq!(
        t.bound,
        Bound {
            value: 1e6,
            unit: Unit::Seconds
        }
    );
    assert!(matches!(t.aggregate, Aggregate::Percentile(q) if (q - 0.999).abs() < 1e-12));
    let t = threshold("generator_lateness", "avg < 300us");
    assert_eq!(
        (t.aggregate, t.bound.value, t.bound.unit),
        (Aggregate::Avg, 300.0, Unit::Micros)
    );
    let t = threshold("http_req_duration", "med < 5");
    assert_eq!(
        (t.aggregate, t.bound.value, t.bound.unit),
        (Aggregate::Percentile(0.5), 5_000.0, Unit::Millis)
    );
    let t = threshold("errors", "rate < 0.1%");
    assert_eq!(
        (t.aggregate, t.bound.unit),
        (Aggregate::Rate, Unit::Percent)
    );
    assert!((t.bound.value - 0.001).abs() < 1e-15);
    let same = threshold("errors", "rate(errors) < 0.1%");
    assert_eq!(
        (same.aggregate, same.op, same.bound),
        (t.aggregate, t.op, t.bound)
    );
    let t = threshold("errors", "rate<0.001");
    assert_eq!(
        t.bound,
        Bound {
            value: 0.001,
            unit: Unit::Ratio
        }
    );
    let t = threshold("dropped", "count == 0");
    assert_eq!(
        (t.aggregate, t.op, t.bound),
        (
            Aggregate::Count,
            Op::Eq,
            Bound {
                value: 0.0,
                unit: Unit::Count
            }
        )
    );
    assert_eq!(
        threshold("dropped", "count(dropped) == 0").aggregate,
        Aggregate::Count
    );
    let t = threshold("checks", "rate > 99.9%");
    assert_eq!((t.aggregate, t.op), (Aggregate::Rate, Op::Gt));
    assert_eq!(threshold("checks", "rate(checks) >= 99%").op, Op::Ge);
    assert_eq!(
        threshold("http_reqs", "rate != 100").bound,
        Bound {
            value: 100.0,
            unit: Unit::PerSecond
        }
    );
    assert_eq!(threshold("http_reqs", "count > 10").op, Op::Gt);
    assert_eq!(
        threshold("http_req_duration", "max <= 2.5 s").bound.value,
        2.5e6
    );
    assert_eq!(
        threshold("http_req_duration", "min >= 1e3us").bound.value,
        1e3
    );
}

#[test]
fn parses_tags() {
    let t = threshold("http_req_duration{name:redirect}", "p(99) < 25ms");
    assert_eq!((t.name_tag(), t.scenario_tag()), (Some("redirect"), None));
    let t = threshold(
        "http_req_duration{ scenario: viral , name : is redirect }",
        "p(99) < 25ms",
    );
    assert_eq!(
        (t.name_tag(), t.scenario_tag()),
        (Some("is redirect"), Some("viral"))
    );
    assert_eq!(
        t.key,
        "http_req_duration{ scenario: viral , name : is redirect }"
    );
    assert_eq!(t.expression, "p(99) < 25ms");
    let t = Threshold::parse("errors", "rate < 1%", true, Duration::from_secs(10)).expect("parses");
    assert!(t.abort_on_fail);
    assert_eq!(t.delay_abort_eval, Duration::from_secs(10));
}

#[test]
fn refuses_bad_keys_and_says_what_is_allowed() {
    let cases = [
        ("latency", "p(99) < 1ms", "unknown metric `latency`; metrics: http_req_duration, generator_lateness, http_reqs, errors, checks, dropped"),
        ("http_req_duration{method:GET}", "p(99) < 1ms", "unknown tag `method` in `http_req_duration{method:GET}`; tags: name, scenario"),
        ("http_req_duration{redirect}", "p(99) < 1ms", "`redirect` in `http_req_duration{redirect}` is not `tag:value`; tags: name, scenario"),
        ("http_req_duration{name:a", "p(99) < 1ms", "tags go in braces at the end"),
        ("http_req_duration{name:a,name:b}", "p(99) < 1ms", "tag `name` is given twice"),
        ("http_req_duration{name:}", "p(99) < 1ms", "tag `name` in `http_req_duration{name:}` has no value"),
    ];
    for (key, expression, want) in cases {
        let got = refusal(key, expression);
        assert!(got.contains(want), "{key}: {got}");
    }
}

#[test]
fn refuses_bad_expressions_and_says_what_is_allowed() {
    let cases = [
        (
            "errors",
            "p(99) < 1ms",
            "`p(99)` does not apply to `errors`; it takes count, rate",
        ),
        (
            "dropped",
            "rate < 1%",
            "`rate` does not apply to `dropped`; it takes count",
        ),
        (
            "http_req_duration",
            "count < 10",
            "`count` does not apply to `http_req_duration`; it takes p(N), avg, med, min, max",
        ),
        ("errors", "med < 1", "`med` does not apply to `errors`"),
        (
            "http_req_duration",
            "mean < 1ms",
            "unknown aggregate `mean`; `http_req_duration` takes p(N), avg, med, min, max",
        ),
        (
            "errors",
            "rate(checks) < 0.1%",
            "`rate(checks)` names the metric `checks`, but the key's metric is `errors`",
        ),
        (
            "http_req_duration",
            "p(99) 25ms",
            "has no operator: write `AGGREGATE OPERATOR VALUE`",
        ),
        ("dropped", "count = 0", "(`=` alone is not one: write `==`)"),
        (
            "http_req_duration",
            "p(99) < 25xs",
            "`25xs`: a duration takes us, ms or s (ms when none)",
        ),
        (
            "http_req_duration",
            "p(99) < fast",
            "`fast`: expected a number that is not negative",
        ),
        (
            "http_req_duration",
            "p(99) < -1ms",
            "expected a number that is not negative",
        ),
        (
            "http_req_duration",
            "p(101) < 1ms",
            "`p(101)`: the percentile is from 0 to 100",
        ),
        (
            "http_req_duration",
            "p(x) < 1ms",
            "`p(x)`: the percentile is a number",
        ),
        (
            "http_req_duration",
            "p < 1ms",
            "a percentile names its rank",
        ),
        ("http_req_duration", "p(99 < 1ms", "a `(` without its `)`"),
        (
            "errors",
            "rate < 5",
            "a rate is a percentage like 0.1% or a fraction from 0 to 1",
        ),
        ("errors", "rate < 150%", "a rate is at most 100%"),
        ("errors", "count < 1.5", "`1.5`: a count is a whole number"),
        (
            "dropped",
            "count == 0 requests",
            "a count is a whole number",
        ),
        (
            "http_reqs",
            "rate > 5%",
            "the rate of http_reqs is requests per second",
        ),
    ];
    for (key, expression, want) in cases {
        let got = refusal(key, expression);
        assert!(got.contains(want), "{key}: {expression}: {got}");
    }
}

fn answered(latencies_us: &[u64], failing: usize) -> Stats {
    let mut stats = Stats::default();
    for (i, &micros) in latencies_us.iter().enumerate() {
        stats.sent += 1;
        let ok = i >= failing;
        let status = if ok { 200 } else { 500 };
        stats.record_outcome(Outcome::Status(status), ok, Duration::from_micros(micros));
    }
    stats
}

fn scenario(name: &str, dropped: u64, requests: Vec<(&str, Stats)>) -> ScenarioResults {
    ScenarioResults {
        name: name.to_string(),
        executor: "constant-arrival-rate",
        target_rate: Some(10.0),
        connections: 8,
        start: Duration::ZERO,
        duration: Duration::from_secs(10),
        scheduled: 0,
        dropped,
        requests: requests
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect(),
    }
}

/// baseline: create (100..=1000 us, one 500), redirect (90 x 500 us,
/// 89 checks passed, 1 failed); viral: redirect (100 x 2 ms, 3
/// skipped on an empty pool, 5 dropped). 200 completed in 20 s.
fn run() -> Results {
    let create: Vec<u64> = (1..=10).map(|i| i * 100).collect();
    let mut create = answered(&create, 1);
    for _ in 0..10 {
        record(&mut create.lateness, Duration::from_micros(5));
    }
    let mut baseline_redirect = answered(&[500; 90], 0);
    for i in 0..90 {
        baseline_redirect.record_check("is redirect", i != 0);
    }
    let mut viral_redirect = answered(&[2_000; 100], 0);
    viral_redirect.skipped_empty_pool = 3;
    for _ in 0..100 {
        record(&mut viral_redirect.lateness, Duration::from_micros(50));
    }
    Results {
        scenarios: vec![
            scenario(
                "baseline",
                0,
                vec![("create", create), ("redirect", baseline_redirect)],
            ),
            scenario("viral", 5, vec![("redirect", viral_redirect)]),
        ],
        elapsed: Duration::from_secs(20),
        ..Results::default()
    }
}

fn observe(key: &str, expression: &str) -> (Option<String>, bool) {
    let verdict = threshold(key, expression).evaluate(&run());
    assert_eq!(
        (verdict.key.as_str(), verdict.expression.as_str()),
        (key, expression)
    );
    (verdict.observed, verdict.passed)
}

fn seen(text: &str, passed: bool) -> (Option<String>, bool) {
    (Some(text.to_string()), passed)
}

#[test]
fn latency_aggregates_in_the_expressions_unit() {
    assert_eq!(
        observe("http_req_duration", "p(50) < 1ms"),
        seen("1ms", false)
    );
    assert_eq!(
        observe("http_req_duration", "p(50) <= 1ms"),
        seen("1ms", true)
    );
    assert_eq!(
        observe("http_req_duration", "p(99) < 2500us"),
        seen("2000us", true)
    );
    assert_eq!(
        observe("http_req_duration", "med < 0.001s"),
        seen("0.001s", false)
    );
    assert_eq!(
        observe("http_req_duration", "avg < 2ms"),
        seen("1.25ms", true)
    );
    assert_eq!(
        observe("http_req_duration", "min >= 0.1ms"),
        seen("0.1ms", true)
    );
    assert_eq!(
        observe("http_req_duration", "max > 2ms"),
        seen("2ms", false)
    );
    assert_eq!(
        observe("generator_lateness", "p(99.9) < 1ms"),
        seen("0.05ms", true)
    );
    assert_eq!(
        observe("generator_lateness", "avg < 40us"),
        seen("45.9us", false)
    );
}

#[test]
fn tags_select_scenarios_and_names() {
    assert_eq!(
        observe("http_req_duration{name:create}", "p(99) < 1ms"),
        seen("1ms", false)
    );
    assert_eq!(
        observe("http_req_duration{name:create}", "avg < 1ms"),
        seen("0.55ms", true)
    );
    assert_eq!(
        observe("http_req_duration{scenario:viral}", "p(1) == 2ms"),
        seen("2ms", true)
    );
    assert_eq!(
        observe(
            "http_req_duration{scenario:baseline,name:redirect}",
            "max == 500us"
        ),
        seen("500us", true)
    );
    assert_eq!(
        observe("http_req_duration{name:redirect}", "p(50) < 1ms"),
        seen("2ms", false)
    );
    assert_eq!(
        observe("generator_lateness{scenario:viral}", "max < 1ms"),
        seen("0.05ms", true)
    );
}

#[test]
fn counts_and_rates() {
    assert_eq!(observe("http_reqs", "count == 200"), seen("200", true));
    assert_eq!(observe("http_reqs", "rate >= 10"), seen("10/s", true));
    assert_eq!(
        observe("http_reqs{scenario:viral}", "rate > 5"),
        seen("5/s", false)
    );
    assert_eq!(observe("errors", "rate < 0.1%"), seen("0.5%", false));
    assert_eq!(
        observe("errors", "rate(errors) < 0.01"),
        seen("0.005", true)
    );
    assert_eq!(observe("errors", "count <= 1"), seen("1", true));
    assert_eq!(
        observe("errors{scenario:viral}", "rate == 0%"),
        seen("0%", true)
    );
    assert_eq!(
        observe("errors{name:create}", "rate > 9%"),
        seen("10%", true)
    );
    assert_eq!(observe("checks", "rate > 99.9%"), seen("98.9%", false));
    assert_eq!(observe("checks", "count == 1"), seen("1", true));
    assert_eq!(observe("dropped", "count == 0"), seen("8", false));
    assert_eq!(
        observe("dropped{scenario:viral}", "count != 8"),
        seen("8", false)
    );
    assert_eq!(
        observe("dropped{scenario:baseline}", "count == 0"),
        seen("0", true)
    );
    assert_eq!(
        observe("dropped{name:redirect}", "count == 3"),
        seen("3", true)
    );
}

#[test]
fn nothing_measured_fails_latencies_and_rates_but_counts_zero() {
    assert_eq!(
        observe("http_req_duration{name:typo}", "p(99) < 1s"),
        (None, false)
    );
    assert_eq!(
        observe(
            "generator_lateness{scenario:baseline,name:redirect}",
            "p(99) < 1s"
        ),
        (None, false)
    );
    assert_eq!(observe("errors{name:typo}", "rate < 1%"), (None, false));
    assert_eq!(observe("checks{name:create}", "rate > 1%"), (None, false));
    assert_eq!(observe("errors{name:typo}", "count == 0"), seen("0", true));
    assert_eq!(
        observe("dropped{scenario:typo}", "count == 0"),
        seen("0", true)
    );
    assert_eq!(
        observe("http_reqs{name:typo}", "count > 0"),
        seen("0", false)
    );
    let empty = Results::default();
    let verdict = threshold("http_reqs", "rate > 0").evaluate(&empty);
    assert_eq!((verdict.observed, verdict.passed), (None, false));
}

#[test]
fn every_operator_and_exact_boundaries() {
    let results = {
        let mut stats = Stats::default();
        for i in 0..1000 {
            stats.record_outcome(Outcome::Status(200), true, Duration::from_millis(1));
            stats.record_check("ok", i != 0);
        }
        Results {
            scenarios: vec![scenario("s", 0, vec![("r", stats)])],
            elapsed: Duration::from_secs(1),
            ..Results::default()
        }
    };
    let passes = |expression: &str| threshold("checks", expression).evaluate(&results).passed;
    assert!(passes("rate >= 99.9%"));
    assert!(passes("rate <= 99.9%"));
    assert!(passes("rate == 99.9%"));
    assert!(passes("rate == 0.999"));
    assert!(!passes("rate != 99.9%"));
    assert!(!passes("rate > 99.9%"));
    assert!(!passes("rate < 99.9%"));
    assert!(passes("rate > 99.8%"));
    assert!(passes("rate < 99.91%"));
    assert!(passes("rate != 99.8%"));
}

#[test]
fn evaluate_all_keeps_the_order() {
    let thresholds = [
        threshold("dropped", "count == 0"),
        threshold("http_reqs", "count == 200"),
    ];
    let verdicts = evaluate_all(&thresholds, &run());
    let summary: Vec<(&str, bool)> = verdicts
        .iter()
        .map(|v| (v.key.as_str(), v.passed))
        .collect();
    assert_eq!(summary, vec![("dropped", false), ("http_reqs", true)]);
}

#[test]
fn compact_keeps_about_three_significant_digits() {
    let cases = [
        (0.0, "0"),
        (12.345, "12.3"),
        (0.0012, "0.0012"),
        (1234.5, "1234"),
        (99.96, "100"),
        (1.0, "1"),
        (0.5, "0.5"),
        (98.88888, "98.9"),
    ];
    for (value, want) in cases {
        assert_eq!(compact(value), want, "{value}");
    }
}
