//! The experiment: what `parse` produces and `runner` runs, and the
//! file's sections as written. Probes and actions are dispatched on their
//! `type` by `parse` (so an unknown type is an error on its line); each
//! type's own fields are one struct in `kinds`, refusing unknown keys.
//! The `///` docs become the JSON Schema's descriptions
//! (`experiments/experiment.schema.json`, see `schema`), which editors
//! show on hover.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use yamlspec::DurationText;

pub use super::kinds::*;
use super::schema::{ActionSchema, ProbeSchema};

/// A parsed, validated experiment, variables substituted.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub title: String,
    pub description: Option<String>,
    /// Relative paths in the file (a load scenario) are read from here.
    pub base_dir: PathBuf,
    pub load: Option<LoadSection>,
    pub hypothesis: Option<Hypothesis>,
    pub method: Vec<Action>,
    pub rollbacks: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Hypothesis {
    pub title: String,
    /// Time between two checks while the method runs.
    pub interval: Duration,
    /// How long the after-check may retry until every probe holds.
    pub after_within: Duration,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub line: usize,
    pub spec: ProbeSpec,
    pub tolerance: Option<Tolerance>,
    pub when: Vec<Phase>,
}

#[derive(Debug, Clone)]
pub enum ProbeSpec {
    Http(HttpProbe),
    Load(LoadProbe),
    Metric(MetricProbe),
    Slo(SloProbe),
    Count(Box<CountProbe>),
}

#[derive(Debug, Clone)]
pub struct CountProbe {
    pub left: Probe,
    pub right: Probe,
    pub compare: Compare,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub line: usize,
    pub spec: ActionSpec,
    pub pauses: Pauses,
    pub repeat: Option<Repeat>,
}

#[derive(Debug, Clone)]
pub enum ActionSpec {
    ToxicAdd(ToxicAdd),
    /// `POST {api}/proxies/{proxy}/toxics/{name}`: new attributes and
    /// toxicity (every connection draws again).
    ToxicUpdate(ToxicAdd),
    ToxicRemove(ToxicRemove),
    ProxyUpdate(ProxyUpdate),
    ProcessStart(ProcessStart),
    ProcessSignal(ProcessSignal),
    ProcessRestart(ProcessRestart),
    DiskFill(DiskFill),
    Http(HttpAction),
    Pause(PauseAction),
}

impl ActionSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::ToxicAdd(_) => "toxic.add",
            ActionSpec::ToxicUpdate(_) => "toxic.update",
            ActionSpec::ToxicRemove(_) => "toxic.remove",
            ActionSpec::ProxyUpdate(_) => "proxy.update",
            ActionSpec::ProcessStart(_) => "process.start",
            ActionSpec::ProcessSignal(_) => "process.signal",
            ActionSpec::ProcessRestart(_) => "process.restart",
            ActionSpec::DiskFill(_) => "disk.fill",
            ActionSpec::Http(_) => "http",
            ActionSpec::Pause(_) => "pause",
        }
    }
}

/// When a hypothesis probe is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Before,
    During,
    After,
}

// ---- the file's sections ---------------------------------------------

/// The top level of an experiment file (Chaos Toolkit's layout).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "reliable chaos experiment")]
// `tags` is for people; the sections read as `IgnoredAny` are read from
// the tree by `parse` (dispatch on `type`), listed here for the schema
// and so that a misspelt section is an unknown key.
#[allow(dead_code)]
pub struct ExperimentFile {
    /// What the experiment shows, in one line.
    pub title: String,
    /// What it proves and how (shown in the report).
    pub description: Option<String>,
    /// Free labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Variables, used as `${name}`: a literal value, or `{type: env, key:
    /// NAME, default: VALUE}`. `--var name=value` overrides both.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ConfigurationValue>")]
    pub configuration: serde::de::IgnoredAny,
    /// Background load for the whole experiment (`reliable load`'s
    /// engine); `type: load` probes read it.
    pub load: Option<LoadSection>,
    /// What "working" means: probes with tolerances, checked before,
    /// during and after the method.
    #[serde(rename = "steady-state-hypothesis")]
    pub steady_state_hypothesis: Option<HypothesisSection>,
    /// The actions, in order, each with optional pauses.
    #[serde(default)]
    #[schemars(with = "Vec<ActionSchema>")]
    pub method: serde::de::IgnoredAny,
    /// Actions run at the end whatever happened (deviation, failure,
    /// Ctrl-C); they undo the method. Removing a toxic that is not there
    /// is not an error.
    #[serde(default)]
    #[schemars(with = "Vec<ActionSchema>")]
    pub rollbacks: serde::de::IgnoredAny,
}

/// A variable: a literal, or read from the environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // schema only
pub enum ConfigurationValue {
    Text(String),
    Number(f64),
    Flag(bool),
    Env {
        /// `env`.
        #[serde(rename = "type")]
        kind: String,
        /// The environment variable.
        key: String,
        /// Used when the variable is not set.
        default: Option<String>,
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `probes` is read from the tree by `parse`
pub struct HypothesisSection {
    pub title: String,
    /// Time between checks while the method runs (default 1s).
    pub interval: Option<DurationText>,
    /// The after-check retries (every `interval`) until every probe holds
    /// or this much time has passed (default 0: one check).
    pub after_within: Option<DurationText>,
    /// Probes; each needs a `tolerance`.
    #[schemars(with = "Vec<ProbeSchema>")]
    pub probes: serde::de::IgnoredAny,
}

/// `load`: one URL (quick mode) or a `reliable load` scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// Quick mode: every request goes here.
    pub url: Option<String>,
    /// Quick mode: request method (default GET).
    pub method: Option<String>,
    /// Requests per second (open model): required in quick mode; with a
    /// scenario, replaces the rate of its constant-rate scenarios.
    pub rate: Option<f64>,
    /// How long the load runs (default: until the experiment ends); with
    /// a scenario, replaces its scenarios' durations. The after-check
    /// waits for a finite load to end, so it counts all it did.
    pub duration: Option<DurationText>,
    /// Keep-alive connections (default 8).
    pub connections: Option<usize>,
    /// A scenario file (relative to the experiment file); its executors
    /// set the rate; it is stopped when the experiment ends.
    pub scenario: Option<String>,
    /// `{{target}}` of the scenario file.
    pub target: Option<String>,
    /// Load before the first check, which measures it (default 2s).
    pub warmup: Option<DurationText>,
    /// A request slower than this is an error (default 5s).
    pub timeout: Option<DurationText>,
}

/// `pauses`: waits around an action, as Chaos Toolkit has them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pauses {
    pub before: Option<DurationText>,
    pub after: Option<DurationText>,
}

/// Bounds a probe's value must stay within; every bound given must hold.
/// Latencies are in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<f64>,
    /// The value must be one of these (status codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<f64>,
    /// At most this much above the probe's value in the before-check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
}
