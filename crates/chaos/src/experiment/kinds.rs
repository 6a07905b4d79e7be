//! What each probe and action type takes: one struct per `type`, read
//! from the step's own keys (`name`, `pauses`, `tolerance` and `when` are
//! read by `parse`).

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use yamlspec::DurationText;

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

/// `repeat`: run an action again, e.g. `toxic.update` every second to
/// redraw which connections a toxic affects (a toxic's toxicity is drawn
/// per connection, so long-lived pooled connections would otherwise keep
/// their first draw).
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// How many times the action runs in all.
    pub count: u32,
    /// The wait between two runs.
    pub every: DurationText,
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
    /// A file holding the pid; `{{item}}` in it stands for the value
    /// `item` reads (e.g. `/run/nats/{{item}}.pid`).
    pub pidfile: Option<String>,
    /// Read at run time, for `{{item}}` in `pidfile`: which process to
    /// signal as a service reports it (the node leading a stream).
    pub item: Option<ItemLookup>,
    pub signal: SignalName,
    /// Then wait up to this long for the process to exit (an error if it
    /// does not), so the next action starts with it gone.
    pub wait: Option<DurationText>,
}

/// A value read over HTTP when the action runs: GET each of `urls` in
/// turn, the first JSON with a string (or a number) at `pointer` gives it
/// (several URLs: any member of a cluster may answer, some may be down).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemLookup {
    pub urls: Vec<String>,
    /// JSON pointer, e.g. `/account_details/0/stream_detail/0/cluster/leader`.
    pub pointer: String,
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
