//! A/A: canary and baseline run the same version. Any fail is a false
//! failure; the rollout-level false-failure rate must stay under the
//! configured significance (5%) although the judge looks every 2 s.
//!
//! One run: steps of 5, 10, 30, 50, 80 and 100% canary traffic, 30 s
//! each, 200 requests/s at 0.1% errors and lognormal 1–3 ms latency, a
//! new window at each step, a look every 2 s at errors (counts) and
//! latency (Prometheus histograms): 90 planned looks × 2 metrics. The
//! 100% step has no baseline, so its looks are inconclusive. The same
//! traffic is also judged at an uncorrected 5% per look, to show what the
//! correction is for. Run with `--nocapture` to see the figures.

use super::sim::{Window, HEALTHY};
use crate::judge::{
    Judge, JudgeConfig, MetricData, MetricInput, MetricWeight, SloGuardConfig, Verdict,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const STEPS: [u32; 6] = [5, 10, 30, 50, 80, 100];
const STEP_SECONDS: u32 = 30;
const LOOK_EVERY: u32 = 2;
const RUNS: u64 = 200;
const METRICS: u32 = 2;

#[derive(Default)]
struct Tally {
    /// Runs with at least one failing look (overall verdict).
    failed_runs: u32,
    /// Runs where any metric failed at any look.
    metric_failed_runs: u32,
    /// Runs where errors, latency failed at some look.
    failed_by_metric: [u32; 2],
    /// Looks that reached a pass.
    passing_looks: u32,
    /// Per step, the overall verdict at the step's last look: pass,
    /// inconclusive, fail.
    step_end: [[u32; 3]; STEPS.len()],
}

fn looks(judge: &Judge, window: &Window) -> (Verdict, [bool; 2]) {
    let (c, b) = (&window.canary, &window.baseline);
    let inputs = [
        MetricInput {
            name: "errors",
            weight: MetricWeight::default(),
            data: MetricData::Proportion {
                canary: &c.counts,
                baseline: &b.counts,
            },
        },
        MetricInput {
            name: "latency",
            weight: MetricWeight::default(),
            data: MetricData::LatencyHistogram {
                canary: &c.histogram,
                baseline: &b.histogram,
            },
        },
    ];
    let judgement = judge.judge(&inputs).unwrap();
    let failed = |i: usize| judgement.metrics[i].metric.verdict == Verdict::Fail;
    (judgement.verdict, [failed(0), failed(1)])
}

#[test]
fn identical_versions_rarely_fail_and_never_trip_the_guard() {
    let planned_looks = STEPS.len() as u32 * STEP_SECONDS / LOOK_EVERY;
    let corrected = Judge::new(JudgeConfig::default(), planned_looks, METRICS).unwrap();
    let naive = Judge::new(JudgeConfig::default(), 1, 1).unwrap();
    let guard = SloGuardConfig::default();
    let (mut tally, mut naive_tally) = (Tally::default(), Tally::default());
    let mut guard_trips = 0;

    for seed in 0..RUNS {
        let mut rng = StdRng::seed_from_u64(1_000 + seed);
        let (mut failed, mut naive_failed) = (false, false);
        let (mut metric_failed, mut naive_metric_failed) = ([false; 2], [false; 2]);
        for (step_index, step) in STEPS.into_iter().enumerate() {
            let mut window = Window::new(false);
            for second in 1..=STEP_SECONDS {
                window.second(&HEALTHY, &HEALTHY, step, &mut rng);
                if second % LOOK_EVERY != 0 {
                    continue;
                }
                let (verdict, by_metric) = looks(&corrected, &window);
                failed |= verdict == Verdict::Fail;
                metric_failed = [
                    metric_failed[0] | by_metric[0],
                    metric_failed[1] | by_metric[1],
                ];
                tally.passing_looks += u32::from(verdict == Verdict::Pass);
                if second == STEP_SECONDS {
                    let column = match verdict {
                        Verdict::Pass => 0,
                        Verdict::Inconclusive => 1,
                        Verdict::Fail => 2,
                    };
                    tally.step_end[step_index][column] += 1;
                }
                let (verdict, by_metric) = looks(&naive, &window);
                naive_failed |= verdict == Verdict::Fail;
                naive_metric_failed = [
                    naive_metric_failed[0] | by_metric[0],
                    naive_metric_failed[1] | by_metric[1],
                ];
                if guard.check(&window.canary.counts).unwrap().is_some() {
                    guard_trips += 1;
                }
            }
        }
        for (t, run_failed, by_metric) in [
            (&mut tally, failed, metric_failed),
            (&mut naive_tally, naive_failed, naive_metric_failed),
        ] {
            t.failed_runs += u32::from(run_failed);
            t.metric_failed_runs += u32::from(by_metric[0] || by_metric[1]);
            t.failed_by_metric[0] += u32::from(by_metric[0]);
            t.failed_by_metric[1] += u32::from(by_metric[1]);
        }
    }

    let rate = |n: u32| 100.0 * f64::from(n) / RUNS as f64;
    println!(
        "A/A, {RUNS} runs × {planned_looks} looks × {METRICS} metrics at α = {:.1e} per look: \
         {} runs failed ({:.1}%), {} with a failing metric ({:.1}%: errors {}, latency {}); {:.0}% of looks passed",
        corrected.per_look_significance(),
        tally.failed_runs,
        rate(tally.failed_runs),
        tally.metric_failed_runs,
        rate(tally.metric_failed_runs),
        tally.failed_by_metric[0],
        tally.failed_by_metric[1],
        100.0 * f64::from(tally.passing_looks) / (RUNS as f64 * f64::from(planned_looks)),
    );
    println!(
        "A/A, same traffic at an uncorrected 5% per look: {} runs failed ({:.1}%), {} with a failing metric \
         ({:.1}%: errors {}, latency {})",
        naive_tally.failed_runs,
        rate(naive_tally.failed_runs),
        naive_tally.metric_failed_runs,
        rate(naive_tally.metric_failed_runs),
        naive_tally.failed_by_metric[0],
        naive_tally.failed_by_metric[1],
    );
    println!("A/A, SLO guard trips: {guard_trips}");
    for (step, [pass, open, fail]) in STEPS.iter().zip(tally.step_end) {
        println!("A/A, end of the {step}% step: pass {pass}, inconclusive {open}, fail {fail} (of {RUNS})");
    }

    assert!(
        rate(tally.metric_failed_runs) <= 5.0,
        "false-failure rate {:.1}% > 5%",
        rate(tally.metric_failed_runs)
    );
    assert!(tally.failed_runs <= tally.metric_failed_runs);
    assert_eq!(guard_trips, 0, "the SLO guard fired on a healthy canary");
    // Without the correction repeated looks fail good canaries far more
    // often than 5%: the correction is what holds the rate.
    assert!(
        rate(naive_tally.metric_failed_runs) > 10.0,
        "uncorrected rate {:.1}%",
        rate(naive_tally.metric_failed_runs)
    );
    // And the judge is not simply refusing to decide: once a step carries
    // enough traffic to rule out the error floor (about 1,500 canary
    // requests at 0.1% errors; the 30% step gets 1,800), it passes.
    for (step, [pass, _, _]) in STEPS.iter().zip(tally.step_end) {
        if (50..100).contains(step) {
            assert!(
                f64::from(pass) >= 0.9 * RUNS as f64,
                "{step}% step passed {pass} of {RUNS} runs"
            );
        }
    }
}

#[test]
fn identical_versions_rarely_fail_on_exact_samples() {
    // The same rollout with latency judged on reservoirs of 500 exact
    // samples a side (no ties: the rank test without its tie correction),
    // 100 runs, latency alone.
    const SAMPLE_RUNS: u64 = 100;
    let planned_looks = STEPS.len() as u32 * STEP_SECONDS / LOOK_EVERY;
    let judge = Judge::new(JudgeConfig::default(), planned_looks, 1).unwrap();
    let mut failed_runs = 0;
    let mut passing_looks = 0;
    for seed in 0..SAMPLE_RUNS {
        let mut rng = StdRng::seed_from_u64(5_000 + seed);
        let mut failed = false;
        for step in STEPS {
            let mut window = Window::with_reservoirs(500, &mut rng);
            for second in 1..=STEP_SECONDS {
                window.second(&HEALTHY, &HEALTHY, step, &mut rng);
                if second % LOOK_EVERY != 0 {
                    continue;
                }
                let sample = |side: &super::sim::SideWindow| {
                    side.reservoir
                        .as_ref()
                        .map(|r| r.snapshot())
                        .unwrap_or_default()
                };
                let (c, b) = (sample(&window.canary), sample(&window.baseline));
                let v = judge
                    .metric(
                        "latency",
                        MetricData::LatencySamples {
                            canary: &c,
                            baseline: &b,
                        },
                    )
                    .unwrap();
                failed |= v.verdict == Verdict::Fail;
                passing_looks += u32::from(v.verdict == Verdict::Pass);
            }
        }
        failed_runs += u32::from(failed);
    }
    let rate = 100.0 * f64::from(failed_runs) / SAMPLE_RUNS as f64;
    println!(
        "A/A, exact samples (reservoirs of 500), {SAMPLE_RUNS} runs × {planned_looks} looks at α = {:.1e}: \
         {failed_runs} runs failed ({rate:.1}%), {passing_looks} looks passed",
        judge.per_look_significance()
    );
    assert!(rate <= 5.0, "false-failure rate {rate:.1}% > 5%");
    assert!(passing_looks > 0);
}
