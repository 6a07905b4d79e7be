//! `reliable drill canary`: real canaries, inside one process, under
//! generated load, each judged by the real controller.
//!
//! Each scenario builds the gateway in front of two pools of the URL
//! shortener (`stable` and `canary`, one SQLite database), seeds a link,
//! sends `GET /{slug}` at a fixed rate with the load generator, and starts
//! a canary spec on the gateway route. The canary pool is made bad on
//! purpose ([`crate::fault`]). The drill then reads what happened from the
//! outside: the time from the first bad answer to weight 0, and how many
//! requests the bad version touched.
//!
//! | scenario | the canary | expected |
//! |---|---|---|
//! | `errors` | answers 5 % of requests with 500 | rolled back |
//! | `latency` | +50 ms on every request | rolled back |
//! | `good` | identical to the baseline (A/A) | promoted |
//! | `slight` | 2 % slower | promoted (under the effect floor) |
//! | `killed` | identical; the controller is stopped at 30 % and a new one started on the same database | resumed at its recorded weight, then promoted |

use crate::fault::{Behaviour, Fault};
use canary::controller::{Action, Decision, Phase};
use canary::store::RunStore;
use canary::Controller;
use gateway::{Gateway, GatewayConfig, RouteConfig};
use kit::traffic::{SplitRegistry, TrafficSplits};
use kit::{Clock, SystemClock};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The gateway route the drill canaries.
const ROUTE: &str = "drill";

/// One kind of canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Errors,
    Latency,
    Good,
    Slight,
    Killed,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Errors,
        Scenario::Latency,
        Scenario::Good,
        Scenario::Slight,
        Scenario::Killed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Errors => "errors",
            Self::Latency => "latency",
            Self::Good => "good",
            Self::Slight => "slight",
            Self::Killed => "killed",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Errors => "bad: 5% errors",
            Self::Latency => "bad: +50 ms",
            Self::Good => "good (A/A)",
            Self::Slight => "slightly worse: +2%",
            Self::Killed => "controller killed at 30%",
        }
    }

    fn canary(self, base: Duration) -> Behaviour {
        let mut b = Behaviour::healthy(base);
        match self {
            Self::Errors => b.error_ratio = 0.05,
            Self::Latency => b.extra = Duration::from_millis(50),
            Self::Slight => b.slower_by = 0.02,
            Self::Good | Self::Killed => {}
        }
        b
    }

    /// Whether the controller should roll it back.
    pub fn is_bad(self) -> bool {
        matches!(self, Self::Errors | Self::Latency)
    }
}

/// How the drill runs.
#[derive(Debug, Clone)]
pub struct CanaryDrill {
    /// Requests per second through the gateway.
    pub rate: f64,
    /// Dwell of each of the six steps (5, 10, 30, 50, 80, 100 %).
    pub dwell: Duration,
    /// Service time both sides take per request.
    pub base_latency: Duration,
    /// Seeds the bad version's coin flips.
    pub seed: u64,
    pub scenarios: Vec<Scenario>,
}

impl Default for CanaryDrill {
    fn default() -> Self {
        Self {
            rate: 200.0,
            dwell: Duration::from_secs(5),
            base_latency: Duration::from_millis(10),
            seed: 1,
            scenarios: Scenario::ALL.to_vec(),
        }
    }
}

/// One row of the drill's table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    /// `promoted`, `rolled back`, `paused`.
    pub verdict: &'static str,
    /// Bad canaries: first bad answer to weight 0. Others: start to promotion.
    pub seconds_to_decision: f64,
    /// From the canary's start to its decision.
    pub seconds_from_start: f64,
    /// Requests the bad version slowed or failed.
    pub requests_affected: u64,
    /// Requests the canary pool served.
    pub canary_requests: u64,
    /// The decision's summary.
    pub reason: String,
    /// Did it end as it should?
    pub as_expected: bool,
}

/// Why the drill could not run (not: a canary that ended wrongly, which
/// is a row with `as_expected: false`).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("setting up the drill: {0}")]
    Setup(String),
    #[error("the canary could not start: {0}")]
    Start(#[from] canary::controller::ControllerError),
    #[error("the canary did not finish within {0:?}")]
    Timeout(Duration),
}

fn setup<E: std::fmt::Display>(e: E) -> DrillError {
    DrillError::Setup(e.to_string())
}

/// The judge's significance in the drill: the chance, at most, that a
/// run fails an identical canary. The drill runs three A/A canaries at
/// once (good, slight, killed), and a suite run must pass all three: at
/// the default 0.05 each, the bound allows a false rollback in up to 14%
/// of runs; at 0.01, 3%. The bad scenarios are decided as fast: their
/// p-values at the first look (about 1e-150) are far below either
/// level's per-look share (4e-5 and 8e-6).
const SIGNIFICANCE: f64 = 0.01;

/// The spec every scenario runs.
pub fn spec(scenario: Scenario, dwell: Duration) -> String {
    let dwell = humantime::format_duration(dwell).to_string();
    let steps: String = [5, 10, 30, 50, 80, 100]
        .iter()
        .map(|w| format!("  - weight: {w}\n    dwell: {dwell}\n"))
        .collect();
    format!(
        "name: drill-{name}\ntarget:\n  gateway:\n    route: {ROUTE}\nsteps:\n{steps}metrics:\n  - slo: gateway-availability\n  - slo: gateway-latency\njudge:\n  interval: 1s\n  significance: {SIGNIFICANCE}\nmax_duration: 10m\n",
        name = scenario.name()
    )
}

/// Runs every scenario in turn.
pub async fn run(drill: &CanaryDrill) -> Result<Vec<Row>, DrillError> {
    kit::metrics::install();
    let mut rows = Vec::new();
    for (i, scenario) in drill.scenarios.iter().enumerate() {
        rows.push(run_one(drill, *scenario, drill.seed.wrapping_add(i as u64)).await?);
    }
    Ok(rows)
}

/// The platform pieces one scenario runs on.
struct Stage {
    _dir: tempfile::TempDir,
    db: String,
    registry: SplitRegistry,
    gateway: Gateway,
    canary: Arc<Fault>,
    url: url::Url,
    server: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    tasks: kit::tasks::TaskSpawner,
}

async fn stage(drill: &CanaryDrill, scenario: Scenario, seed: u64) -> Result<Stage, DrillError> {
    let dir = tempfile::tempdir().map_err(setup)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tasks = kit::tasks::Supervisor::new().for_module("shortener");
    let links = format!("sqlite:{}", dir.path().join("links.db").display());
    let store = shortener::storage::connect(&links, &kit::storage::PoolConfig::default())
        .await
        .map_err(setup)?;
    let shortener = shortener::Shortener::build(
        shortener::ShortenerConfig::default(),
        store,
        clock.clone(),
        "http://127.0.0.1",
        tasks.clone(),
    )
    .await
    .map_err(setup)?;
    let app = shortener.router();
    let slug = create_link(&app).await?;
    let stable = Fault::new(Behaviour::healthy(drill.base_latency), seed);
    let canary = Fault::new(scenario.canary(drill.base_latency), seed ^ 0x5eed);
    let mut pools = BTreeMap::new();
    pools.insert("stable".to_string(), stable.wrap(app.clone()));
    pools.insert("canary".to_string(), canary.wrap(app));
    let mut route = RouteConfig::new("/", "stable");
    route.name = Some(ROUTE.to_string());
    route.canary_pool = Some("canary".to_string());
    let config = GatewayConfig {
        routes: vec![route],
        ..GatewayConfig::default()
    };
    let limiter = Arc::new(ratelimit::LocalLimiter::new(clock.clone()));
    let gateway = Gateway::build(config, pools, None, None, limiter, clock).map_err(setup)?;
    let registry = SplitRegistry::default();
    registry.register(
        "gateway",
        Arc::new(gateway.clone()) as Arc<dyn TrafficSplits>,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(setup)?;
    let addr = listener.local_addr().map_err(setup)?;
    let stop = CancellationToken::new();
    let router = gateway.router();
    let shutdown = stop.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    let url = url::Url::parse(&format!("http://{addr}/{slug}")).map_err(setup)?;
    Ok(Stage {
        db: format!("sqlite:{}", dir.path().join("canary.db").display()),
        _dir: dir,
        registry,
        gateway,
        canary,
        url,
        server,
        stop,
        tasks,
    })
}

async fn create_link(app: &axum::Router) -> Result<String, DrillError> {
    use tower::ServiceExt;
    let request = http::Request::post("/api/v1/links")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            r#"{"url":"https://example.com/drill"}"#,
        ))
        .map_err(setup)?;
    let response = app.clone().oneshot(request).await.map_err(setup)?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(setup)?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(setup)?;
    match json["slug"].as_str() {
        Some(slug) if status.is_success() => Ok(slug.to_string()),
        _ => Err(DrillError::Setup(format!(
            "creating the drill's link: {status} {json}"
        ))),
    }
}

/// A controller over the stage's database.
async fn new_controller(
    stage: &Stage,
) -> Result<(Controller, TaskTracker, CancellationToken), DrillError> {
    let store = RunStore::connect(&stage.db, &kit::storage::PoolConfig::default())
        .await
        .map_err(setup)?;
    let slos = slo::catalog::load_platform().map_err(setup)?;
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let controller = Controller::new(
        store,
        slos,
        canary::targets(stage.registry.clone(), None),
        canary::sources(None),
        Arc::new(SystemClock),
        tracker.clone(),
        stop.clone(),
    );
    Ok((controller, tracker, stop))
}

/// Waits for the run's next decision that is not a hold.
async fn next_move(
    decisions: &mut broadcast::Receiver<(String, Decision)>,
    run: &str,
    limit: Duration,
) -> Result<(Decision, Instant), DrillError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let received = tokio::time::timeout_at(deadline, decisions.recv())
            .await
            .map_err(|_| DrillError::Timeout(limit))?;
        match received {
            Ok((id, d)) if id == run && d.action != Action::Hold => return Ok((d, Instant::now())),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Err(DrillError::Timeout(limit)),
        }
    }
}

async fn run_one(drill: &CanaryDrill, scenario: Scenario, seed: u64) -> Result<Row, DrillError> {
    let stage = stage(drill, scenario, seed).await?;
    let load_stop = Arc::new(AtomicBool::new(false));
    let load = {
        let spec = load::LoadSpec {
            url: stage.url.clone(),
            method: http::Method::GET,
            headers: Vec::new(),
            rate: Some(drill.rate),
            duration: Duration::from_secs(3600),
            warmup: Duration::ZERO,
            connections: 64,
            timeout: Duration::from_secs(5),
        };
        let options = load::EngineOptions {
            threads: Some(1),
            stop: Some(load_stop.clone()),
        };
        tokio::spawn(async move { load::run_url(spec, &options).await })
    };
    // Whatever the judging does, the load and the server stop here.
    let judged = judge_scenario(drill, scenario, &stage).await;
    load_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = load.await;
    stage.stop.cancel();
    let _ = stage.server.await;
    stage.tasks.shutdown().await;
    let Judged {
        started,
        decided_at,
        outcome,
        reason,
        resumed_as_expected,
    } = judged?;
    let from = if scenario.is_bad() {
        stage.canary.first_bad().unwrap_or(started)
    } else {
        started
    };
    let expected = if scenario.is_bad() {
        Phase::RolledBack
    } else {
        Phase::Promoted
    };
    Ok(Row {
        scenario,
        verdict: match outcome {
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled back",
            _ => "paused",
        },
        seconds_to_decision: decided_at.saturating_duration_since(from).as_secs_f64(),
        seconds_from_start: decided_at.saturating_duration_since(started).as_secs_f64(),
        requests_affected: stage.canary.affected(),
        canary_requests: stage.canary.served(),
        reason,
        as_expected: outcome == expected && resumed_as_expected,
    })
}

/// How one scenario's canary ended.
struct Judged {
    started: Instant,
    decided_at: Instant,
    outcome: Phase,
    reason: String,
    resumed_as_expected: bool,
}

/// Runs the scenario's canary on `stage` until it is decided.
async fn judge_scenario(
    drill: &CanaryDrill,
    scenario: Scenario,
    stage: &Stage,
) -> Result<Judged, DrillError> {
    let limit = drill.dwell * 6 * 4 + Duration::from_secs(60);
    let (mut controller, mut tracker, mut stop) = new_controller(stage).await?;
    // An early return (a timeout) still stops every controller's runs.
    let mut stops = vec![stop.clone().drop_guard()];
    let mut decisions = controller.subscribe();
    let started = Instant::now();
    let run = controller.start(&spec(scenario, drill.dwell)).await?;
    let mut reason = String::new();
    let mut decided_at = started;
    let mut outcome = Phase::Running;
    let mut resumed_as_expected = true;
    while outcome == Phase::Running {
        let (decision, at) = next_move(&mut decisions, &run.id, limit).await?;
        reason = explain(&decision);
        decided_at = at;
        match decision.action {
            Action::Promote => outcome = Phase::Promoted,
            Action::Rollback => outcome = Phase::RolledBack,
            Action::Pause => outcome = Phase::Paused,
            Action::Advance { to }
                if scenario == Scenario::Killed && to == 30.0 && resumed_as_expected =>
            {
                // Kill the controller where it stands: its run stays
                // unfinished in the database, the split is 30 %.
                stop.cancel();
                tracker.close();
                tracker.wait().await;
                // Someone changes the split meanwhile; the next controller
                // must not leave it unknown.
                let _ = stage
                    .gateway
                    .set(
                        ROUTE,
                        0.0,
                        "drill: split moved while the controller was down",
                    )
                    .await;
                let next = new_controller(stage).await?;
                (controller, tracker, stop) = next;
                stops.push(stop.clone().drop_guard());
                decisions = controller.subscribe();
                let resumed = controller.resume_unfinished().await?;
                let weight_now = stage
                    .gateway
                    .get(ROUTE)
                    .await
                    .map(|s| s.percent)
                    .unwrap_or(-1.0);
                resumed_as_expected = resumed
                    .iter()
                    .any(|r| r.id == run.id && r.phase == Phase::Running)
                    && (weight_now - 30.0).abs() < 1e-9;
                if !resumed_as_expected {
                    reason = format!("resume failed: split at {weight_now}% after restart");
                    outcome = Phase::Paused;
                }
            }
            Action::Advance { .. } | Action::Hold => {}
        }
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(Judged {
        started,
        decided_at,
        outcome,
        reason,
        resumed_as_expected,
    })
}

/// The decision's summary and, for a canary failed by the judge, the
/// evidence of each failing metric: a drill that ends wrongly says which
/// metric moved it, by how much and on how many requests.
fn explain(decision: &Decision) -> String {
    let failed: Vec<String> = decision
        .judgement
        .iter()
        .flat_map(|j| &j.metrics)
        .filter(|m| m.verdict == canary::judge::Verdict::Fail)
        .map(|m| format!("{}: {}", m.slo, m.evidence))
        .collect();
    if failed.is_empty() {
        decision.summary.clone()
    } else {
        format!("{} [{}]", decision.summary, failed.join("; "))
    }
}

/// The drill's table, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | verdict | time to decision | from start | requests affected | canary requests | as expected |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} s | {:.1} s | {} | {} | {} |\n",
            r.scenario.describe(),
            r.verdict,
            r.seconds_to_decision,
            r.seconds_from_start,
            r.requests_affected,
            r.canary_requests,
            if r.as_expected { "yes" } else { "NO" }
        ));
    }
    out
}
