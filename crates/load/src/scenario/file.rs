//! The scenario file as written: serde structs whose `///` docs are the
//! user documentation (they become the JSON Schema's descriptions, which
//! editors show on hover).
//!
//! Nothing here is checked beyond its type: `compile` applies defaults and
//! refuses what types cannot say (a zero rate, duplicate names). Fields
//! such a check needs to point at are `Located`, so its error names the
//! line. Every struct refuses unknown keys: a typo (`duraton: 60s`) is an
//! error, never a silently ignored setting.

use super::json::JsonBody;
use super::values::{DurationText, OrderedMap, RateText, StatusRange, VarText};
use schemars::JsonSchema;
use serde::Deserialize;
use yamlspec::Located;

/// A `reliable load` scenario file: optional setup, scenarios run in
/// order (or in parallel with `start_time`), optional teardown, and
/// thresholds that set the exit code.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "reliable load scenario file")]
pub struct ScenarioFile {
    /// Constants, used as `{{vars.NAME}}`; substituted when the file is
    /// read.
    #[serde(default)]
    pub vars: OrderedMap<VarText>,
    /// Derives arrival rates from daily active users; a scenario's `rate`
    /// can then be `dau.baseline`, `dau.peak`, `dau.viral` or `K * dau.X`.
    pub dau: Option<Located<DauSection>>,
    /// Settings every scenario and request gets unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// Pools of captured values. Optional: a pool named by a `capture`
    /// exists without being declared here (with the default capacity).
    #[serde(default)]
    pub pools: OrderedMap<Located<PoolSection>>,
    /// Requests sent before any scenario, to completion (a closed model:
    /// setup is about data, not timing); typically they create data and
    /// capture its keys into pools.
    #[serde(default)]
    pub setup: Vec<Located<SetupRequest>>,
    /// The load, by scenario name. Scenarios run in file order, each
    /// starting when the previous one ends, unless `start_time` is given
    /// (scenarios with the same `start_time` run in parallel).
    pub scenarios: Located<OrderedMap<Located<ScenarioSection>>>,
    /// Same shape as `setup`; runs after the scenarios, even when a
    /// threshold aborted them.
    #[serde(default)]
    pub teardown: Vec<Located<SetupRequest>>,
    /// Pass/fail criteria, as k6 writes them: a metric (optionally
    /// `{name:X}` or `{scenario:Y}`) to a list of expressions such as
    /// `p(99) < 25ms`. Any failure makes the exit code 99.
    #[serde(default)]
    pub thresholds: OrderedMap<Located<Vec<Located<ThresholdEntry>>>>,
}

/// The DAU helper's inputs. Writes/s average = users x
/// actions_per_user_per_day / 86400; peak = average x peak_factor; viral =
/// average x spike_factor; reads = writes x read_write_ratio; `dau.X` is
/// writes + reads of profile X.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DauSection {
    /// Daily active users.
    pub users: f64,
    /// Writes (the actions that create data) per user per day.
    pub actions_per_user_per_day: f64,
    /// Reads per write. Default 0: writes only.
    #[serde(default)]
    pub read_write_ratio: f64,
    /// The busiest hour against the day's average; needed by `dau.peak`.
    pub peak_factor: Option<f64>,
    /// A viral spike against the day's average; needed by `dau.viral`.
    pub spike_factor: Option<f64>,
}

/// Settings every scenario and request gets unless it sets its own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Headers sent with every request; a request's own header of the
    /// same name replaces it.
    #[serde(default)]
    pub headers: OrderedMap<Located<String>>,
    /// A request without a complete response after this long is an error
    /// (`timeouts`). Default `5s`.
    pub timeout: Option<Located<DurationText>>,
    /// Keep-alive connections per scenario, which is also the most requests
    /// in flight. Default 64.
    pub connections: Option<Located<usize>>,
    /// Speak HTTP/2 (prior knowledge on `http://`, ALPN on `https://`).
    /// Default false.
    pub http2: Option<bool>,
    /// Accept any TLS certificate (self-signed test servers). Default false.
    pub insecure_tls: Option<bool>,
    /// Statuses that are not errors: codes or `"lo-hi"` ranges. Default
    /// `["200-399"]`.
    pub expect_status: Option<Located<Vec<StatusRange>>>,
}

/// A pool's settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// The most values kept; a capture into a full pool drops the oldest
    /// value. Default 100000.
    pub capacity: Option<usize>,
}

/// Declares a request struct: its own fields, then the fields every
/// request has. (Serde's `flatten` would share them, but it cannot refuse
/// unknown keys and loses the lines `Located` records.)
macro_rules! request_section {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $type:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $type,)*
            /// HTTP method. Default `GET`.
            pub method: Option<Located<String>>,
            /// An absolute `http://` or `https://` URL, usually
            /// `"{{target}}/path"`. Pool values are percent-encoded.
            pub url: Located<String>,
            /// Request headers (placeholders allowed), added to
            /// `defaults.headers`.
            #[serde(default)]
            pub headers: OrderedMap<Located<String>>,
            /// A JSON body, written as YAML; placeholders inside strings
            /// are JSON-escaped. Sent as compact JSON, keys in the file's
            /// order. Not together with `body`.
            pub json: Option<Located<JsonBody>>,
            /// A raw body (placeholders allowed). Not together with `json`.
            pub body: Option<Located<String>>,
            /// Values to keep from the response, by pool name.
            #[serde(default)]
            pub capture: OrderedMap<Located<CaptureSection>>,
            /// Assertions, counted by name; a failure never stops the run.
            #[serde(default)]
            pub checks: Vec<Located<CheckSection>>,
            /// Statuses that are not errors; replaces
            /// `defaults.expect_status`.
            pub expect_status: Option<Located<Vec<StatusRange>>>,
            /// Replaces `defaults.timeout` for this request.
            pub timeout: Option<Located<DurationText>>,
        }

        impl $name {
            pub fn fields(&self) -> RequestFields<'_> {
                RequestFields {
                    method: self.method.as_ref(),
                    url: &self.url,
                    headers: &self.headers,
                    json: self.json.as_ref(),
                    body: self.body.as_ref(),
                    capture: &self.capture,
                    checks: &self.checks,
                    expect_status: self.expect_status.as_ref(),
                    timeout: self.timeout.as_ref(),
                }
            }
        }
    };
}

request_section! {
    /// A setup or teardown request, sent `repeat` times.
    SetupRequest {
        /// The request's name in the report.
        name: Located<String>,
        /// How many times to send it. Default 1.
        repeat: Option<Located<u64>>,
        /// The most sent at once. Default 1.
        concurrency: Option<Located<usize>>,
    }
}

request_section! {
    /// One request of a scenario's weighted mix.
    ScenarioRequest {
        /// Unique within the scenario; the metric label (`name` tag).
        name: Located<String>,
        /// Relative share of the scenario's arrivals. Default 1; not every
        /// request of a scenario may have 0.
        weight: Option<Located<u32>>,
    }
}

/// The fields every request has, borrowed from either kind.
pub struct RequestFields<'a> {
    pub method: Option<&'a Located<String>>,
    pub url: &'a Located<String>,
    pub headers: &'a OrderedMap<Located<String>>,
    pub json: Option<&'a Located<JsonBody>>,
    pub body: Option<&'a Located<String>>,
    pub capture: &'a OrderedMap<Located<CaptureSection>>,
    pub checks: &'a [Located<CheckSection>],
    pub expect_status: Option<&'a Located<Vec<StatusRange>>>,
    pub timeout: Option<&'a Located<DurationText>>,
}

/// Where a captured value comes from: exactly one of `json` or `header`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// An RFC 6901 JSON pointer into the response body, e.g. `/slug`;
    /// a string is kept without its quotes, other values as JSON text.
    pub json: Option<String>,
    /// A response header's value, e.g. `location`.
    pub header: Option<String>,
}

/// A check: a `name` and exactly one of `status`, `header` or `json` (with
/// `equals`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    /// Unique within the request; the report's label.
    pub name: String,
    /// Passes when the status is one of these (codes or `"lo-hi"`).
    pub status: Option<Vec<StatusRange>>,
    /// Passes when the response has this header.
    pub header: Option<String>,
    /// An RFC 6901 JSON pointer into the body; passes when the value there
    /// equals `equals`.
    pub json: Option<String>,
    /// The value `json` must point at.
    pub equals: Option<JsonBody>,
}

/// How a scenario sends its arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// The open model: `rate` arrivals per second whatever the server
    /// does; latency counts from when each request was due.
    #[default]
    ConstantArrivalRate,
    /// The open model with a moving rate: from `start_rate`, linearly to
    /// each stage's `target` over its `duration`.
    RampingArrivalRate,
    /// The closed model: every connection sends back to back; finds the
    /// maximum rate, its latencies are service times.
    ConstantConnections,
}

/// One scenario: an executor and a weighted mix of requests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSection {
    /// Default `constant-arrival-rate`.
    #[serde(default)]
    pub executor: ExecutorKind,
    /// `constant-arrival-rate`: arrivals per second (a number, or a DAU
    /// profile such as `dau.peak` or `25 * dau.viral`).
    pub rate: Option<Located<RateText>>,
    /// `ramping-arrival-rate`: the rate at the start of the first stage.
    /// Default 0.
    pub start_rate: Option<Located<RateText>>,
    /// `ramping-arrival-rate`: the rate moves linearly to each stage's
    /// target over its duration.
    pub stages: Option<Located<Vec<Located<StageSection>>>>,
    /// How long the scenario is measured (`constant-arrival-rate`,
    /// `constant-connections`).
    pub duration: Option<Located<DurationText>>,
    /// When the scenario starts, from the start of the load phase. Default:
    /// when the previous scenario ends.
    pub start_time: Option<Located<DurationText>>,
    /// Load sent before measuring (same executor, nothing recorded).
    /// Default `0s`.
    pub warmup: Option<Located<DurationText>>,
    /// Keep-alive connections (most requests in flight). Default
    /// `defaults.connections`.
    pub connections: Option<Located<usize>>,
    /// Default `defaults.http2`.
    pub http2: Option<bool>,
    /// Default `defaults.insecure_tls`.
    pub insecure_tls: Option<bool>,
    /// The weighted mix: each arrival picks one request with probability
    /// weight / total weight.
    pub requests: Located<Vec<Located<ScenarioRequest>>>,
}

/// A stage of `ramping-arrival-rate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    /// The rate reached at the end of the stage (a number or a DAU
    /// profile).
    pub target: Located<RateText>,
    /// How long the stage lasts.
    pub duration: Located<DurationText>,
}

/// A threshold: an expression, or an expression with `abort_on_fail`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum ThresholdEntry {
    /// `p(99) < 25ms`, `rate < 0.1%`, `count == 0`.
    Expression(String),
    Detailed(DetailedThreshold),
}

/// A threshold that can stop the run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedThreshold {
    /// The expression, e.g. `p(99) < 50ms`.
    pub threshold: String,
    /// Stop the run (the load phase; teardown still runs) as soon as the
    /// threshold fails. Default false.
    #[serde(default)]
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: not evaluated during the first this-long of
    /// the load phase, so a cold start does not abort. Default `0s`.
    pub delay_abort_eval: Option<DurationText>,
}

impl<'de> Deserialize<'de> for ThresholdEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = ThresholdEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an expression like \"p(99) < 25ms\", or {threshold, abort_on_fail, delay_abort_eval}")
            }
            fn visit_str<E>(self, v: &str) -> Result<ThresholdEntry, E> {
                Ok(ThresholdEntry::Expression(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ThresholdEntry, A::Error> {
                let detailed = DetailedThreshold::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(ThresholdEntry::Detailed(detailed))
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}
