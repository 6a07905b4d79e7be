//! Types that exist only for the JSON Schema: the file's probes and
//! actions as editors see them (a `type` tag and each type's fields),
//! while `parse` dispatches on `type` itself to keep line numbers.

use super::kinds::*;
use super::model::{ExperimentFile, Pauses, Phase, Tolerance};
use schemars::JsonSchema;
use serde::Deserialize;

/// Fields every action has besides its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // schema only
pub struct ActionCommon {
    /// Shown in the journal (default: the type).
    pub name: Option<String>,
    pub pauses: Option<Pauses>,
    pub repeat: Option<Repeat>,
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
    "toxic.update" => ToxicUpdate(ToxicAdd),
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
            let duration = map.get("type").and_then(Value::as_str) == Some("string")
                && map.contains_key("pattern");
            if typed || duration {
                let original = Value::Object(std::mem::take(map));
                *node = json!({"anyOf": [original, {"type": "string", "pattern": "\\$\\{[A-Za-z0-9_-]+\\}"}]});
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_variables),
        _ => {}
    }
}
