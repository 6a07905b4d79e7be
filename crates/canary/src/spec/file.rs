//! The canary spec as written: plain serde structs whose `///` docs are the
//! user documentation of each field (and the JSON Schema editors read).
//! Everything here only parses; [`super::compile`] checks the values
//! against each other and against the SLO specs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yamlspec::{DurationText, Located};

/// A canary: what to shift traffic on, in which steps, judged on which
/// SLOs, and what to do when the judge cannot decide.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// The canary's name: printed with every decision, and the run's label.
    pub name: Located<String>,
    /// What the controller shifts traffic on.
    pub target: Located<TargetSection>,
    /// The weights, in order, each held at least its `dwell` and until the
    /// judge passes. After the last step passes, the canary is promoted.
    pub steps: Located<Vec<Located<StepSection>>>,
    /// The SLOs whose indicators are compared, canary against baseline.
    pub metrics: Located<Vec<Located<MetricSection>>>,
    /// How often and how strictly to judge.
    #[serde(default)]
    pub judge: JudgeSection,
    /// The longest the whole canary may take; reaching it with the judge
    /// still undecided applies `on_inconclusive`.
    pub max_duration: Located<DurationText>,
    /// What to do when `max_duration` passes and the judge still has too
    /// little data to decide: `rollback` (default), `pause` (hold the
    /// weight until `reliable canary promote` or `abort`), or `promote`.
    #[serde(default)]
    pub on_inconclusive: InconclusivePolicy,
    /// What to do when the metrics cannot be read (Prometheus down) for
    /// `judge.metrics_error_limit` looks in a row: `rollback` (default) or
    /// `pause`. A canary is never promoted on missing data.
    #[serde(default)]
    pub on_metrics_error: FailSafePolicy,
    /// What a restarted controller does with a run it finds unfinished:
    /// `resume` (default: set the recorded weight again and go on judging)
    /// or `rollback`.
    #[serde(default)]
    pub on_restart: RestartPolicy,
    /// Where the metrics come from: absent, the registry of this process
    /// (the target runs in `reliable up`); `prometheus: URL` for a cluster.
    #[serde(default)]
    pub metrics_source: Option<MetricsSourceSection>,
}

/// One kind of target, written as a map with one key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSection {
    /// A gateway route with a `canary_pool`: the weight is the route's
    /// canary percentage.
    Gateway {
        /// The route's name (`name` in `[[gateway.routes]]`, else its prefix).
        route: String,
        /// The gateway's admin API (`gateway.admin_listen`), when the
        /// controller is not in the gateway's process.
        #[serde(default)]
        admin_url: Option<String>,
        /// The environment variable holding an API key with the `admin`
        /// scope (keys never go in a spec; `<name>_FILE` names a file
        /// instead). Default: the controller's `canary.admin_key`.
        #[serde(default)]
        admin_key_env: Option<String>,
    },
    /// A model whose serving policy splits unversioned requests between
    /// the baseline (default) version and a canary version.
    Inference {
        /// The model's name.
        model: String,
        /// The version serving today.
        baseline_version: u64,
        /// The version being introduced.
        canary_version: u64,
        /// The inference API (`.../v2`), when the controller is not in the
        /// module's process.
        #[serde(default)]
        url: Option<String>,
        /// The environment variable holding an API key with the
        /// `models:admin` scope (or `<name>_FILE`, a file). Default:
        /// the controller's `canary.admin_key`.
        #[serde(default)]
        admin_key_env: Option<String>,
    },
}

/// One step: a weight and how long to hold it at least.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSection {
    /// The canary's share of traffic, in percent (above 0, at most 100,
    /// above the previous step's).
    pub weight: Located<f64>,
    /// The least time at this weight before the next step (above zero).
    pub dwell: Located<DurationText>,
}

/// An SLO whose indicator the judge compares.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSection {
    /// The SLO's id, `service-name` (as `reliable slo status` lists it),
    /// e.g. `gateway-availability`.
    pub slo: Located<String>,
    /// What the indicator measures; inferred from the SLO when absent
    /// (a latency threshold: `latency`; feedback counters: `accuracy`;
    /// shadow counters: `agreement`; else `errors`).
    #[serde(default)]
    pub kind: Option<MetricKind>,
    /// The smallest difference worth a rollback: for latency the mean's
    /// relative increase (default 0.10, 10 %), for proportions the
    /// absolute increase of the bad ratio (default 0.001, 0.1 point).
    #[serde(default)]
    pub min_effect: Option<Located<f64>>,
    /// The metric's weight in the score (default 1).
    #[serde(default)]
    pub weight: Option<Located<f64>>,
    /// A failing critical metric fails the canary whatever the score.
    #[serde(default)]
    pub critical: bool,
}

/// What a metric measures, which decides the test the judge runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Server errors over requests: compared as two proportions.
    Errors,
    /// Request durations: compared as distributions (Mann-Whitney U).
    Latency,
    /// Incorrect over all labelled predictions (model feedback).
    Accuracy,
    /// Disagreements of the canary, mirrored as a shadow, with the primary:
    /// checked against its SLO (the baseline has no such measure).
    Agreement,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Errors => "errors",
            Self::Latency => "latency",
            Self::Accuracy => "accuracy",
            Self::Agreement => "agreement",
        }
    }
}

/// How the judge looks.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeSection {
    /// Time between two looks (default 5s).
    #[serde(default)]
    pub interval: Option<Located<DurationText>>,
    /// The chance of rolling back an identical canary over a whole run
    /// (default 0.05); each look gets its share of it.
    #[serde(default)]
    pub significance: Option<Located<f64>>,
    /// Requests each side needs before any comparison (default 50).
    #[serde(default)]
    pub min_samples: Option<Located<u64>>,
    /// Score at or above which the canary passes (default 95).
    #[serde(default)]
    pub pass_score: Option<Located<f64>>,
    /// Score below which it fails (default 75); between the two it is
    /// inconclusive.
    #[serde(default)]
    pub marginal_score: Option<Located<f64>>,
    /// The burn rate that pages (default 14.4, the 1-hour window of the
    /// multiwindow alerts): a canary burning its SLO's budget this fast on
    /// its own is failed at once, whatever the comparison says.
    #[serde(default)]
    pub page_burn_rate: Option<Located<f64>>,
    /// Looks in a row whose metrics could not be read before
    /// `on_metrics_error` applies (default 3).
    #[serde(default)]
    pub metrics_error_limit: Option<Located<u32>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InconclusivePolicy {
    #[default]
    Rollback,
    Pause,
    Promote,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailSafePolicy {
    #[default]
    Rollback,
    Pause,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    #[default]
    Resume,
    Rollback,
}

/// Where the controller reads the two sides' metrics.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSourceSection {
    /// A Prometheus server's base URL (`http://prometheus:9090`): the
    /// judge runs `increase(...)` queries over the canary's window.
    pub prometheus: Located<String>,
}
