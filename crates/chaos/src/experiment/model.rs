//! The experiment file as written. Probes and actions are dispatched on
//! their `type` by `parse` (so an unknown type is an error on its line);
//! each type's fields are one struct here, refusing unknown keys. The
//! `///` docs become the JSON Schema's descriptions
//! (`experiments/experiment.schema.json`), which editors show on hover.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use yamlspec::DurationText;

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
}

#[derive(Debug, Clone)]
pub enum ActionSpec {
    ToxicAdd(ToxicAdd),
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

// ---- probes ------------------------------------------------------------

/// What an `http` probe reads from the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpValue {
    /// The status code (default without `pointer`).
    Status,
    /// Milliseconds to the whole response.
    LatencyMs,
    /// The number at `pointer` in the JSON body (an array counts its
    /// items, `true` is 1); default with `pointer`.
    Json,
}

/// `type: http`: one request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub url: String,
    /// Default GET.
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent with `content-type: application/json`).
    pub json: Option<serde_json::Value>,
    /// A raw body.
    pub body: Option<String>,
    /// RFC 6901 JSON pointer into the response body, e.g. `/items/0/id`.
    pub pointer: Option<String>,
    pub value: Option<HttpValue>,
    /// Default 5s; a timeout is a probe error (a deviation).
    pub timeout: Option<DurationText>,
}

/// What a `load` probe reads from the background load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadMetric {
    P50Ms,
    P90Ms,
    P99Ms,
    P999Ms,
    MaxMs,
    MeanMs,
    /// Failed requests (transport errors, timeouts, unexpected statuses)
    /// over all requests.
    ErrorRate,
    /// Requests answered or failed.
    Requests,
    /// Responses with `status`.
    StatusCount,
}

/// Which requests a `load` probe looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadScope {
    /// Since the previous check (default).
    #[default]
    Window,
    /// Since the load started.
    Run,
}

/// `type: load`: the background load's numbers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadProbe {
    pub metric: LoadMetric,
    /// With `status_count`.
    pub status: Option<u16>,
    #[serde(default)]
    pub scope: LoadScope,
    /// Only this request of the scenario file (its `name`).
    pub request: Option<String>,
}

/// `type: metric`: a Prometheus `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricProbe {
    /// The `/metrics` URL.
    pub url: String,
    /// The metric's name; with `quantile`, the histogram's base name.
    pub metric: String,
    /// Only series with these labels (the rest are summed).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A histogram quantile (0..1) from `NAME_bucket`, in the metric's
    /// unit, as PromQL's `histogram_quantile` computes it.
    pub quantile: Option<f64>,
    /// The change since this probe's first scrape (counters, and
    /// histograms with `quantile`: the quantile of what was observed
    /// since).
    #[serde(default)]
    pub delta: bool,
}

/// What a `slo` probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloValue {
    /// Good events over the SLO's period (0..1).
    Sli,
    /// Share of the error budget left.
    BudgetRemaining,
    /// Burn rate over `window` (the shortest alert window if unset).
    BurnRate,
}

/// `type: slo`: one SLO from the platform's `GET /api/v1/slo/status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloProbe {
    /// The platform's base URL.
    pub url: String,
    /// The SLO id.
    pub slo: String,
    pub value: SloValue,
    /// With `burn_rate`, e.g. `5m`.
    pub window: Option<String>,
}

/// How a `count` probe combines its two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// left - right (default).
    #[default]
    Difference,
    /// left / right.
    Ratio,
}

// ---- actions -------------------------------------------------------------

/// The stream a toxic applies to, as toxiproxy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to dependency.
    Upstream,
    /// Dependency to client (toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// `type: toxic.add`: `POST {api}/proxies/{proxy}/toxics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicAdd {
    /// The proxy's name.
    pub proxy: String,
    /// The toxic, as toxiproxy's API takes it.
    pub toxic: ToxicBody,
    /// toxiproxy's API; default `${proxy_api}`, else
    /// `http://127.0.0.1:8474`.
    pub api: Option<String>,
}

/// A toxic, in toxiproxy's JSON shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicBody {
    /// What `toxic.remove` names.
    pub name: String,
    /// latency, bandwidth, slow_close, timeout, reset_peer, limit_data,
    /// slicer, blackhole.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub stream: Stream,
    /// Fraction of connections affected, 0..1 (default 1).
    pub toxicity: Option<f64>,
    /// The toxic's attributes (e.g. `latency: 200`, `jitter: 10`), all
    /// non-negative numbers.
    #[serde(default)]
    pub attributes: BTreeMap<String, f64>,
}

/// `type: toxic.remove`: `DELETE {api}/proxies/{proxy}/toxics/{toxic}`;
/// a toxic that is not there is not an error.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicRemove {
    pub proxy: String,
    /// The toxic's name.
    pub toxic: String,
    pub api: Option<String>,
}

/// `type: proxy.update`: `POST {api}/proxies/{proxy}` (disable a proxy to
/// take a dependency away, enable it to bring it back).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyUpdate {
    pub proxy: String,
    pub enabled: Option<bool>,
    pub upstream: Option<String>,
    pub listen: Option<String>,
    pub api: Option<String>,
}

/// `type: process.start`: a command the experiment owns (stopped at the
/// end of the run).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessStart {
    /// How later actions name it.
    pub process: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Added to the inherited environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Wait until a GET of this URL answers 2xx.
    pub ready: Option<String>,
    /// Default 60s.
    pub ready_timeout: Option<DurationText>,
}

/// A signal, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    Kill,
    Term,
    Int,
    Hup,
    Stop,
    Cont,
}

/// `type: process.signal`: a process the experiment started, or the pid
/// in a pidfile.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSignal {
    pub process: Option<String>,
    pub pidfile: Option<String>,
    pub signal: SignalName,
}

/// `type: process.restart`: signal a process the experiment started
/// (default TERM), wait for it to exit, start it again and wait for ready.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessRestart {
    pub process: String,
    pub signal: Option<SignalName>,
}

/// `type: disk.fill`: writes `bytes` into a file in `dir`; the file is
/// removed at the end of the run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskFill {
    pub dir: String,
    pub bytes: u64,
    /// Default `chaos-fill`.
    pub file: Option<String>,
}

/// `for_each` of an `http` action: one request per item of a list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// GET this URL for the list.
    pub url: String,
    /// JSON pointer to the array (e.g. `/items`).
    pub items: String,
    /// JSON pointer inside an item to the value `{{item}}` stands for
    /// (e.g. `/id`).
    pub field: String,
}

/// `type: http`: any request (a replay endpoint, an admin switch).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// `{{item}}` stands for the current item with `for_each`.
    pub url: String,
    /// Default POST.
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json: Option<serde_json::Value>,
    pub body: Option<String>,
    /// Accepted statuses (default any 2xx).
    #[serde(default)]
    pub expect: Vec<u16>,
    pub for_each: Option<ForEach>,
    /// Default 10s.
    pub timeout: Option<DurationText>,
}

/// `type: pause`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseAction {
    pub duration: DurationText,
}

// ---- schema only -------------------------------------------------------

/// Fields every action has besides its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // schema only
pub struct ActionCommon {
    /// Shown in the journal (default: the type).
    pub name: Option<String>,
    pub pauses: Option<Pauses>,
}

/// Fields every probe has besides its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // schema only
pub struct ProbeCommon {
    pub name: String,
    /// Required in the hypothesis.
    pub tolerance: Option<Tolerance>,
    /// Default all three.
    pub when: Option<Vec<Phase>>,
}

macro_rules! tagged_schema {
    ($name:ident, $common:ty, { $($tag:literal => $variant:ident($ty:ty)),* $(,)? }) => {
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(tag = "type")]
        #[allow(dead_code)] // schema only
        pub enum $name {
            $(
                #[serde(rename = $tag)]
                $variant {
                    #[serde(flatten)]
                    common: $common,
                    #[serde(flatten)]
                    fields: $ty,
                },
            )*
        }
    };
}

tagged_schema!(ActionSchema, ActionCommon, {
    "toxic.add" => ToxicAdd(ToxicAdd),
    "toxic.remove" => ToxicRemove(ToxicRemove),
    "proxy.update" => ProxyUpdate(ProxyUpdate),
    "process.start" => ProcessStart(ProcessStart),
    "process.signal" => ProcessSignal(ProcessSignal),
    "process.restart" => ProcessRestart(ProcessRestart),
    "disk.fill" => DiskFill(DiskFill),
    "http" => Http(HttpAction),
    "pause" => Pause(PauseAction),
});

/// `type: count`'s own fields: two probes (without tolerances).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // schema only
pub struct CountSchema {
    pub left: serde_json::Value,
    pub right: serde_json::Value,
    #[serde(default)]
    pub compare: Compare,
}

tagged_schema!(ProbeSchema, ProbeCommon, {
    "http" => Http(HttpProbe),
    "load" => Load(LoadProbe),
    "metric" => Metric(MetricProbe),
    "slo" => Slo(SloProbe),
    "count" => Count(CountSchema),
});

/// The JSON Schema of the file format, for editors. A number, a flag or
/// a duration may also be written as `${name}` (substituted before the
/// file is read), so each of those also accepts such a string.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(ExperimentFile).to_value();
    allow_variables(&mut schema);
    schema
}

fn allow_variables(node: &mut serde_json::Value) {
    use serde_json::{json, Value};
    match node {
        Value::Object(map) => {
            for value in map.values_mut() {
                allow_variables(value);
            }
            let scalar = |t: &Value| matches!(t.as_str(), Some("number" | "integer" | "boolean"));
            let typed = match map.get("type") {
                Some(Value::Array(types)) => types.iter().any(scalar),
                Some(t) => scalar(t),
                None => false,
            };
            let duration = map.get("type").and_then(Value::as_str) == Some("string") && map.contains_key("pattern");
            if typed || duration {
                let original = Value::Object(std::mem::take(map));
                *node = json!({"anyOf": [original, {"type": "string", "pattern": "\\$\\{[A-Za-z0-9_-]+\\}"}]});
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_variables),
        _ => {}
    }
}
