//! One look of a run, as a pure function: given the plan, where the run
//! is, the time and what the judge found, what happens next. No I/O and no
//! clock of its own, so every path (and a whole canary on a simulated
//! clock) is tested without waiting.

use super::judging::Judgement;
use super::{Action, Decision, Phase, RunState};
use crate::judge::Verdict;
use crate::spec::{CanaryPlan, FailSafePolicy, InconclusivePolicy};
use std::time::SystemTime;

/// What the judge answered at this look, or why it could not.
pub enum Look<'a> {
    Judged(&'a Judgement),
    MetricsUnreadable(String),
}

fn since(now: SystemTime, then: SystemTime) -> std::time::Duration {
    now.duration_since(then).unwrap_or_default()
}

/// The next action for a running `state` at `now`.
pub fn decide(plan: &CanaryPlan, state: &RunState, now: SystemTime, look: Look<'_>) -> Decision {
    let step = &plan.steps[state.step.min(plan.steps.len() - 1)];
    let out_of_time = since(now, state.started_at) >= plan.max_duration;
    let decision = |action: Action, summary: String, judgement: Option<&Judgement>| Decision {
        at: now,
        step: state.step,
        weight: state.weight,
        action,
        summary,
        judgement: judgement.cloned(),
    };
    let judgement = match look {
        Look::MetricsUnreadable(reason) => {
            let errors = state.metric_errors + 1;
            if errors < plan.judge.metrics_error_limit {
                return decision(
                    Action::Hold,
                    format!(
                        "metrics unreadable ({errors} of {} looks in a row): {reason}",
                        plan.judge.metrics_error_limit
                    ),
                    None,
                );
            }
            let why = format!("metrics unreadable for {errors} looks in a row: {reason}");
            let action = match plan.on_metrics_error {
                FailSafePolicy::Rollback => Action::Rollback,
                FailSafePolicy::Pause => Action::Pause,
            };
            return decision(action, why, None);
        }
        Look::Judged(j) => j,
    };
    if let Some(guard) = &judgement.guard {
        return decision(
            Action::Rollback,
            format!("SLO guard: {guard}"),
            Some(judgement),
        );
    }
    let verdict = judgement.overall.verdict;
    let score = judgement
        .overall
        .score
        .map_or_else(|| "not scored yet".to_string(), |s| format!("score {s:.0}"));
    if verdict == Verdict::Fail {
        return decision(
            Action::Rollback,
            format!("judge failed the canary ({score})"),
            Some(judgement),
        );
    }
    let dwelt = since(now, state.step_started_at) >= step.dwell;
    let last = state.step + 1 >= plan.steps.len();
    // A step advances once its dwell is over unless the judge fails it:
    // at small weights a clean canary has too few requests for the judge
    // to call it a pass (it cannot rule out rare errors yet), while a
    // failing one is caught at any weight. A marginal score holds; and
    // promotion, at the end, needs a pass.
    // ...but only once every metric has its minimum of canary samples, so
    // the guard and the latency test have had their chance at this weight
    // before more traffic moves.
    let sampled = judgement
        .metrics
        .iter()
        .all(|m| m.n_canary >= plan.judge.min_samples);
    let gathering =
        verdict == Verdict::Inconclusive && judgement.overall.score.is_none() && sampled;
    let advance = dwelt && (verdict == Verdict::Pass || (gathering && !last && !out_of_time));
    if advance {
        return if last {
            decision(
                Action::Promote,
                format!("passed the last step at {}% ({score})", step.weight),
                Some(judgement),
            )
        } else {
            let next = plan.steps[state.step + 1].weight;
            decision(
                Action::Advance { to: next },
                format!(
                    "{} {}% ({score}); next {next}%",
                    verdict.as_str(),
                    step.weight
                ),
                Some(judgement),
            )
        };
    }
    if out_of_time {
        let why = format!(
            "max_duration {} reached with the judge {}",
            humantime::format_duration(plan.max_duration),
            verdict.as_str()
        );
        let action = match plan.on_inconclusive {
            InconclusivePolicy::Rollback => Action::Rollback,
            InconclusivePolicy::Pause => Action::Pause,
            InconclusivePolicy::Promote => Action::Promote,
        };
        return decision(action, why, Some(judgement));
    }
    let waiting = if dwelt {
        format!("holding {}%: judge {}", step.weight, verdict.as_str())
    } else {
        format!(
            "holding {}% for its dwell ({} of {}): judge {}",
            step.weight,
            humantime::format_duration(round_secs(since(now, state.step_started_at))),
            humantime::format_duration(step.dwell),
            verdict.as_str()
        )
    };
    decision(Action::Hold, waiting, Some(judgement))
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

/// The state after `decision` was carried out on the target.
pub fn apply(state: &mut RunState, decision: &Decision) {
    state.looks += 1;
    match decision.judgement {
        None if matches!(decision.action, Action::Hold) => state.metric_errors += 1,
        _ => state.metric_errors = 0,
    }
    match &decision.action {
        Action::Hold => {}
        Action::Advance { to } => {
            state.step += 1;
            state.weight = *to;
            state.step_started_at = decision.at;
        }
        Action::Promote => {
            state.phase = Phase::Promoted;
            state.weight = 100.0;
        }
        Action::Rollback => {
            state.phase = Phase::RolledBack;
            state.weight = 0.0;
        }
        Action::Pause => state.phase = Phase::Paused,
    }
    if state.phase.is_finished() || state.phase == Phase::Paused {
        state.reason = Some(decision.summary.clone());
    }
}
