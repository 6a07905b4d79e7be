//! The controller: runs canaries step by step, judges each look, and
//! promotes or rolls back.
//!
//! - [`decide`]: one look as a pure function (plan, state, time, judgement
//!   -> action), so the whole policy is tested on a simulated clock;
//! - [`judging`]: the readings of both sides turned into one
//!   [`Judgement`](judging::Judgement) (the judge's statistics plus the
//!   SLO guard);
//! - [`run`]: the driver of one run: wait, read, judge, decide, act on the
//!   target, persist, tell followers;
//! - this file: the run's state and decisions, and [`Controller`], which
//!   starts runs, refuses a second one on a target, takes manual aborts
//!   and promotions, and resumes (or rolls back) what a previous process
//!   left unfinished.
//!
//! The guarantee: the split a run leaves behind is always known. Every
//! change is persisted with the decision that caused it before the next
//! look; a rollback that cannot reach its target is retried until it
//! lands; a controller that dies mid-run finds the run in its store on
//! restart and resumes it or rolls it back (`on_restart`).

mod decide;
pub mod judging;
mod run;
#[cfg(test)]
mod tests;
mod timeline;

pub use decide::{apply, decide, Look};
pub use run::{Controller, ControllerError, RunHandle, SourceFactory, TargetFactory};

use crate::spec::CanaryPlan;
use judging::Judgement;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// Held at its weight until a person promotes or aborts it.
    Paused,
    Promoted,
    RolledBack,
    /// Stopped by a person (`reliable canary abort`): rolled back.
    Aborted,
}

impl Phase {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Promoted | Self::RolledBack | Self::Aborted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Paused,
            Self::Promoted,
            Self::RolledBack,
            Self::Aborted,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// What a look decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Keep the weight and look again.
    Hold,
    /// Go to the next step's weight.
    Advance {
        to: f64,
    },
    Promote,
    /// Weight 0.
    Rollback,
    Pause,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hold => "hold",
            Self::Advance { .. } => "advance",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
            Self::Pause => "pause",
        }
    }
}

/// One decision and its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    #[serde(with = "time_text")]
    pub at: SystemTime,
    /// The step index and weight when the look was taken.
    pub step: usize,
    pub weight: f64,
    #[serde(flatten)]
    pub action: Action,
    /// One line a person reads.
    pub summary: String,
    /// The judge's per-metric evidence (absent when metrics were unreadable).
    pub judgement: Option<Judgement>,
}

/// A run's progress, persisted after every decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunState {
    pub id: String,
    pub name: String,
    pub target: String,
    pub phase: Phase,
    /// Index of the current step.
    pub step: usize,
    /// The weight set on the target.
    pub weight: f64,
    /// The judge's window starts here: both sides are compared over the
    /// same span.
    #[serde(with = "time_text")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: SystemTime,
    #[serde(with = "time_text")]
    #[schema(value_type = String, format = DateTime)]
    pub step_started_at: SystemTime,
    pub looks: u64,
    /// Looks in a row whose metrics could not be read.
    pub metric_errors: u32,
    /// Why it finished or paused.
    pub reason: Option<String>,
}

impl RunState {
    /// A run about to set its first step.
    pub fn new(id: String, plan: &CanaryPlan, now: SystemTime) -> Self {
        Self {
            id,
            name: plan.name.clone(),
            target: plan.target_key(),
            phase: Phase::Running,
            step: 0,
            weight: plan.steps[0].weight,
            started_at: now,
            step_started_at: now,
            looks: 0,
            metric_errors: 0,
            reason: None,
        }
    }
}

/// Times as RFC 3339 text in JSON.
mod time_text {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let t: DateTime<Utc> = (*t).into();
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc).into())
            .map_err(serde::de::Error::custom)
    }
}
