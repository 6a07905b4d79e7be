//! Fake sources with fixed data, and request helpers.

use crate::fake_cost::{CostData, FakeCost};
use crate::module_apis::{canary_api, inference_api, FakeKeys};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use console::sources::{
    CostSource, DependencyState, DependencyStatus, EdgeKind, GraphEdge, GraphNode, KeyVerifier,
    ModuleApi, ModuleStatus, NodeKind, PlatformSource, ServiceGraph, SloSource, SourceError,
    Sources,
};
use console::Access;
use http_body_util::BodyExt;
use kit::changes::{ChangeEvent, ChangeKind, ChangeLog, MemoryChangeLog};
use kit::ManualClock;
use serde_json::Value;
use slo::alerts::{Alert, AlertCondition, AlertSeverity, AlertState, AlertTransition, SloPoint};
use slo::policy::Policy;
use slo::status::{SloStatus, StatusReport, WindowBurn};
use std::sync::Arc;
use tower::ServiceExt;

pub const XSS: &str = "<script>alert(1)</script>";
/// Points each SLO's series holds.
pub const SERIES_POINTS: usize = 7;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

pub struct FakePlatform;

#[async_trait]
impl PlatformSource for FakePlatform {
    async fn modules(&self) -> Vec<ModuleStatus> {
        let module = |name: &str, ready: bool, deps: &[&str]| ModuleStatus {
            name: name.into(),
            ready,
            not_ready_reasons: if ready {
                vec![]
            } else {
                vec!["database unreachable".into()]
            },
            request_rate: Some(12.5),
            error_ratio: Some(0.0123),
            p99_seconds: Some(0.0425),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        };
        vec![
            module("gateway", true, &["limiter"]),
            module("shortener", true, &["database"]),
            module("orders", false, &["database", "bus"]),
            module("notifier", true, &["bus"]),
        ]
    }

    async fn dependencies(&self) -> Vec<DependencyStatus> {
        let dep = |name: &str, adapter: &str, state| DependencyStatus {
            name: name.into(),
            adapter: adapter.into(),
            state,
            detail: None,
        };
        vec![
            dep("database", "sqlite", DependencyState::Up),
            dep("bus", "in-process", DependencyState::Down),
            dep("limiter", "in-process", DependencyState::Up),
        ]
    }

    fn graph(&self) -> ServiceGraph {
        let node = |id: &str, kind| GraphNode {
            id: id.into(),
            kind,
        };
        let edge = |from: &str, to: &str, kind, rate| GraphEdge {
            from: from.into(),
            to: to.into(),
            kind,
            rate: Some(rate),
            error_ratio: Some(0.0),
        };
        ServiceGraph {
            nodes: vec![
                node("client", NodeKind::Client),
                node("gateway", NodeKind::Module),
                node("shortener", NodeKind::Module),
                node("orders", NodeKind::Module),
                node("notifier", NodeKind::Module),
                node("database", NodeKind::Dependency),
            ],
            edges: vec![
                edge("client", "gateway", EdgeKind::Http, 20.0),
                edge("gateway", "shortener", EdgeKind::Http, 15.0),
                edge("gateway", "orders", EdgeKind::Http, 5.0),
                edge("orders", "notifier", EdgeKind::Event, 4.25),
                edge("shortener", "database", EdgeKind::Dependency, 15.0),
            ],
        }
    }

    async fn metrics_text(&self) -> Option<String> {
        Some(
            [
                r#"inference_request_duration_seconds_bucket{model="digits",version="1",le="0.01"} 90"#,
                r#"inference_request_duration_seconds_bucket{model="digits",version="1",le="0.1"} 100"#,
                r#"inference_request_duration_seconds_bucket{model="digits",version="1",le="+Inf"} 100"#,
                r#"inference_request_duration_seconds_count{model="digits",version="1"} 100"#,
                r#"inference_drift_score{model="digits",version="1",feature="x",statistic="psi"} 0.31"#,
                r#"inference_drift_score{model="digits",version="1",feature="y",statistic="psi"} 0.05"#,
                r#"inference_feedback_total{model="digits",version="1",outcome="correct"} 45"#,
                r#"inference_feedback_total{model="digits",version="1",outcome="incorrect"} 5"#,
            ]
            .join("\n"),
        )
    }
}

/// `failing_history`: the alert history store is down.
pub struct FakeSlos {
    pub failing_history: bool,
}

fn slo_status(id: &str, name: &str, remaining: Option<f64>) -> SloStatus {
    SloStatus {
        id: id.into(),
        service: "shortener".into(),
        name: name.into(),
        objective: 0.999,
        period_seconds: 30 * 86_400,
        sli: remaining.map(|r| 1.0 - (1.0 - r) * 0.001),
        budget_remaining: remaining,
        budget_remaining_seconds: remaining
            .map(|r| SloStatus::remaining_seconds(0.999, 30 * 86_400, r)),
        burn_rates: vec![
            WindowBurn {
                window: "5m".into(),
                burn_rate: Some(14.4),
            },
            WindowBurn {
                window: "1h".into(),
                burn_rate: None,
            },
        ],
        firing: vec![],
    }
}

#[async_trait]
impl SloSource for FakeSlos {
    fn report(&self) -> StatusReport {
        StatusReport {
            source: "local".into(),
            slos: vec![
                slo_status("shortener-availability", "Redirects succeed", Some(0.15)),
                slo_status("orders-latency", XSS, Some(0.75)),
                slo_status("notifier-delivery", "Notifications delivered", None),
            ],
        }
    }

    fn alerts(&self) -> Vec<Alert> {
        let at = now().timestamp_millis();
        vec![
            Alert {
                name: "ShortenerAvailabilityPageBurn".into(),
                slo_id: "shortener-availability".into(),
                service: "shortener".into(),
                condition: AlertCondition::PageBurn,
                severity: AlertSeverity::Page,
                state: AlertState::Firing,
                since_ms: at - 600_000,
                firing_since_ms: Some(at - 480_000),
                runbook: Some("docs/runbooks/shortener.md".into()),
                summary: "burning the budget 14x".into(),
            },
            Alert {
                name: "OrdersLatencyTicketBurn".into(),
                slo_id: "orders-latency".into(),
                service: "orders".into(),
                condition: AlertCondition::TicketBurn,
                severity: AlertSeverity::Ticket,
                state: AlertState::Pending,
                since_ms: at - 60_000,
                firing_since_ms: None,
                runbook: Some("javascript:alert(1)".into()),
                summary: "slow burn".into(),
            },
        ]
    }

    async fn alert_history(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, SourceError> {
        if self.failing_history {
            return Err(SourceError::Unavailable("alerts.db is locked".into()));
        }
        let at = now().timestamp_millis();
        let all = vec![
            AlertTransition {
                at_ms: at - 480_000,
                name: "ShortenerAvailabilityPageBurn".into(),
                slo_id: "shortener-availability".into(),
                service: "shortener".into(),
                condition: AlertCondition::PageBurn,
                severity: AlertSeverity::Page,
                firing: true,
                runbook: Some("https://runbooks.example/shortener".into()),
            },
            AlertTransition {
                at_ms: at - 3 * 86_400_000,
                name: "OrdersResolvedEarlier".into(),
                slo_id: "orders-latency".into(),
                service: "orders".into(),
                condition: AlertCondition::TicketBurn,
                severity: AlertSeverity::Ticket,
                firing: false,
                runbook: None,
            },
        ];
        Ok(all
            .into_iter()
            .filter(|t| t.at_ms >= since.timestamp_millis())
            .take(limit)
            .collect())
    }

    fn series(&self, _slo_id: &str, since_ms: i64, max_points: usize) -> Vec<SloPoint> {
        let step = (now().timestamp_millis() - since_ms) / SERIES_POINTS as i64;
        (0..SERIES_POINTS.min(max_points))
            .map(|i| SloPoint {
                at_ms: since_ms + step * i as i64,
                sli: Some(0.9995 - i as f64 * 0.0001),
                budget_remaining: Some(0.9 - i as f64 * 0.1),
                burn_rate_5m: Some(1.0),
            })
            .collect()
    }
}

/// Which optional sources a test gets.
pub struct Setup {
    pub modules: bool,
    pub changes: bool,
    pub keys: bool,
    pub failing_history: bool,
    /// The cost source; `None`: cost is not measured.
    pub cost: Option<CostData>,
    pub access: Access,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            modules: true,
            changes: true,
            keys: true,
            failing_history: false,
            cost: Some(CostData::Measured),
            access: Access::Loopback,
        }
    }
}

pub fn change_log() -> Arc<MemoryChangeLog> {
    let log = MemoryChangeLog::new(1_000);
    for i in 0..60u32 {
        let kind = if i % 2 == 0 {
            ChangeKind::CanaryStep
        } else {
            ChangeKind::KeyCreated
        };
        let service = if i % 2 == 0 { "gateway" } else { "platform" };
        log.record(ChangeEvent::new(
            now() - chrono::Duration::minutes(i64::from(60 - i)),
            kind,
            service,
            "ops",
            format!("subject-{i}"),
            if i == 59 {
                format!("summary {XSS}")
            } else {
                format!("summary {i}")
            },
        ));
    }
    log
}

pub fn app(setup: Setup) -> Router {
    let cost = setup.cost.map(|data| Arc::new(FakeCost::new(data)));
    app_with_cost(setup, cost)
}

/// The console over `cost` (kept by the caller to see what it was asked).
pub fn app_with_cost(setup: Setup, cost: Option<Arc<FakeCost>>) -> Router {
    let sources = Sources {
        platform: Arc::new(FakePlatform),
        slos: Arc::new(FakeSlos {
            failing_history: setup.failing_history,
        }),
        changes: setup
            .changes
            .then(|| change_log() as Arc<dyn kit::changes::ChangeFeed>),
        canaries: setup
            .modules
            .then(|| Arc::new(canary_api()) as Arc<dyn ModuleApi>),
        models: setup
            .modules
            .then(|| Arc::new(inference_api()) as Arc<dyn ModuleApi>),
        policy: Some(Policy::default()),
        cost: cost.map(|c| c as Arc<dyn CostSource>),
        keys: setup
            .keys
            .then(|| Arc::new(FakeKeys) as Arc<dyn KeyVerifier>),
        clock: Arc::new(ManualClock::new(now())),
    };
    console::router(sources, setup.access)
}

pub fn loopback() -> Router {
    app(Setup::default())
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(router: &Router, uri: &str) -> Answer {
    let request = Request::get(uri)
        .body(Body::empty())
        .expect("a valid request");
    send(router, request).await
}

/// Every page and API path.
pub const PAGES: [&str; 8] = [
    "/",
    "/slos",
    "/slos/shortener-availability",
    "/alerts",
    "/changes",
    "/canaries",
    "/models",
    "/cost",
];
pub const APIS: [&str; 8] = [
    "/api/v1/overview",
    "/api/v1/slos",
    "/api/v1/slos/shortener-availability",
    "/api/v1/alerts",
    "/api/v1/changes",
    "/api/v1/canaries",
    "/api/v1/models",
    "/api/v1/cost",
];
