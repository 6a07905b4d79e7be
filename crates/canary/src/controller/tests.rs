//! The controller's policy on a simulated clock: every path of [`decide`],
//! and whole canaries fed seeded traffic through the real judge, so the
//! false-rollback rate of identical versions (A/A) and the time to catch
//! a bad one are measured without waiting.

use super::judging::{self, Judgement, Overall};
use super::*;
use crate::judge::{Counts, Histogram, Verdict};
use crate::metrics::Reading;
use crate::spec::{self, CanaryPlan};
use crate::target::Split;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn plan(extra: &str) -> CanaryPlan {
    let text = format!(
        "name: sim\ntarget:\n  gateway:\n    route: links\nsteps:\n  - {{weight: 5, dwell: 10s}}\n  - {{weight: 10, dwell: 10s}}\n  - {{weight: 30, dwell: 10s}}\n  - {{weight: 50, dwell: 10s}}\n  - {{weight: 80, dwell: 10s}}\n  - {{weight: 100, dwell: 10s}}\nmetrics:\n  - slo: gateway-availability\n  - slo: gateway-latency\njudge:\n  interval: 1s\nmax_duration: 5m\n{extra}"
    );
    let slos = slo::catalog::load_platform().unwrap();
    spec::compile(&text, &slos).unwrap()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn judged(verdict: Verdict, guard: Option<&str>) -> Judgement {
    Judgement {
        metrics: Vec::new(),
        overall: Overall {
            verdict,
            score: match verdict {
                Verdict::Pass => Some(100.0),
                Verdict::Fail => Some(0.0),
                Verdict::Inconclusive => None,
            },
        },
        guard: guard.map(str::to_string),
    }
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

#[test]
fn a_pass_advances_only_after_the_dwell() {
    let plan = plan("");
    let state = RunState::new("r".into(), &plan, t0());
    let pass = judged(Verdict::Pass, None);
    let early = decide(&plan, &state, at(5), Look::Judged(&pass));
    assert_eq!(early.action, Action::Hold);
    let later = decide(&plan, &state, at(10), Look::Judged(&pass));
    assert_eq!(later.action, Action::Advance { to: 10.0 });
}

#[test]
fn a_step_still_gathering_data_advances_but_never_promotes() {
    let plan = plan("");
    let mut state = RunState::new("r".into(), &plan, t0());
    let gathering = judged(Verdict::Inconclusive, None);
    let d = decide(&plan, &state, at(10), Look::Judged(&gathering));
    assert_eq!(d.action, Action::Advance { to: 10.0 });
    state.step = plan.steps.len() - 1;
    let d = decide(&plan, &state, at(10), Look::Judged(&gathering));
    assert_eq!(d.action, Action::Hold, "promotion needs a pass");
    // A marginal score (judged, between the thresholds) holds too.
    state.step = 0;
    let mut marginal = judged(Verdict::Inconclusive, None);
    marginal.overall.score = Some(80.0);
    let d = decide(&plan, &state, at(10), Look::Judged(&marginal));
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn a_fail_or_the_guard_rolls_back_at_once() {
    let plan = plan("");
    let state = RunState::new("r".into(), &plan, t0());
    let fail = judged(Verdict::Fail, None);
    assert_eq!(
        decide(&plan, &state, at(1), Look::Judged(&fail)).action,
        Action::Rollback
    );
    let guard = judged(Verdict::Pass, Some("burn 50x"));
    let d = decide(&plan, &state, at(1), Look::Judged(&guard));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.summary.contains("SLO guard"), "{}", d.summary);
}

#[test]
fn the_last_step_passing_promotes() {
    let plan = plan("");
    let mut state = RunState::new("r".into(), &plan, t0());
    state.step = plan.steps.len() - 1;
    let d = decide(
        &plan,
        &state,
        at(10),
        Look::Judged(&judged(Verdict::Pass, None)),
    );
    assert_eq!(d.action, Action::Promote);
    apply(&mut state, &d);
    assert_eq!(state.phase, Phase::Promoted);
    assert_eq!(state.weight, 100.0);
}

#[test]
fn out_of_time_applies_the_inconclusive_policy() {
    for (policy, action) in [
        ("", Action::Rollback),
        ("on_inconclusive: pause\n", Action::Pause),
        ("on_inconclusive: promote\n", Action::Promote),
    ] {
        let plan = plan(policy);
        let state = RunState::new("r".into(), &plan, t0());
        let d = decide(
            &plan,
            &state,
            at(300),
            Look::Judged(&judged(Verdict::Inconclusive, None)),
        );
        assert_eq!(d.action, action, "{policy}");
    }
}

#[test]
fn unreadable_metrics_hold_then_fail_safe_and_never_promote() {
    for (policy, last) in [
        ("", Action::Rollback),
        ("on_metrics_error: pause\n", Action::Pause),
    ] {
        let plan = plan(&format!("{policy}on_inconclusive: promote\n"));
        let mut state = RunState::new("r".into(), &plan, t0());
        let mut actions = Vec::new();
        for look in 1..=3 {
            let d = decide(
                &plan,
                &state,
                at(300 + look),
                Look::MetricsUnreadable("down".into()),
            );
            actions.push(d.action.clone());
            apply(&mut state, &d);
        }
        assert_eq!(actions, vec![Action::Hold, Action::Hold, last], "{policy}");
    }
}

/// Seeded traffic for both sides of a gateway canary.
struct Traffic {
    rng: StdRng,
    rate: f64,
    /// Per side: bad, total, cumulative buckets, sum.
    sides: [(u64, u64, Vec<u64>, f64); 2],
}

const BOUNDS: &[f64] = &[
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.3,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    f64::INFINITY,
];

impl Traffic {
    fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            rate: 200.0,
            sides: std::array::from_fn(|_| (0, 0, vec![0; BOUNDS.len()], 0.0)),
        }
    }

    /// One second of traffic at `weight` % canary; the canary's errors
    /// and extra latency as given.
    fn second(&mut self, weight: f64, canary_errors: f64, canary_extra: f64) {
        for _ in 0..self.rate as usize {
            let canary = self.rng.random::<f64>() * 100.0 < weight;
            let side = usize::from(canary);
            // ~1.2 ms median, a long right tail.
            let z: f64 = (0..12).map(|_| self.rng.random::<f64>()).sum::<f64>() - 6.0;
            let mut latency = 0.0012 * (0.5 * z).exp();
            let mut error_ratio = 0.001;
            if canary {
                latency += canary_extra;
                error_ratio = canary_errors;
            }
            let bad = self.rng.random::<f64>() < error_ratio;
            let s = &mut self.sides[side];
            s.0 += u64::from(bad);
            s.1 += 1;
            s.3 += latency;
            for (i, bound) in BOUNDS.iter().enumerate() {
                if latency <= *bound {
                    s.2[i] += 1;
                }
            }
        }
    }

    fn readings(&self) -> Vec<Reading> {
        let mut out = Vec::new();
        // Order of `queries.flat()`: availability baseline, canary; latency baseline, canary.
        for side in [0, 1] {
            let s = &self.sides[side];
            out.push(Reading::Proportion(Counts {
                bad: s.0,
                total: s.1,
            }));
        }
        for side in [0, 1] {
            let s = &self.sides[side];
            out.push(Reading::Histogram(
                Histogram::from_cumulative(BOUNDS.to_vec(), s.2.clone(), s.3, s.1).unwrap(),
            ));
        }
        out
    }
}

/// One whole canary on a simulated clock; returns the final state and
/// the seconds it took.
fn simulate(seed: u64, canary_errors: f64, canary_extra: f64) -> (RunState, u64) {
    let plan = plan("");
    let split = Split {
        baseline: "stable".into(),
        canary: "canary".into(),
        percent: 5.0,
    };
    let queries = judging::queries(&plan, &split).unwrap();
    let mut traffic = Traffic::new(seed);
    let mut state = RunState::new("sim".into(), &plan, t0());
    for second in 1..=400 {
        traffic.second(state.weight, canary_errors, canary_extra);
        let j = judging::judge(&plan, &queries, &traffic.readings()).unwrap();
        let d = decide(&plan, &state, at(second), Look::Judged(&j));
        apply(&mut state, &d);
        if state.phase != Phase::Running {
            return (state, second);
        }
    }
    (state, 400)
}

#[test]
fn identical_versions_are_promoted_and_rarely_rolled_back() {
    let runs = 200;
    let rollbacks: Vec<u64> = (0..runs)
        .filter(|seed| simulate(*seed, 0.001, 0.0).0.phase != Phase::Promoted)
        .collect();
    let first_20 = rollbacks.iter().filter(|s| **s < 20).count();
    println!(
        "A/A: {} of {runs} runs not promoted ({:.1} %), {first_20} of the first 20",
        rollbacks.len(),
        100.0 * rollbacks.len() as f64 / runs as f64
    );
    assert!(
        first_20 <= 1,
        "more than 5 % of 20 A/A runs rolled back: {rollbacks:?}"
    );
    assert!(
        rollbacks.len() as f64 <= 0.05 * runs as f64,
        "{rollbacks:?}"
    );
}

#[test]
fn a_canary_failing_5_percent_is_rolled_back_in_seconds() {
    let mut seconds = Vec::new();
    for seed in 0..20 {
        let (state, secs) = simulate(1000 + seed, 0.05, 0.0);
        assert_eq!(
            state.phase,
            Phase::RolledBack,
            "seed {seed}: {:?}",
            state.reason
        );
        seconds.push(secs);
    }
    seconds.sort_unstable();
    println!(
        "5% errors at 200 req/s: rolled back after {seconds:?} s (median {} s)",
        seconds[10]
    );
}

#[test]
fn a_canary_50ms_slower_is_rolled_back_in_seconds() {
    let mut seconds = Vec::new();
    for seed in 0..20 {
        let (state, secs) = simulate(2000 + seed, 0.001, 0.050);
        assert_eq!(
            state.phase,
            Phase::RolledBack,
            "seed {seed}: {:?}",
            state.reason
        );
        seconds.push(secs);
    }
    seconds.sort_unstable();
    println!(
        "+50 ms at 200 req/s: rolled back after {seconds:?} s (median {} s)",
        seconds[10]
    );
}

#[test]
fn a_canary_2_percent_slower_is_promoted() {
    for seed in 0..20 {
        let (state, _) = simulate(3000 + seed, 0.001, 0.000024);
        assert_eq!(
            state.phase,
            Phase::Promoted,
            "seed {seed}: {:?}",
            state.reason
        );
    }
}
