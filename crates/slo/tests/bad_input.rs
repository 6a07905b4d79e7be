//! The list of bad inputs: each is refused with an error that
//! names the file, the line and the field.

use slo::catalog::{load_paths, load_texts};
use slo::SpecError;

fn errors(files: &[(&str, &str)]) -> Vec<SpecError> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    match load_texts(&sources) {
        Ok(slos) => panic!("accepted {} SLOs", slos.len()),
        Err(e) => e.0,
    }
}

fn error(text: &str) -> SpecError {
    let mut all = errors(&[("slo/t.yaml", text)]);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn assert_at(e: &SpecError, line: usize, field: &str, says: &str) {
    assert_eq!(e.file, "slo/t.yaml", "{e}");
    assert_eq!(e.line, line, "{e}");
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(says), "{e}");
}

fn sloth(objective: &str, sli: &str) -> String {
    format!(
        "version: prometheus/v1\nservice: gateway\nslos:\n  - name: availability\n    objective: {objective}\n    sli:\n{sli}"
    )
}

const EVENTS: &str = "      events:\n        error_query: sum(rate(errors_total[{{.window}}]))\n        total_query: sum(rate(requests_total[{{.window}}]))\n";

fn openslo(target: &str, window: &str, ratio: &str) -> String {
    format!(
        "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: availability\nspec:\n  service: gateway\n  indicator:\n    spec:\n      ratioMetric:\n        counter: true\n{ratio}  timeWindow:\n    - duration: {window}\n      isRolling: true\n  budgetingMethod: Occurrences\n  objectives:\n    - target: {target}\n"
    )
}

const GOOD_TOTAL: &str = "        good:\n          metricSource: {type: Prometheus, spec: {query: good_total}}\n        total:\n          metricSource: {type: Prometheus, spec: {query: requests_total}}\n";

#[test]
fn valid_specs_load() {
    let slos = load_texts(&[
        ("a.yaml".into(), sloth("99.9", EVENTS)),
        (
            "b.yaml".into(),
            openslo("0.99", "28d", GOOD_TOTAL).replace("name: availability", "name: other"),
        ),
    ])
    .expect("valid");
    assert_eq!(slos.len(), 2);
}

#[test]
fn objective_zero_hundred_and_above() {
    for bad in ["0", "100", "100.1", "-5"] {
        assert_at(
            &error(&sloth(bad, EVENTS)),
            5,
            "slos[0].objective",
            "percentage above 0 and below 100",
        );
    }
    for bad in ["0", "1", "1.5"] {
        assert_at(
            &error(&openslo(bad, "30d", GOOD_TOTAL)),
            20,
            "spec.objectives[0].target",
            "above 0 and below 1",
        );
    }
    assert_at(
        &error(&sloth("high", EVENTS)),
        5,
        "slos[0].objective",
        "not a number",
    );
}

#[test]
fn window_zero_or_unparseable() {
    assert_at(
        &error(&openslo("0.99", "0d", GOOD_TOTAL)),
        16,
        "spec.timeWindow[0].duration",
        "longer than zero",
    );
    assert_at(
        &error(&openslo("0.99", "a month", GOOD_TOTAL)),
        16,
        "spec.timeWindow[0].duration",
        "not a duration",
    );
    let with_for =
        sloth("99", EVENTS) + "    alerting:\n      page_alert:\n        for: 5 minutes\n";
    assert_at(
        &error(&with_for),
        12,
        "slos[0].alerting.page_alert.for",
        "not a duration",
    );
}

#[test]
fn ratio_with_neither_good_nor_bad() {
    let only_total = "        total:\n          metricSource: {type: Prometheus, spec: {query: requests_total}}\n";
    assert_at(
        &error(&openslo("0.99", "30d", only_total)),
        10,
        "spec.indicator.spec.ratioMetric",
        "neither".replace("neither", "a `good` or a `bad`").as_str(),
    );
    let both = format!("{GOOD_TOTAL}        bad:\n          metricSource: {{type: Prometheus, spec: {{query: bad_total}}}}\n");
    assert_at(
        &error(&openslo("0.99", "30d", &both)),
        10,
        "spec.indicator.spec.ratioMetric",
        "contradicts",
    );
}

#[test]
fn empty_query() {
    let empty = "      events:\n        error_query: \"\"\n        total_query: sum(rate(requests_total[{{.window}}]))\n";
    assert_at(
        &error(&sloth("99", empty)),
        8,
        "slos[0].sli.events.error_query",
        "must not be empty",
    );
    let blank = GOOD_TOTAL.replace("query: good_total", "query: '  '");
    assert_at(
        &error(&openslo("0.99", "30d", &blank)),
        12,
        "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
        "must not be empty",
    );
}

#[test]
fn query_that_does_not_parse() {
    let bad = EVENTS.replace(
        "sum(rate(errors_total[{{.window}}]))",
        "sum(rate(errors_total{code=~\"5..\"[{{.window}}]))",
    );
    assert_at(
        &error(&sloth("99", &bad)),
        8,
        "slos[0].sli.events.error_query",
        "does not parse as PromQL",
    );
    let no_window = EVENTS.replace("[{{.window}}]", "[5m]");
    assert_at(
        &error(&sloth("99", &no_window)),
        8,
        "slos[0].sli.events.error_query",
        "{{.window}}",
    );
    let not_selector = GOOD_TOTAL.replace("query: good_total", "query: 'rate(good_total[5m])'");
    assert_at(
        &error(&openslo("0.99", "30d", &not_selector)),
        12,
        "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
        "plain series selector",
    );
}

#[test]
fn two_slos_with_the_same_name() {
    let two =
        sloth("99", EVENTS) + "  - name: availability\n    objective: 99.5\n    sli:\n" + EVENTS;
    assert_at(&error(&two), 10, "name", "a second SLO `availability`");
    let across = errors(&[
        ("slo/t.yaml", &sloth("99", EVENTS)),
        ("slo/u.yaml", &openslo("0.99", "30d", GOOD_TOTAL)),
    ]);
    assert_eq!(across.len(), 1);
    assert!(
        across[0]
            .to_string()
            .starts_with("slo/u.yaml:4: field `name`: a second SLO"),
        "{}",
        across[0]
    );
    assert!(across[0].message.contains("slo/t.yaml:4"), "{}", across[0]);
}

#[test]
fn unknown_and_contradictory_fields() {
    let typo = sloth("99", EVENTS).replace(
        "    objective: 99\n",
        "    objective: 99\n    objetive: 99\n",
    );
    assert_at(&error(&typo), 6, "slos[0].objetive", "unknown field");
    let both = sloth("99", EVENTS) + "      raw:\n        error_ratio_query: x[{{.window}}]\n";
    assert_at(&error(&both), 10, "slos[0].sli.raw", "contradicts `events`");
    let calendar =
        openslo("0.99", "30d", GOOD_TOTAL).replace("isRolling: true", "isRolling: false");
    assert_at(
        &error(&calendar),
        16,
        "spec.timeWindow[0].isRolling",
        "rolling",
    );
    let timeslices = openslo("0.99", "30d", GOOD_TOTAL).replace("Occurrences", "Timeslices");
    assert_at(
        &error(&timeslices),
        18,
        "spec.budgetingMethod",
        "Occurrences",
    );
    let refs = openslo("0.99", "30d", GOOD_TOTAL).replace(
        "  budgetingMethod",
        "  indicatorRef: other\n  budgetingMethod",
    );
    assert_at(
        &error(&refs),
        18,
        "spec.indicatorRef",
        "contradicts `indicator`",
    );
}

#[test]
fn anchor_bomb() {
    let mut text = String::from(
        "version: prometheus/v1\nservice: gateway\nl0: &l0 [a, a, a, a, a, a, a, a, a, a]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
        ));
    }
    let e = error(&text);
    assert!(e.message.contains("alias bomb"), "{e}");
    assert!(e.line >= 5, "{e}");
}

#[test]
fn a_hundred_megabyte_file_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(100 * 1024 * 1024).expect("sparse 100 MB file");
    let err = load_paths(&[dir.path().to_path_buf()]).expect_err("too big");
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].file.ends_with("huge.yaml"));
    assert!(err.0[0].message.contains("104857600 bytes"), "{}", err.0[0]);
}

#[test]
fn referenced_sli_and_missing_reference() {
    let sli = "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: shared}\nspec:\n  ratioMetric:\n    counter: true\n    bad: {metricSource: {type: Prometheus, spec: {query: bad_total}}}\n    total: {metricSource: {type: Prometheus, spec: {query: all_total}}}\n";
    let slo = "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: a}\nspec:\n  service: s\n  indicatorRef: shared\n  timeWindow: [{duration: 7d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.9}]\n";
    let ok = load_texts(&[("a.yaml".into(), format!("{slo}---\n{sli}"))]).expect("resolves");
    assert_eq!(ok[0].period, slo::Window::days(7));
    let missing = error(&slo.replace("shared", "nope"));
    assert_at(&missing, 6, "spec.indicatorRef", "no SLI named `nope`");
}

#[test]
fn not_a_spec_at_all() {
    let e = error("kind: Deployment\n");
    assert!(e.message.contains("not an SLO spec"), "{e}");
    let e = error("version: prometheus/v2\nservice: a\nslos: []\n");
    assert_at(&e, 1, "version", "prometheus/v1");
}

#[test]
fn openslo_alerting_annotations() {
    let with = |annotations: &str| {
        openslo("0.99", "30d", GOOD_TOTAL).replace(
            "  name: availability\n",
            &format!("  name: availability\n  annotations:\n{annotations}"),
        )
    };
    let ok = load_texts(&[(
        "t.yaml".into(),
        with("    reliable.dev/page-for: 2m\n    reliable.dev/ticket: \"false\"\n"),
    )])
    .expect("valid");
    let page = ok[0].alerting.page.as_ref().expect("page on");
    assert_eq!(page.for_, Some(slo::Window::minutes(2)));
    assert!(ok[0].alerting.ticket.is_none());
    let e = error(&with(
        "    reliable.dev/ticket: \"false\"\n    reliable.dev/page-for: soon\n",
    ));
    assert_eq!(e.field, "metadata.annotations.reliable.dev/page-for", "{e}");
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("not a duration"), "{e}");
    let e = error(&with("    reliable.dev/paging: \"false\"\n"));
    assert!(e.message.contains("unknown annotation"), "{e}");
}
