//! Metric verdicts and scoring, on hand-made windows.

use crate::judge::{
    judge_latency_histograms, judge_latency_samples, judge_proportion, score, Counts, Histogram,
    JudgeError, LatencyConfig, Method, MetricKind, MetricVerdict, MetricWeight, ProportionConfig,
    Samples, ScoredMetric, ScoringConfig, Side, Verdict,
};

const ALPHA: f64 = 0.05 / 180.0;

fn counts(bad: u64, total: u64) -> Counts {
    Counts { bad, total }
}

#[test]
fn a_clearly_worse_canary_fails_with_readable_evidence() {
    let v = judge_proportion(
        "availability",
        &counts(26, 500),
        &counts(3, 3000),
        ALPHA,
        &ProportionConfig::default(),
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Fail);
    assert_eq!(v.method, Some(Method::FisherExact));
    assert_eq!((v.n_canary, v.n_baseline), (500, 3000));
    assert!((v.effect.unwrap() - (0.052 - 0.001)).abs() < 1e-12);
    assert_eq!(
        v.evidence,
        "canary 5.20% bad (26/500) vs baseline 0.10% (3/3000), p=1.4e-19 ≤ α=2.8e-4, +5.10 pp > 0.10 pp floor"
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["method"], "fisher_exact");
    assert_eq!(json["kind"], "proportion");
}

#[test]
fn too_few_requests_is_inconclusive_not_pass() {
    let cfg = ProportionConfig::default();
    let v = judge_proportion(
        "availability",
        &counts(5, 49),
        &counts(0, 5000),
        ALPHA,
        &cfg,
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Inconclusive);
    assert_eq!(v.p_value, None);
    assert!(v.evidence.contains("fewer than 50"), "{}", v.evidence);
    // No request at all on one side.
    let v = judge_proportion("availability", &counts(0, 0), &counts(0, 5000), ALPHA, &cfg).unwrap();
    assert_eq!((v.verdict, v.effect), (Verdict::Inconclusive, None));
    // Enough to test, clean, but too few to have seen a canary at 0.2%:
    // 3 / (0.001 + 0.001) = 1,500 requests needed.
    let v = judge_proportion(
        "availability",
        &counts(0, 800),
        &counts(15, 15_000),
        ALPHA,
        &cfg,
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Inconclusive);
    assert!(v.evidence.contains("need 1500"), "{}", v.evidence);
    let v = judge_proportion(
        "availability",
        &counts(1, 1500),
        &counts(15, 15_000),
        ALPHA,
        &cfg,
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Pass, "{}", v.evidence);
    // The rule of three can be turned off.
    let off = ProportionConfig {
        min_expected_bad: 0.0,
        ..cfg
    };
    let v = judge_proportion(
        "availability",
        &counts(0, 800),
        &counts(15, 15_000),
        ALPHA,
        &off,
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Pass);
}

#[test]
fn a_significant_but_negligible_increase_passes() {
    // 1.05% vs 1.00% over 2 million requests a side: z ≈ 5, certain, but
    // 0.05 pp is below the 0.1 pp floor.
    let v = judge_proportion(
        "availability",
        &counts(21_000, 2_000_000),
        &counts(20_000, 2_000_000),
        ALPHA,
        &ProportionConfig::default(),
    )
    .unwrap();
    assert_eq!(v.method, Some(Method::ZTest));
    assert!(v.p_value.unwrap() < ALPHA, "{:?}", v.p_value);
    assert_eq!(v.verdict, Verdict::Pass);
    assert!(v.evidence.contains("≤ 0.10 pp floor"), "{}", v.evidence);
    // With no floor the same data fails: the floor is what passed it.
    let strict = ProportionConfig {
        min_effect: 0.0,
        ..ProportionConfig::default()
    };
    let v = judge_proportion(
        "availability",
        &counts(21_000, 2_000_000),
        &counts(20_000, 2_000_000),
        ALPHA,
        &strict,
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Fail);
}

#[test]
fn invalid_counts_are_refused() {
    let err = judge_proportion(
        "x",
        &counts(5, 4),
        &counts(0, 10),
        ALPHA,
        &ProportionConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        JudgeError::BadAboveTotal {
            side: Side::Canary,
            bad: 5,
            total: 4
        }
    );
    assert_eq!(err.to_string(), "canary counts: 5 bad out of 4");
}

fn histogram(counts: Vec<u64>, mean: f64) -> Histogram {
    let bounds = vec![0.005, 0.01, 0.025, 0.05, 0.1, f64::INFINITY];
    let n: u64 = counts.iter().sum();
    Histogram::new(bounds, counts, mean * n as f64, n).unwrap()
}

#[test]
fn latency_from_histograms() {
    let cfg = LatencyConfig::default();
    // +50 ms: every canary request in the 50–100 ms bucket.
    let canary = histogram(vec![0, 0, 0, 0, 60, 0], 0.052);
    let baseline = histogram(vec![900, 100, 0, 0, 0, 0], 0.002);
    let v = judge_latency_histograms("latency", &canary, &baseline, ALPHA, &cfg).unwrap();
    assert_eq!(
        (v.verdict, v.kind, v.method),
        (
            Verdict::Fail,
            MetricKind::Latency,
            Some(Method::MannWhitney)
        )
    );
    assert_eq!(v.common_language, Some(1.0));
    assert!((v.effect.unwrap() - 26.0).abs() < 1e-9);
    assert!(
        v.evidence.starts_with(
            "canary mean 52.00 ms (n=60) vs baseline 2.00 ms (n=1000): ×26.000 > ×1.10 floor"
        ),
        "{}",
        v.evidence
    );
    // The same shape with only 40 canary requests: not tested yet.
    let few = histogram(vec![0, 0, 0, 0, 40, 0], 0.052);
    let v = judge_latency_histograms("latency", &few, &baseline, ALPHA, &cfg).unwrap();
    assert_eq!((v.verdict, v.p_value), (Verdict::Inconclusive, None));
    // Faster canary: passes.
    let v = judge_latency_histograms("latency", &baseline, &canary, ALPHA, &cfg).unwrap();
    assert_eq!(v.verdict, Verdict::Pass);
    // Different buckets cannot be compared.
    let other = Histogram::new(vec![0.1, f64::INFINITY], vec![5, 0], 0.1, 5).unwrap();
    assert!(matches!(
        judge_latency_histograms("latency", &canary, &other, ALPHA, &cfg),
        Err(JudgeError::Histogram(_))
    ));
}

#[test]
fn latency_from_samples_checks_its_input() {
    let cfg = LatencyConfig::default();
    let ok = Samples::from_values((0..100).map(|i| 0.001 + f64::from(i) * 1e-5).collect());
    let mut bad = ok.clone();
    bad.values[7] = f64::NAN;
    let err = judge_latency_samples("latency", &bad, &ok, ALPHA, &cfg).unwrap_err();
    assert_eq!(err.to_string(), "canary samples: value 7 is NaN");
    let short = Samples {
        count: 3,
        ..ok.clone()
    };
    let err = judge_latency_samples("latency", &ok, &short, ALPHA, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "baseline samples: count 3 is below the 100 values"
    );
    // Identical samples: CL exactly one half, passes.
    let v = judge_latency_samples("latency", &ok, &ok, ALPHA, &cfg).unwrap();
    assert_eq!(
        (v.verdict, v.common_language, v.effect),
        (Verdict::Pass, Some(0.5), Some(1.0))
    );
}

fn metric(name: &str, verdict: Verdict, weight: f64, critical: bool) -> ScoredMetric {
    ScoredMetric {
        metric: MetricVerdict {
            name: name.to_owned(),
            kind: MetricKind::Proportion,
            verdict,
            method: None,
            p_value: None,
            significance: ALPHA,
            effect: None,
            min_effect: 0.001,
            common_language: None,
            n_canary: 100,
            n_baseline: 100,
            evidence: String::new(),
        },
        weight: MetricWeight { weight, critical },
    }
}

#[test]
fn scoring_follows_weights_thresholds_and_critical_metrics() {
    use Verdict::{Fail, Inconclusive, Pass};
    let cfg = ScoringConfig::default();
    let run = |ms: Vec<ScoredMetric>| score(ms, &cfg).unwrap();

    let all_pass = run(vec![
        metric("errors", Pass, 1.0, false),
        metric("latency", Pass, 1.0, false),
    ]);
    assert_eq!((all_pass.verdict, all_pass.score), (Pass, Some(100.0)));
    // 19 of 20 by weight: 95, passes.
    let j = run(vec![
        metric("errors", Pass, 19.0, false),
        metric("latency", Fail, 1.0, false),
    ]);
    assert_eq!((j.verdict, j.score), (Pass, Some(95.0)));
    assert_eq!(j.evidence, "score 95 ≥ 95 pass; failed: latency");
    // 4 of 5: marginal.
    let j = run(vec![
        metric("errors", Pass, 4.0, false),
        metric("latency", Fail, 1.0, false),
    ]);
    assert_eq!((j.verdict, j.score), (Inconclusive, Some(80.0)));
    // 1 of 2: fails.
    let j = run(vec![
        metric("errors", Pass, 1.0, false),
        metric("latency", Fail, 1.0, false),
    ]);
    assert_eq!((j.verdict, j.score), (Fail, Some(50.0)));
    // A critical failure fails whatever the score.
    let j = run(vec![
        metric("errors", Pass, 99.0, false),
        metric("accuracy", Fail, 1.0, true),
    ]);
    assert_eq!((j.verdict, j.score), (Fail, None));
    assert_eq!(j.evidence, "critical metric failed: accuracy");
    // Not enough samples on one metric: not scored yet.
    let j = run(vec![
        metric("errors", Inconclusive, 1.0, false),
        metric("latency", Pass, 1.0, false),
    ]);
    assert_eq!((j.verdict, j.score), (Inconclusive, None));
    // ... unless the score is already sure to be below marginal.
    let j = run(vec![
        metric("errors", Inconclusive, 1.0, false),
        metric("latency", Fail, 2.0, false),
        metric("saturation", Pass, 1.0, false),
    ]);
    assert_eq!((j.verdict, j.score), (Fail, Some(50.0)));
    assert!(j.evidence.contains("even if errors pass"), "{}", j.evidence);

    assert_eq!(score(vec![], &cfg).unwrap_err(), JudgeError::NoMetrics);
    let err = score(vec![metric("errors", Pass, 0.0, false)], &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "metric errors: weight = 0: must be a finite number > 0"
    );

    let json = serde_json::to_value(&all_pass).unwrap();
    assert_eq!(json["metrics"][0]["name"], "errors");
    assert_eq!(json["metrics"][0]["weight"], 1.0);
    assert_eq!(json["metrics"][0]["critical"], false);
}
