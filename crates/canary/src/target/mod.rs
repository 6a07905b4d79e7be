//! What a canary shifts traffic on, behind one port: [`Target`].
//!
//! Two kinds exist, each reachable two ways:
//! - a gateway route with a canary pool: in process through the gateway's
//!   [`kit::traffic::TrafficSplits`] (`reliable up`), or through its admin
//!   API (`PUT /admin/v1/routes/{name}/split`);
//! - a model's serving policy: in process, or through
//!   `PUT /v2/repository/models/{name}/policy`.
//!
//! Another kind (an Argo Rollouts `setWeight`, an Istio VirtualService
//! written to Git) is one more implementation of [`Target`] plus the
//! series its sides are measured by ([`queries`]).

mod http;
mod in_process;

pub use http::{HttpGateway, HttpInference};
pub use in_process::InProcessTarget;

use crate::metrics::{Counter, Matcher, Query};
use crate::spec::{MetricKind, TargetSection};
use async_trait::async_trait;
use serde::Serialize;

/// The two sides of a split, as the target names them (gateway pools,
/// model versions) and the canary's current share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub baseline: String,
    pub canary: String,
    /// Percent of traffic on the canary.
    pub percent: f64,
}

/// Why a target could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The route or model does not exist (or has nothing to split).
    #[error("unknown target {target}: {reason}")]
    Unknown { target: String, reason: String },
    /// The target refused the change (scope, validation).
    #[error("{target} refused the change: {reason}")]
    Refused { target: String, reason: String },
    /// The target could not be reached; the split there is not known.
    #[error("{target} could not be reached: {reason}")]
    Unreachable { target: String, reason: String },
}

impl TargetError {
    /// Worth trying again later (the split may still be changed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// One side of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Baseline,
    Canary,
}

/// The port the controller drives.
#[async_trait]
pub trait Target: Send + Sync {
    /// `gateway/ROUTE` or `inference/MODEL`.
    fn key(&self) -> String;

    /// The split as it is now; an error if the target does not exist or
    /// cannot be split.
    async fn split(&self) -> Result<Split, TargetError>;

    /// Sets the canary's share, saying why (logged by the target).
    async fn set_weight(&self, percent: f64, reason: &str) -> Result<Split, TargetError>;

    /// Makes the canary the baseline: a gateway route keeps 100 % on its
    /// canary pool; a model's default version becomes the canary version.
    async fn promote(&self, reason: &str) -> Result<Split, TargetError>;
}

/// What the two sides' series are told apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured<'a> {
    /// A gateway route's pools (`gateway_pool`).
    Route(&'a str),
    /// A model's versions (`version`).
    Model(&'a str),
    /// A module's pods by Argo Rollouts' pod template hash: the module's
    /// own `http_server_request_duration_seconds{service}` with the pods'
    /// `rollouts_pod_template_hash` label (judge only: Argo steps the
    /// weights).
    Pods(&'a str),
}

impl<'a> Measured<'a> {
    pub fn of(target: &'a TargetSection) -> Self {
        match target {
            TargetSection::Gateway { route, .. } => Self::Route(route),
            TargetSection::Inference { model, .. } => Self::Model(model),
        }
    }
}

/// Errors (5xx over all) and latency from one request-duration
/// histogram, both sides told apart by `base`.
fn request_histogram(duration: &str, base: Vec<Matcher>, kind: MetricKind) -> Option<Query> {
    match kind {
        MetricKind::Errors => {
            let mut bad = base.clone();
            bad.push(Matcher::Prefix(
                "http_response_status_code".into(),
                "5".into(),
            ));
            Some(Query::Proportion {
                bad: vec![Counter::new(&format!("{duration}_count"), bad)],
                total: vec![Counter::new(&format!("{duration}_count"), base)],
            })
        }
        MetricKind::Latency => Some(Query::Histogram {
            name: duration.to_string(),
            matchers: base,
        }),
        MetricKind::Accuracy | MetricKind::Agreement => None,
    }
}

/// The series that measure `kind` for one side of `target`, given the
/// names [`Target::split`] reported; `None` when the kind does not apply
/// (a gateway has no accuracy; a baseline has no shadow agreement).
pub fn queries(target: Measured<'_>, split: &Split, kind: MetricKind, side: Side) -> Option<Query> {
    let name = match side {
        Side::Baseline => &split.baseline,
        Side::Canary => &split.canary,
    };
    match target {
        Measured::Pods(service) => request_histogram(
            "http_server_request_duration_seconds",
            vec![
                Matcher::eq("service", service),
                Matcher::eq("rollouts_pod_template_hash", name),
            ],
            kind,
        ),
        Measured::Route(route) => request_histogram(
            "gateway_request_duration_seconds",
            vec![
                Matcher::eq("gateway_route", route),
                Matcher::eq("gateway_pool", name),
            ],
            kind,
        ),
        Measured::Model(model) => {
            let base = vec![Matcher::eq("model", model), Matcher::eq("version", name)];
            let with = |extra: Matcher| {
                let mut m = base.clone();
                m.push(extra);
                m
            };
            match kind {
                MetricKind::Errors => {
                    // A request the client got wrong is not the version's fault.
                    let failed = Counter::new(
                        "inference_errors_total",
                        with(Matcher::NotEqual("kind".into(), "bad_input".into())),
                    );
                    Some(Query::Proportion {
                        bad: vec![failed.clone()],
                        total: vec![
                            failed,
                            Counter::new("inference_request_duration_seconds_count", base.clone()),
                        ],
                    })
                }
                MetricKind::Latency => Some(Query::Histogram {
                    name: "inference_request_duration_seconds".to_string(),
                    matchers: base,
                }),
                MetricKind::Accuracy => Some(Query::Proportion {
                    bad: vec![Counter::new(
                        "inference_feedback_total",
                        with(Matcher::eq("outcome", "incorrect")),
                    )],
                    total: vec![Counter::new("inference_feedback_total", base.clone())],
                }),
                MetricKind::Agreement => match side {
                    Side::Baseline => None,
                    Side::Canary => Some(Query::Proportion {
                        bad: vec![Counter::new(
                            "inference_shadow_total",
                            with(Matcher::eq("outcome", "disagree")),
                        )],
                        total: vec![
                            Counter::new(
                                "inference_shadow_total",
                                with(Matcher::eq("outcome", "disagree")),
                            ),
                            Counter::new(
                                "inference_shadow_total",
                                with(Matcher::eq("outcome", "agree")),
                            ),
                        ],
                    }),
                },
            }
        }
    }
}

/// The admin key a remote target is called with: from the environment
/// variable the spec names (or the file its `_FILE` twin names), else the
/// controller's own `canary.admin_key`. Keys never go in a spec.
pub fn admin_key(env: Option<&str>, configured: Option<&str>) -> Option<String> {
    match env {
        Some(name) => key_from_env(name),
        None => configured
            .filter(|k| !k.trim().is_empty())
            .map(str::to_string),
    }
}

/// A key from the variable `name`, else from the file its `name_FILE`
/// twin names (a mounted Secret), as every other secret is read.
pub fn key_from_env(name: &str) -> Option<String> {
    if let Some(key) = std::env::var(name).ok().filter(|k| !k.trim().is_empty()) {
        return Some(key);
    }
    let file = std::env::var(format!("{name}_FILE")).ok()?;
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            Some(text.trim_end_matches(['\n', '\r']).to_string()).filter(|k| !k.trim().is_empty())
        }
        Err(e) => {
            tracing::warn!(variable = %format!("{name}_FILE"), file = %file, error = %e, "cannot read the admin key file");
            None
        }
    }
}

/// Where a remote target's admin key is read from by default.
pub const DEFAULT_KEY_ENV: &str = "RELIABLE_CANARY_ADMIN_KEY";
