use super::skeleton::{skeleton_request, skeleton_scenario};
use super::*;
use crate::output::RunDigest;
use crate::plan::StatusSet;
use crate::plan::{Executor, Plan, ScenarioPlan};
use crate::results::{record, Outcome, Point, Results, ScenarioResults, Series, Stats};
use crate::threshold::{evaluate_all, Threshold};
use base64::Engine;

/// One request's outcome: latency in microseconds and how it ended.
type Sample = (u64, Outcome);

/// Deterministic samples spread over five decades (20 us to 3 s), with a
/// few 503s and timeouts, different for each `seed`.
fn samples(seed: u64, n: usize) -> Vec<Sample> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let exponent = (x >> 33) % 500; // 0..5 decades in hundredths
            let micros = (20.0 * 10f64.powf(exponent as f64 / 100.0)) as u64;
            let outcome = match (x >> 20) % 100 {
                0 => Outcome::Timeout,
                1 | 2 => Outcome::Status(503),
                3 => Outcome::Status(404),
                _ => Outcome::Status(200),
            };
            (micros.min(3_000_000), outcome)
        })
        .collect()
}

fn stats_of(samples: &[Sample]) -> Stats {
    let mut stats = Stats::default();
    for (micros, outcome) in samples {
        let ok = matches!(outcome, Outcome::Status(200 | 404));
        stats.record_outcome(*outcome, ok, Duration::from_micros(*micros));
        record(&mut stats.lateness, Duration::from_micros(micros / 7 + 1));
        stats.record_check("is 200", *outcome == Outcome::Status(200));
        stats.sent += 1;
        stats.bytes_received += 10 + micros % 3;
    }
    stats
}

/// The plan every agent ran: one open-model scenario, two names, 404
/// expected on `lookup`, and thresholds on both.
fn plan() -> Plan {
    let mut lookup = skeleton_request("lookup", StatusSet(vec![(200, 299), (404, 404)]));
    lookup.weight = 3;
    let mut plan = Plan {
        pools: Vec::new(),
        setup: Vec::new(),
        scenarios: vec![ScenarioPlan {
            requests: vec![
                skeleton_request("create", StatusSet(vec![(200, 299)])),
                lookup,
            ],
            ..skeleton_scenario(&scenario(100.0, 8, 0, 0, vec![]), vec![])
        }],
        teardown: Vec::new(),
        thresholds: vec![
            Threshold::parse("http_req_duration", "p(99) < 2s", false, Duration::ZERO)
                .expect("parses"),
            Threshold::parse("errors", "rate < 1%", false, Duration::ZERO).expect("parses"),
            Threshold::parse("http_reqs", "count >= 9000", false, Duration::ZERO).expect("parses"),
        ],
        dau: Some("1,000 users x 5/day".to_string()),
    };
    plan.scenarios[0].executor = Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(10),
    };
    plan
}

fn scenario(
    rate: f64,
    connections: usize,
    scheduled: u64,
    dropped: u64,
    requests: Vec<(String, Stats)>,
) -> ScenarioResults {
    ScenarioResults {
        name: "mix".to_string(),
        executor: "constant-arrival-rate",
        target_rate: Some(rate),
        connections,
        start: Duration::ZERO,
        duration: Duration::from_secs(10),
        scheduled,
        dropped,
        requests,
    }
}

/// An agent's run over `create` and `lookup` samples.
fn run(
    create: &[Sample],
    lookup: &[Sample],
    rate: f64,
    connections: usize,
    dropped: u64,
) -> Results {
    let sent = (create.len() + lookup.len()) as u64;
    Results {
        scenarios: vec![scenario(
            rate,
            connections,
            sent + dropped,
            dropped,
            vec![
                ("create".to_string(), stats_of(create)),
                ("lookup".to_string(), stats_of(lookup)),
            ],
        )],
        started_unix_ms: 1_700_000_000_000,
        elapsed: Duration::from_secs(10),
        ..Results::default()
    }
}

/// Through the file and back, as `merge` reads it.
fn through_file(plan: &Plan, results: &Results) -> HistRun {
    HistRun::decode(&HistRun::of(plan, results).encode()).expect("decodes")
}

#[test]
fn merging_three_agents_equals_one_run_over_the_same_samples() {
    let creates: Vec<Vec<Sample>> = (0..3).map(|a| samples(a, 700 + a as usize * 50)).collect();
    let lookups: Vec<Vec<Sample>> = (0..3)
        .map(|a| samples(10 + a, 2_500 + a as usize * 300))
        .collect();
    let plan = plan();
    let agents: Vec<(PathBuf, HistRun)> = (0..3)
        .map(|a| {
            let results = run(&creates[a], &lookups[a], 100.0, 8, a as u64);
            (
                PathBuf::from(format!("agent-{a}.json")),
                through_file(&plan, &results),
            )
        })
        .collect();
    let merged = merge(agents, false).expect("merges");

    let all_creates: Vec<Sample> = creates.concat();
    let all_lookups: Vec<Sample> = lookups.concat();
    let one = run(&all_creates, &all_lookups, 300.0, 24, 3);

    assert_eq!(merged.agents, 3);
    for (name, (_, merged_stats)) in ["create", "lookup"]
        .iter()
        .zip(&merged.results.scenarios[0].requests)
    {
        let (_, one_stats) = one.scenarios[0]
            .requests
            .iter()
            .find(|(n, _)| n == name)
            .expect("name");
        let (m, o) = (&merged_stats.latency, &one_stats.latency);
        assert_eq!(m.len(), o.len(), "{name}: count");
        assert_eq!(m.min(), o.min(), "{name}: min");
        assert_eq!(m.max(), o.max(), "{name}: max");
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                m.value_at_quantile(q),
                o.value_at_quantile(q),
                "{name}: q{q}"
            );
        }
        assert_eq!(m.mean(), o.mean(), "{name}: mean");
        assert_eq!(
            merged_stats.lateness.value_at_quantile(0.99),
            one_stats.lateness.value_at_quantile(0.99)
        );
        assert_eq!(merged_stats.status_counts, one_stats.status_counts);
        assert_eq!(merged_stats.checks, one_stats.checks);
        assert_eq!(merged_stats.errors(), one_stats.errors());
        assert_eq!(merged_stats.bytes_received, one_stats.bytes_received);
    }
    // Everything the reports show is equal, thresholds included.
    let one_run = HistRun::of(&plan, &one);
    let verdicts = evaluate_all(&merged.plan.thresholds, &merged.results);
    assert_eq!(
        verdicts,
        evaluate_all(&one_run.plan.thresholds, &one_run.results)
    );
    assert_eq!(verdicts.len(), 3);
    assert_eq!(
        RunDigest::of(&merged.plan, &merged.results, &verdicts),
        RunDigest::of(&one_run.plan, &one_run.results, &verdicts)
    );
    // ...and not by accident: the total is the sum of the agents.
    let total = &RunDigest::of(&merged.plan, &merged.results, &verdicts).scenarios[0];
    assert_eq!(
        total.total.sent,
        (all_creates.len() + all_lookups.len()) as u64
    );
    assert_eq!(total.target_rate_per_s, Some(300.0));
    assert_eq!(total.connections, 24);
    assert!(!total.requests[1].unexpected_statuses.contains_key("404"));
}

#[test]
fn a_file_keeps_every_field_the_reports_read() {
    let mut results = run(&samples(1, 300), &samples(2, 900), 50.0, 4, 7);
    results.aborted_by = Some("errors: rate < 1%".to_string());
    let mut setup = Stats::default();
    setup.record_outcome(Outcome::Status(201), true, Duration::from_millis(3));
    setup.sent = 1;
    results.setup.push(PhaseResults {
        phase: "setup",
        name: "seed".to_string(),
        stats: setup,
        captured: [("slugs <- json /slug".to_string(), 1)].into(),
    });
    results.series.push(Series {
        scenario: "mix".to_string(),
        name: "lookup".to_string(),
        points: vec![Point::of(1.0, &results.scenarios[0].requests[1].1)],
    });
    let plan = plan();
    let before = HistRun::of(&plan, &results);
    let after = through_file(&plan, &results);
    let digest = |run: &HistRun| {
        let verdicts = evaluate_all(&run.plan.thresholds, &run.results);
        crate::output::json(&run.plan, &run.results, &verdicts)
    };
    assert_eq!(digest(&before), digest(&after));
    assert_eq!(after.plan.dau.as_deref(), Some("1,000 users x 5/day"));
    assert_eq!(after.results.setup[0].captured["slugs <- json /slug"], 1);
    assert_eq!(after.results.series[0].points.len(), 1);
}

#[test]
fn same_second_points_add_counts_and_keep_the_worst_percentile() {
    let mut a = Point::of(1.0, &Stats::default());
    a.sent = 10;
    a.p99_us = 900;
    let mut b = a.clone();
    b.sent = 5;
    b.p99_us = 2_000;
    let mut late = a.clone();
    late.t = 2.0;
    let series = |points: Vec<Point>| Series {
        scenario: "mix".to_string(),
        name: "lookup".to_string(),
        points,
    };
    let mut one = run(&[], &[], 1.0, 1, 0);
    one.series.push(series(vec![a]));
    let mut two = one.clone();
    two.series = vec![series(vec![b, late])];
    let plan = plan();
    let merged = merge(
        vec![
            ("a".into(), HistRun::of(&plan, &one)),
            ("b".into(), HistRun::of(&plan, &two)),
        ],
        false,
    )
    .expect("merges");
    let points = &merged.results.series[0].points;
    assert_eq!(points.len(), 2);
    assert_eq!((points[0].sent, points[0].p99_us), (15, 2_000));
    assert_eq!(points[1].t, 2.0);
}

fn decode_error(text: &str) -> String {
    match HistRun::decode(text) {
        Ok(_) => panic!("decoded: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_are_refused_saying_what_is_wrong() {
    let good: serde_json::Value =
        serde_json::from_str(&HistRun::of(&plan(), &run(&samples(3, 50), &[], 1.0, 1, 0)).encode())
            .expect("json");
    let with = |pointer: &str, value: serde_json::Value| {
        let mut v = good.clone();
        *v.pointer_mut(pointer).expect("field") = value;
        v.to_string()
    };
    assert!(decode_error("{ not json").contains("not JSON"));
    assert!(decode_error(r#"{"format": "k6"}"#).contains("\"k6\""));
    let newer = decode_error(&with("/version", 2.into()));
    assert!(
        newer.contains("version 2") && newer.contains("version 1"),
        "{newer}"
    );
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("scenarios");
    assert!(decode_error(&missing.to_string()).contains("scenarios"));
    let base64 = decode_error(&with("/scenarios/0/requests/0/stats/latency", "!!!".into()));
    assert!(
        base64.contains("scenario `mix`, request `create`: latency") && base64.contains("base64"),
        "{base64}"
    );
    let junk = base64::engine::general_purpose::STANDARD.encode(b"HISTFAAAjunkjunkjunk");
    let corrupt = decode_error(&with("/scenarios/0/requests/0/stats/lateness", junk.into()));
    assert!(
        corrupt.contains("lateness: the histogram does not decode"),
        "{corrupt}"
    );
    let executor = decode_error(&with("/scenarios/0/executor", "per-vu-iterations".into()));
    assert!(executor.contains("per-vu-iterations"), "{executor}");
    let threshold = decode_error(&with("/thresholds/0/expression", "p(99) <".into()));
    assert!(threshold.contains("p(99) <"), "{threshold}");
}

#[test]
fn a_file_that_cannot_be_read_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("agent-7.json");
    let missing = HistRun::read(&path).expect_err("missing").to_string();
    assert!(missing.contains("agent-7.json"), "{missing}");
    std::fs::write(&path, "HIST").expect("write");
    let corrupt = HistRun::read(&path).expect_err("corrupt").to_string();
    assert!(
        corrupt.contains("agent-7.json") && corrupt.contains("not JSON"),
        "{corrupt}"
    );
    let run = HistRun::of(&plan(), &run(&samples(4, 20), &[], 1.0, 1, 0));
    run.write(&path).expect("write");
    assert_eq!(
        HistRun::read(&path).expect("reads").results.total().sent,
        20
    );
}

#[test]
fn runs_that_disagree_are_refused_naming_both_files() {
    let plan = plan();
    let results = run(&samples(5, 30), &[], 1.0, 1, 0);
    let mut closed = results.clone();
    closed.scenarios[0].executor = "constant-connections";
    let error = merge(
        vec![
            ("a.json".into(), HistRun::of(&plan, &results)),
            ("b.json".into(), HistRun::of(&plan, &closed)),
        ],
        false,
    )
    .expect_err("different executors")
    .to_string();
    assert!(
        error.starts_with("b.json: scenario `mix`") && error.contains("a.json"),
        "{error}"
    );
    let mut stricter = plan.clone();
    stricter.thresholds.truncate(1);
    let runs = || {
        vec![
            ("a.json".into(), HistRun::of(&plan, &results)),
            ("b.json".into(), HistRun::of(&stricter, &results)),
        ]
    };
    let error = merge(runs(), false).expect_err("thresholds").to_string();
    assert!(error.contains("--thresholds"), "{error}");
    assert!(merge(runs(), true).is_ok());
    assert!(matches!(merge(vec![], false), Err(MergeError::Empty)));
}
