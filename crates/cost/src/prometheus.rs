//! Usage from Prometheus, as OpenCost reads it: cAdvisor and
//! kube-state-metrics series for workloads on Kubernetes, and the
//! platform's own `reliable_cost_cpu_seconds_total` for routes.
//!
//! This module builds the PromQL instant queries for a window and turns
//! their answers into [`Usage`] lines; sending them is the caller's (one
//! HTTP GET each to `/api/v1/query?query=...&time=END`). Each query is an
//! average over the window (`avg_over_time`, `rate`), evaluated at its
//! end, so one answer per series covers the whole window.
//!
//! | measure | series |
//! |---|---|
//! | CPU usage | `rate(container_cpu_usage_seconds_total[W])` |
//! | CPU request | `avg_over_time(kube_pod_container_resource_requests{resource="cpu"}[W])` |
//! | memory usage | `avg_over_time(container_memory_working_set_bytes[W])` |
//! | memory request | `avg_over_time(kube_pod_container_resource_requests{resource="memory"}[W])` |
//! | GPUs | `avg_over_time(kube_pod_container_resource_requests{resource="nvidia_com_gpu"}[W])` |
//! | minutes running | `count_over_time(container_memory_working_set_bytes[W:1m])` |
//! | module | `kube_pod_labels`' `label_app_kubernetes_io_name` (kube-state-metrics with `--metric-labels-allowlist=pods=[app.kubernetes.io/name]`) |
//! | route CPU | `increase(reliable_cost_cpu_seconds_total[W])` |
//! | route requests | `increase(http_server_request_duration_seconds_count[W])` |
//! | tokens per key and model | `increase(llm_key_tokens_total[W])` ([`tokens`]) |

use crate::allocation::Usage;
use crate::window::Window;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub mod tokens;

/// What one query measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    CpuUsage,
    CpuRequest,
    RamUsage,
    RamRequest,
    Gpus,
    Minutes,
    PodModule,
    RouteCpuSeconds,
    RouteRequests,
    KeyTokens,
}

/// A PromQL instant query and what it measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub measure: Measure,
    pub promql: String,
}

/// One series of an instant vector answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Prometheus could not be used: its error envelope, or an answer that
/// is not an instant vector.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrometheusError {
    #[error("Prometheus refused the query ({kind}): {message}")]
    Refused { kind: String, message: String },
    #[error("Prometheus answered something that is not an instant vector: {0}")]
    Malformed(String),
}

const CONTAINERS: &str = r#"container!="",container!="POD""#;
const BY_CONTAINER: &str = "namespace, pod, container";

/// The queries for `window` (evaluate each at `window.end`).
pub fn queries(window: &Window) -> Vec<Query> {
    let range = format!("{}s", (window.end - window.start).num_seconds().max(60));
    let q = |measure, promql: String| Query { measure, promql };
    vec![
        q(
            Measure::CpuUsage,
            format!("sum by ({BY_CONTAINER}) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{range}]))"),
        ),
        q(
            Measure::CpuRequest,
            format!("sum by ({BY_CONTAINER}) (avg_over_time(kube_pod_container_resource_requests{{resource=\"cpu\"}}[{range}]))"),
        ),
        q(
            Measure::RamUsage,
            format!("sum by ({BY_CONTAINER}) (avg_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{range}]))"),
        ),
        q(
            Measure::RamRequest,
            format!("sum by ({BY_CONTAINER}) (avg_over_time(kube_pod_container_resource_requests{{resource=\"memory\"}}[{range}]))"),
        ),
        q(
            Measure::Gpus,
            format!("sum by ({BY_CONTAINER}) (avg_over_time(kube_pod_container_resource_requests{{resource=\"nvidia_com_gpu\"}}[{range}]))"),
        ),
        q(
            Measure::Minutes,
            format!("max by ({BY_CONTAINER}) (count_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{range}:1m]))"),
        ),
        q(
            Measure::PodModule,
            format!("max by (namespace, pod, label_app_kubernetes_io_name) (max_over_time(kube_pod_labels[{range}]))"),
        ),
        q(
            Measure::RouteCpuSeconds,
            format!("sum by (module, route) (increase(reliable_cost_cpu_seconds_total[{range}]))"),
        ),
        q(
            Measure::RouteRequests,
            format!("sum by (service, http_route) (increase(http_server_request_duration_seconds_count[{range}]))"),
        ),
    ]
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Reads an `/api/v1/query` answer (an instant vector). `NaN` and
/// infinite values are left out.
pub fn parse_vector(body: &[u8]) -> Result<Vec<Sample>, PrometheusError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| PrometheusError::Malformed(e.to_string()))?;
    if envelope.status != "success" {
        return Err(PrometheusError::Refused {
            kind: envelope.error_type.unwrap_or_else(|| "unknown".to_string()),
            message: envelope.error.unwrap_or_default(),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| PrometheusError::Malformed("no data".to_string()))?;
    if data.result_type != "vector" {
        return Err(PrometheusError::Malformed(format!(
            "a {} where a vector was asked for",
            data.result_type
        )));
    }
    Ok(data
        .result
        .into_iter()
        .filter_map(|series| {
            let value: f64 = series.value.1.parse().ok()?;
            value.is_finite().then_some(Sample {
                labels: series.metric,
                value,
            })
        })
        .collect())
}

type ContainerKey = (String, String, String);

fn container_key(labels: &BTreeMap<String, String>) -> Option<ContainerKey> {
    Some((
        labels.get("namespace")?.clone(),
        labels.get("pod")?.clone(),
        labels.get("container")?.clone(),
    ))
}

/// One [`Usage`] per container seen in any answer, named
/// `namespace/pod/container`, with `namespace`, `pod`, `container` and
/// (when the pod carries the label) `module` properties.
pub fn container_usages(answers: &HashMap<Measure, Vec<Sample>>, window: &Window) -> Vec<Usage> {
    let mut modules: HashMap<(String, String), String> = HashMap::new();
    for sample in answers.get(&Measure::PodModule).into_iter().flatten() {
        let labels = &sample.labels;
        if let (Some(namespace), Some(pod), Some(module)) = (
            labels.get("namespace"),
            labels.get("pod"),
            labels.get("label_app_kubernetes_io_name"),
        ) {
            modules.insert((namespace.clone(), pod.clone()), module.clone());
        }
    }
    let mut usages: BTreeMap<ContainerKey, Usage> = BTreeMap::new();
    let container_measures = [
        Measure::CpuUsage,
        Measure::CpuRequest,
        Measure::RamUsage,
        Measure::RamRequest,
        Measure::Gpus,
        Measure::Minutes,
    ];
    for measure in container_measures {
        for sample in answers.get(&measure).into_iter().flatten() {
            let Some(key) = container_key(&sample.labels) else {
                continue;
            };
            let usage = usages.entry(key.clone()).or_insert_with(|| {
                let (namespace, pod, container) = key.clone();
                let mut properties = BTreeMap::from([
                    ("namespace".to_string(), namespace.clone()),
                    ("pod".to_string(), pod.clone()),
                    ("container".to_string(), container.clone()),
                ]);
                if let Some(module) = modules.get(&(namespace.clone(), pod.clone())) {
                    properties.insert("module".to_string(), module.clone());
                }
                Usage {
                    name: format!("{namespace}/{pod}/{container}"),
                    properties,
                    // Until the minutes answer says otherwise.
                    minutes: window.minutes(),
                    ..Usage::default()
                }
            });
            match measure {
                Measure::CpuUsage => usage.cpu_core_usage_average = sample.value,
                Measure::CpuRequest => usage.cpu_core_request_average = sample.value,
                Measure::RamUsage => usage.ram_byte_usage_average = sample.value,
                Measure::RamRequest => usage.ram_byte_request_average = sample.value,
                Measure::Gpus => usage.gpu_count = sample.value,
                Measure::Minutes => usage.minutes = sample.value.min(window.minutes()),
                _ => {}
            }
        }
    }
    usages.into_values().collect()
}

/// One [`Usage`] per (module, route) from the platform's CPU counters:
/// its CPU as a usage average over the window, no request (a route
/// reserves nothing), and the requests it served.
pub fn route_usages(answers: &HashMap<Measure, Vec<Sample>>, window: &Window) -> Vec<Usage> {
    let seconds = window.hours() * 3600.0;
    let mut requests: HashMap<(String, String), f64> = HashMap::new();
    for sample in answers.get(&Measure::RouteRequests).into_iter().flatten() {
        if let (Some(module), Some(route)) = (
            sample.labels.get("service"),
            sample.labels.get("http_route"),
        ) {
            requests.insert((module.clone(), route.clone()), sample.value);
        }
    }
    let mut usages = Vec::new();
    for sample in answers.get(&Measure::RouteCpuSeconds).into_iter().flatten() {
        let (Some(module), Some(route)) = (sample.labels.get("module"), sample.labels.get("route"))
        else {
            continue;
        };
        let served = requests
            .get(&(module.clone(), route.clone()))
            .copied()
            .unwrap_or(0.0);
        usages.push(Usage {
            name: format!("{module} {route}"),
            properties: BTreeMap::from([
                ("module".to_string(), module.clone()),
                ("route".to_string(), route.clone()),
            ]),
            minutes: window.minutes(),
            cpu_core_usage_average: if seconds > 0.0 {
                sample.value / seconds
            } else {
                0.0
            },
            requests: served.round().max(0.0) as u64,
            ..Usage::default()
        });
    }
    usages.sort_by(|a, b| a.name.cmp(&b.name));
    usages
}

#[cfg(test)]
mod tests;
