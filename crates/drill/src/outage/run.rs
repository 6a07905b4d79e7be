//! One scenario: steady state, the fault, its removal, each on the
//! simulated clock, and what the live evaluator's alerts did.
//!
//! The fault starts and ends half-way through a tick (after half of that
//! tick's requests), where a real fault lands on average between two
//! evaluations; MTTD and MTTR are measured from those instants.

use super::gate::Half;
use super::stage::Stage;
use super::{report, FaultKind, Module, OutageDrill, Scenario, TICK};
use crate::fault::Injected;
use chrono::{DateTime, Utc};
use kit::changes::ChangeRecorder;
use kit::{Clock, ManualClock};
use serde::Serialize;
use slo::alerts::AlertCondition;
use slo::eval::Evaluator;
use slo::exposition::{EventCounts, Sampler};
use std::sync::Arc;
use std::time::Duration;

/// Why the drill could not run (a missed goal is a row, not an error).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("setting up the drill: {0}")]
    Setup(String),
    #[error("the SLO `{0}` is not in the platform's specs")]
    NoSlo(String),
    #[error("a tick's requests were not all answered within {0:?}: the load generator or a module is stuck")]
    Stalled(Duration),
    #[error("the load generator stopped: {0}")]
    Load(String),
    #[error("arming the fault switch: {0}")]
    Switch(#[from] crate::fault::SwitchError),
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub fault: String,
    pub slo: String,
    pub objective: f64,
    /// Simulated seconds from the fault's start to the page alert firing.
    pub mttd_page_seconds: Option<f64>,
    /// ... to the ticket alert firing.
    pub mttd_ticket_seconds: Option<f64>,
    /// Whether the steady state covered the ticket's 3 d window; without
    /// it the 1 d and 3 d windows read the shorter history and the ticket
    /// fires earlier than on a platform with days of history.
    pub ticket_exact: bool,
    /// Simulated seconds from the fault's removal to the page resolving.
    pub mttr_page_seconds: Option<f64>,
    /// ... to the ticket resolving (within `max_recovery`).
    pub mttr_ticket_seconds: Option<f64>,
    /// What the window arithmetic predicts for the page (None: it never pages).
    pub expected_page_seconds: Option<f64>,
    /// Simulated seconds the fault lasted.
    pub fault_seconds: f64,
    /// Share of the SLO's 30-day error budget the scenario spent.
    pub budget_consumed: f64,
    /// Requests answered during the scenario (all phases).
    pub requests_sent: u64,
    /// Of which answered with a 5xx.
    pub requests_failed: u64,
    /// Simulated requests per second of the steady state.
    pub simulated_rps: f64,
    pub goal: String,
    pub goal_met: bool,
    pub verdict: String,
}

/// The load file: redirects of the seeded links (`drill-1` to
/// `drill-20`), link creates and order
/// creates in the proportions of `scenarios/shortener-dau.yaml` and
/// `scenarios/orders-flow.yaml`, each kind its own scenario with its own
/// connections, back to back: the gate, not the generator, sets the pace
/// and the exact mix of each tick (see `gate::Kind`).
pub(super) fn scenario_file(modules: &[Module]) -> String {
    let shortener = modules.contains(&Module::Shortener);
    let orders = modules.contains(&Module::Orders);
    let mut file = String::from(
        "defaults:\n  headers: {accept: application/json, content-type: application/json}\n  timeout: 30s\n",
    );
    file.push_str("scenarios:\n");
    let scenario = |name: &str, connections: u32, request: &str| {
        format!("  {name}:\n    executor: constant-connections\n    start_time: 0s\n    duration: 30d\n    connections: {connections}\n    requests:\n{request}")
    };
    if shortener {
        file.push_str(&scenario(
            "redirects",
            6,
            "      - name: redirect\n        url: \"{{target}}/drill-{{random.int(1, 20)}}\"\n        expect_status: [301, 302, 307, 308]\n",
        ));
        file.push_str(&scenario(
            "links",
            1,
            "      - name: create-link\n        method: POST\n        url: \"{{target}}/api/v1/links\"\n        json: {url: \"https://example.com/drill/{{random.string(12)}}\"}\n        expect_status: [201]\n",
        ));
    }
    if orders {
        file.push_str(&scenario(
            "orders",
            2,
            "      - name: create-order\n        method: POST\n        url: \"{{target}}/api/v1/orders\"\n        headers: {idempotency-key: \"{{uuid}}\"}\n        json: {customer_id: \"cust-{{random.int(1, 5000)}}\", currency: EUR, items: [{sku: book-1, quantity: 2, unit_price_minor: 1250}]}\n        expect_status: [201]\n",
        ));
    }
    file
}

/// The evaluator on the simulated clock, fed one tick of traffic at a time.
struct Ticker {
    clock: ManualClock,
    evaluator: Evaluator,
    sampler: Sampler,
    slo_id: String,
    /// Page, ticket: (first firing, last resolved), simulated ms.
    fired: [Option<i64>; 2],
    resolved: [Option<i64>; 2],
}

impl Ticker {
    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// One tick: its requests (with `midway` run after the first half),
    /// then 10 s later on the clock, the evaluation.
    async fn tick(
        &mut self,
        stage: &mut Stage,
        midway: Option<Midway>,
    ) -> Result<Option<i64>, DrillError> {
        stage.gate.pass(Half::First).await?;
        let mut at = None;
        if let Some(action) = midway {
            at = Some(self.now_ms() + TICK.as_millis() as i64 / 2);
            match action {
                Midway::Arm(scenario) => arm(stage, scenario).await?,
                Midway::Disarm(scenario) => disarm(stage, scenario).await?,
            }
        }
        stage.gate.pass(Half::Second).await?;
        if let Some(e) = stage.load_failed() {
            return Err(DrillError::Load(e));
        }
        self.clock
            .advance(chrono::Duration::milliseconds(TICK.as_millis() as i64));
        let text = kit::metrics::render();
        let now = self.now_ms();
        self.evaluator.observe_text(now, &text);
        for t in self.evaluator.take_transitions() {
            let i = match t.condition {
                AlertCondition::PageBurn => 0,
                AlertCondition::TicketBurn => 1,
                AlertCondition::Absent => continue,
            };
            if t.slo_id != self.slo_id {
                continue;
            }
            if t.firing {
                self.fired[i].get_or_insert(t.at_ms);
                self.resolved[i] = None;
            } else if self.fired[i].is_some() {
                self.resolved[i] = Some(t.at_ms);
            }
        }
        Ok(at)
    }

    fn counts(&self) -> EventCounts {
        let text = kit::metrics::render();
        self.sampler
            .sample(&text)
            .first()
            .copied()
            .flatten()
            .unwrap_or(EventCounts {
                errors: 0.0,
                total: 0.0,
            })
    }
}

#[derive(Clone, Copy)]
enum Midway {
    Arm(Scenario),
    Disarm(Scenario),
}

async fn arm(stage: &mut Stage, scenario: Scenario) -> Result<(), DrillError> {
    match scenario.fault {
        FaultKind::OrdersDb => stage.cut_orders_db().await,
        FaultKind::ShortenerErrors | FaultKind::Latency => stage.switch.arm(Injected {
            error_ratio: scenario.error_ratio.unwrap_or(0.0),
            latency: scenario.latency.unwrap_or(Duration::ZERO),
        })?,
    }
    Ok(())
}

async fn disarm(stage: &mut Stage, scenario: Scenario) -> Result<(), DrillError> {
    match scenario.fault {
        FaultKind::OrdersDb => stage.restore_orders_db().await?,
        FaultKind::ShortenerErrors | FaultKind::Latency => stage.switch.disarm(),
    }
    Ok(())
}

/// Runs every scenario in turn and records the drill on `changes`.
pub async fn run(drill: &OutageDrill, changes: &ChangeRecorder) -> Result<Vec<Row>, DrillError> {
    kit::metrics::install();
    let started = Utc::now();
    let platform = slo::catalog::load_platform().map_err(|e| DrillError::Setup(e.to_string()))?;
    // The running modules' SLOs, exactly as the platform specifies them.
    let slos: Vec<slo::Slo> = platform
        .into_iter()
        .filter(|s| drill.modules.iter().any(|m| m.name() == s.service))
        .collect();
    let mut rows = Vec::new();
    for scenario in &drill.scenarios {
        rows.push(run_one(drill, *scenario, &slos).await?);
    }
    changes.record(report::change_event(started, drill, &rows));
    Ok(rows)
}

async fn run_one(
    drill: &OutageDrill,
    scenario: Scenario,
    slos: &[slo::Slo],
) -> Result<Row, DrillError> {
    let slo_id = scenario.fault.slo_id();
    let target = slos
        .iter()
        .find(|s| s.id() == slo_id)
        .ok_or_else(|| DrillError::NoSlo(slo_id.to_string()))?;
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let clock = ManualClock::new(start);
    let supervisor = kit::tasks::Supervisor::new();
    let mut stage = Stage::start(drill, Arc::new(clock.clone()), &supervisor).await?;
    let (sampler, _) = Sampler::new(std::slice::from_ref(target));
    let mut ticker = Ticker {
        clock,
        evaluator: Evaluator::new(slos),
        sampler,
        slo_id: slo_id.to_string(),
        fired: [None; 2],
        resolved: [None; 2],
    };
    let measured = measure(drill, scenario, &mut ticker, &mut stage).await;
    let sent = stage.gate.completed();
    let failed = stage.gate.failed();
    stage.stop().await;
    let m = measured?;
    let mut row = report::row(scenario, target, &m, sent, failed, drill.tick_requests);
    row.ticket_exact = drill.steady >= Duration::from_secs(3 * 86_400);
    Ok(row)
}

/// What one scenario measured, in simulated milliseconds.
pub(super) struct Measured {
    pub fault_at: i64,
    pub removed_at: i64,
    pub fired: [Option<i64>; 2],
    pub resolved: [Option<i64>; 2],
    /// The target SLI's bad events from the fault's start to the end.
    pub bad_events: f64,
    /// The target SLI's events per steady tick.
    pub events_per_tick: f64,
    /// An alert of the target SLO fired during the steady state.
    pub noisy: bool,
}

async fn measure(
    drill: &OutageDrill,
    scenario: Scenario,
    ticker: &mut Ticker,
    stage: &mut Stage,
) -> Result<Measured, DrillError> {
    let ticks = |d: Duration| (d.as_millis() / TICK.as_millis()).max(1) as usize;
    // The first tick carries the load generator's seeding; the steady
    // rate is counted from the second.
    ticker.tick(stage, None).await?;
    let baseline = ticker.counts();
    let steady = ticks(drill.steady);
    for _ in 1..steady {
        ticker.tick(stage, None).await?;
    }
    let before = ticker.counts();
    let events_per_tick = (before.total - baseline.total) / (steady - 1).max(1) as f64;
    // An alert of the healthy platform is noise the table must show.
    let noisy = ticker.fired.iter().any(Option::is_some);
    ticker.fired = [None; 2];
    ticker.resolved = [None; 2];
    let fault_at = ticker
        .tick(stage, Some(Midway::Arm(scenario)))
        .await?
        .unwrap_or_default();
    let mut held = 1;
    while held < ticks(drill.max_fault) && ticker.fired.iter().any(Option::is_none) {
        ticker.tick(stage, None).await?;
        held += 1;
    }
    let removed_at = ticker
        .tick(stage, Some(Midway::Disarm(scenario)))
        .await?
        .unwrap_or_default();
    let open = |t: &Ticker| (0..2).any(|i| t.fired[i].is_some() && t.resolved[i].is_none());
    let mut waited = 1;
    while waited < ticks(drill.max_recovery) && open(ticker) {
        ticker.tick(stage, None).await?;
        waited += 1;
    }
    let after = ticker.counts();
    Ok(Measured {
        fault_at,
        removed_at,
        fired: ticker.fired,
        resolved: ticker.resolved,
        bad_events: after.errors - before.errors,
        events_per_tick,
        noisy,
    })
}
