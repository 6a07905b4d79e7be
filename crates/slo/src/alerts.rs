//! The live evaluator's alerts, as an on-call person reads them: which
//! alert, for which SLO, how bad (page or ticket), pending or firing since
//! when, and the runbook to open.
//!
//! Why separate from [`crate::status`]: the status report is the SLO's
//! arithmetic; alerts are its consequences over time (a condition that
//! holds becomes *pending*, then *firing* once it has held for the tier's
//! `for`), and their transitions are the history the console keeps.

use serde::{Deserialize, Serialize};

/// How urgent an alert is, as the generated rules label it (`severity`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// Wake someone up.
    Page,
    /// Look at it during working hours.
    Ticket,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Page => "page",
            AlertSeverity::Ticket => "ticket",
        }
    }
}

/// Which of an SLO's conditions an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertCondition {
    /// The fast-burn windows (page tier).
    PageBurn,
    /// The slow-burn windows (ticket tier).
    TicketBurn,
    /// The SLI has no data.
    Absent,
}

impl AlertCondition {
    pub const ALL: [AlertCondition; 3] = [
        AlertCondition::PageBurn,
        AlertCondition::TicketBurn,
        AlertCondition::Absent,
    ];

    pub fn severity(self) -> AlertSeverity {
        match self {
            AlertCondition::PageBurn => AlertSeverity::Page,
            AlertCondition::TicketBurn | AlertCondition::Absent => AlertSeverity::Ticket,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlertCondition::PageBurn => "page_burn",
            AlertCondition::TicketBurn => "ticket_burn",
            AlertCondition::Absent => "absent",
        }
    }
}

/// Pending: the condition holds but not yet for the tier's `for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Pending,
    Firing,
}

/// One active alert (pending or firing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// The `alertname` the generated Prometheus rules use.
    pub name: String,
    pub slo_id: String,
    pub service: String,
    pub condition: AlertCondition,
    pub severity: AlertSeverity,
    pub state: AlertState,
    /// When the condition started to hold (Unix milliseconds).
    pub since_ms: i64,
    /// When it started firing; `None` while pending.
    pub firing_since_ms: Option<i64>,
    /// The runbook (the spec's `reliable.dev/runbook` / `runbook_url`).
    pub runbook: Option<String>,
    /// One line for a human.
    pub summary: String,
}

/// An alert started or stopped firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertTransition {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub name: String,
    pub slo_id: String,
    pub service: String,
    pub condition: AlertCondition,
    pub severity: AlertSeverity,
    /// `true`: started firing; `false`: resolved.
    pub firing: bool,
    pub runbook: Option<String>,
}

/// An SLO's state at one tick, for charts (SLI and budget burn-down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SloPoint {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Good share over the period; `None` without data.
    pub sli: Option<f64>,
    /// Budget share left; `None` without data.
    pub budget_remaining: Option<f64>,
    /// Burn rate over the shortest alert window (5m).
    pub burn_rate_5m: Option<f64>,
}
