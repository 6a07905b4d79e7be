use super::*;
use std::path::Path;

fn platform_slos() -> Vec<Slo> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../slo");
    let files = slo::catalog::spec_files(&dir).expect("slo dir");
    slo::catalog::load_paths(&files).expect("platform SLO specs load")
}

const GOOD: &str = "\
name: shortener-v2
target:
  gateway:
    route: links
steps:
  - weight: 5
    dwell: 30s
  - weight: 50
    dwell: 30s
  - weight: 100
    dwell: 30s
metrics:
  - slo: gateway-availability
  - slo: gateway-latency
    critical: true
max_duration: 10m
";

fn refused(text: &str) -> SpecError {
    compile(text, &platform_slos()).expect_err("the spec should be refused")
}

#[test]
fn a_good_spec_compiles_with_defaults_and_kinds_from_the_slos() {
    let plan = compile(GOOD, &platform_slos()).unwrap();
    assert_eq!(plan.target_key(), "gateway/links");
    assert_eq!(plan.steps.len(), 3);
    assert_eq!(plan.metrics[0].kind, MetricKind::Errors);
    assert!((plan.metrics[0].objective - 0.999).abs() < 1e-12);
    assert_eq!(plan.metrics[1].kind, MetricKind::Latency);
    assert_eq!(plan.metrics[1].latency_threshold, Some(0.3));
    assert_eq!(plan.metrics[1].min_effect, DEFAULT_LATENCY_EFFECT);
    assert!(plan.metrics[1].critical);
    assert_eq!(plan.judge, JudgeSettings::default());
    assert_eq!(plan.on_inconclusive, InconclusivePolicy::Rollback);
    assert_eq!(plan.planned_looks(), 120);
    assert!(plan.prometheus.is_none());
}

#[test]
fn model_slos_resolve_to_accuracy() {
    let text = "\
name: digits-v2
target:
  inference:
    model: digits
    baseline_version: 1
    canary_version: 2
steps:
  - {weight: 10, dwell: 1m}
metrics:
  - slo: inference-accuracy
  - slo: inference-latency
max_duration: 5m
metrics_source:
  prometheus: http://prometheus:9090
";
    let plan = compile(text, &platform_slos()).unwrap();
    assert_eq!(plan.target_key(), "inference/digits");
    assert_eq!(plan.metrics[0].kind, MetricKind::Accuracy);
    assert_eq!(plan.metrics[1].kind, MetricKind::Latency);
    assert_eq!(plan.prometheus.unwrap().as_str(), "http://prometheus:9090/");
}

#[test]
fn weights_that_do_not_increase_are_refused() {
    let e = refused(&GOOD.replace("weight: 50", "weight: 5"));
    assert_eq!(e.path, "steps[1].weight");
    assert!(e.message.contains("does not increase"), "{e}");
    assert_eq!(e.line, 8);
}

#[test]
fn a_weight_over_100_is_refused() {
    let e = refused(&GOOD.replace("weight: 100", "weight: 120"));
    assert_eq!(e.path, "steps[2].weight");
    assert!(e.message.contains("over 100"), "{e}");
}

#[test]
fn zero_and_negative_weights_are_refused() {
    let e = refused(&GOOD.replace("weight: 5\n", "weight: 0\n"));
    assert_eq!(e.path, "steps[0].weight");
    let e = refused(&GOOD.replace("weight: 5\n", "weight: -5\n"));
    assert_eq!(e.path, "steps[0].weight");
}

#[test]
fn a_zero_dwell_is_refused() {
    let e = refused(&GOOD.replace("weight: 50\n    dwell: 30s", "weight: 50\n    dwell: 0s"));
    assert_eq!(e.path, "steps[1].dwell");
    assert!(e.message.contains("above zero"), "{e}");
}

#[test]
fn an_unknown_target_kind_is_refused() {
    let e = refused(&GOOD.replace("  gateway:\n    route: links", "  istio:\n    route: links"));
    assert!(e.path.starts_with("target"), "{e}");
    assert!(e.message.contains("istio"), "{e}");
}

#[test]
fn a_metric_not_in_any_slo_spec_is_refused() {
    let e = refused(&GOOD.replace("gateway-availability", "gateway-happiness"));
    assert_eq!(e.path, "metrics[0].slo");
    assert!(e.message.contains("not in any SLO spec"), "{e}");
    assert!(
        e.message.contains("gateway-availability"),
        "lists the known: {e}"
    );
}

#[test]
fn latency_on_an_slo_without_threshold_is_refused() {
    let e = refused(&GOOD.replace(
        "  - slo: gateway-availability\n",
        "  - slo: gateway-availability\n    kind: latency\n",
    ));
    assert_eq!(e.path, "metrics[0].kind");
}

#[test]
fn other_bad_values_name_their_field() {
    let cases = [
        (
            GOOD.replace("max_duration: 10m", "max_duration: 30s"),
            "max_duration",
        ),
        (
            GOOD.replace("max_duration: 10m", "max_duration: 0s"),
            "max_duration",
        ),
        (GOOD.replace("name: shortener-v2", "name: \"a b\""), "name"),
        (
            GOOD.replace("route: links", "route: \"\""),
            "target.gateway.route",
        ),
        (
            GOOD.replace("route: links", "route: links\n    admin_url: ftp://x"),
            "target.gateway.admin_url",
        ),
        (
            format!("{GOOD}metrics_source:\n  prometheus: not a url\n"),
            "metrics_source.prometheus",
        ),
        (
            format!("{GOOD}judge:\n  significance: 0.7\n"),
            "judge.significance",
        ),
        (format!("{GOOD}judge:\n  interval: 1ms\n"), "judge.interval"),
        (
            format!("{GOOD}judge:\n  pass_score: 60\n  marginal_score: 80\n"),
            "judge.marginal_score",
        ),
        (
            format!("{GOOD}judge:\n  page_burn_rate: 0.5\n"),
            "judge.page_burn_rate",
        ),
        (
            GOOD.replace("    critical: true", "    critical: true\n    weight: 0"),
            "metrics[1].weight",
        ),
        (format!("{GOOD}on_inconclusive: shrug\n"), "on_inconclusive"),
        (format!("{GOOD}surprise: 1\n"), "surprise"),
    ];
    for (text, path) in cases {
        let e = refused(&text);
        assert_eq!(e.path, path, "{e}");
        assert!(e.line > 0, "{e}");
    }
}

#[test]
fn a_model_canary_on_its_own_baseline_is_refused() {
    let text = "\
name: digits
target:
  inference: {model: digits, baseline_version: 2, canary_version: 2}
steps: [{weight: 10, dwell: 1m}]
metrics: [{slo: inference-accuracy}]
max_duration: 5m
";
    let e = refused(text);
    assert_eq!(e.path, "target.inference.canary_version");
}
