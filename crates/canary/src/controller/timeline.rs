//! The controller's lines on the platform's change timeline: a run that
//! started, stepped, rolled back or was promoted, by `canary:<run id>`,
//! on its target; holds and pauses move no traffic and are not changes.

use super::{Action, Decision, RunState};
use chrono::{DateTime, Utc};
use kit::changes::{ChangeEvent, ChangeKind};

/// The kind and summary of `decision`, if it changed traffic.
pub(super) fn decision(state: &RunState, decision: &Decision) -> Option<(ChangeKind, String)> {
    let (kind, what) = match decision.action {
        Action::Advance { to } => (ChangeKind::CanaryStep, format!("advanced to {to}%")),
        Action::Promote => (ChangeKind::CanaryPromoted, "promoted".to_string()),
        Action::Rollback => (ChangeKind::CanaryRollback, "rolled back".to_string()),
        Action::Hold | Action::Pause => return None,
    };
    Some((
        kind,
        format!("canary {} {what}: {}", state.name, decision.summary),
    ))
}

/// One change of run `state`.
pub(super) fn event(
    at: DateTime<Utc>,
    state: &RunState,
    kind: ChangeKind,
    summary: String,
) -> ChangeEvent {
    ChangeEvent::new(
        at,
        kind,
        crate::SERVICE,
        format!("canary:{}", state.id),
        state.target.clone(),
        summary,
    )
}
