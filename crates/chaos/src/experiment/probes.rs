//! What each probe type measures. A probe yields one number; an error (a
//! refused connection, a missing JSON field) is recorded as the probe's
//! result and counts as outside any tolerance: a system that cannot be
//! measured is not shown to be in its steady state.

use super::background::{self, LoadSnapshot};
use super::model::*;
use super::prometheus;
use super::tolerance::show;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A probe's reading.
#[derive(Debug, Clone)]
pub struct Measured {
    pub value: Result<f64, String>,
    /// How the value came about (the two sides of a count).
    pub detail: Option<String>,
}

impl Measured {
    fn of(value: Result<f64, String>) -> Self {
        Self {
            value,
            detail: None,
        }
    }
}

/// What probes share during a run.
pub struct Probing<'a> {
    pub http: &'a reqwest::Client,
    /// The background load's window for this check.
    pub load: Option<&'a LoadSnapshot>,
    /// First scrapes of `delta` metric probes, by probe.
    pub firsts: &'a Mutex<HashMap<String, First>>,
}

#[derive(Debug, Clone)]
pub enum First {
    Value(f64),
    Buckets(Vec<(f64, f64)>),
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Measured> + Send + 'a>>;

pub fn measure<'a>(probe: &'a Probe, ctx: &'a Probing<'a>) -> Boxed<'a> {
    Box::pin(async move {
        match &probe.spec {
            ProbeSpec::Http(http) => Measured::of(http_probe(http, ctx.http).await),
            ProbeSpec::Load(load) => Measured::of(load_probe(load, ctx.load)),
            ProbeSpec::Metric(metric) => {
                let key = format!("{}:{}", probe.line, probe.name);
                Measured::of(metric_probe(metric, &key, ctx).await)
            }
            ProbeSpec::Slo(slo) => Measured::of(slo_probe(slo, ctx.http).await),
            ProbeSpec::Count(count) => {
                let (left, right) =
                    tokio::join!(measure(&count.left, ctx), measure(&count.right, ctx));
                let show_side = |m: &Measured| match &m.value {
                    Ok(v) => show(*v),
                    Err(e) => format!("error: {e}"),
                };
                let detail = Some(format!(
                    "{} = {}, {} = {}",
                    count.left.name,
                    show_side(&left),
                    count.right.name,
                    show_side(&right)
                ));
                let value = match (left.value, right.value) {
                    (Ok(l), Ok(r)) => match count.compare {
                        Compare::Difference => Ok(l - r),
                        Compare::Ratio if r == 0.0 => {
                            Err("ratio with a right side of 0".to_string())
                        }
                        Compare::Ratio => Ok(l / r),
                    },
                    (Err(e), _) => Err(format!("{}: {e}", count.left.name)),
                    (_, Err(e)) => Err(format!("{}: {e}", count.right.name)),
                };
                Measured { value, detail }
            }
        }
    })
}

/// Sends `method url` with headers and an optional body.
pub async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    json: Option<&serde_json::Value>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Response, String> {
    let method: reqwest::Method = method
        .parse()
        .map_err(|_| format!("`{method}` is not a method"))?;
    let mut request = http.request(method, url).timeout(timeout);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(json) = json {
        request = request.json(json);
    } else if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send().await.map_err(|e| describe(&e))
}

/// A reqwest error with its cause (connection refused, timed out).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The number at `pointer` in `body`: numbers, numeric strings, `true`
/// as 1, arrays as their length.
pub fn number_at(body: &serde_json::Value, pointer: &str) -> Result<f64, String> {
    let value = body
        .pointer(pointer)
        .ok_or_else(|| format!("nothing at `{pointer}` in the response"))?;
    match value {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("`{pointer}` is not a finite number")),
        serde_json::Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        serde_json::Value::Array(items) => Ok(items.len() as f64),
        serde_json::Value::String(s) => s
            .parse()
            .map_err(|_| format!("`{pointer}` is the text `{s}`, not a number")),
        other => Err(format!("`{pointer}` is {other}, not a number")),
    }
}

async fn http_probe(probe: &HttpProbe, http: &reqwest::Client) -> Result<f64, String> {
    let timeout = probe.timeout.map_or(Duration::from_secs(5), |d| d.0);
    let started = Instant::now();
    let response = send(
        http,
        probe.method.as_deref().unwrap_or("GET"),
        &probe.url,
        &probe.headers,
        probe.json.as_ref(),
        probe.body.as_deref(),
        timeout,
    )
    .await?;
    let status = response.status().as_u16();
    let value = probe.value.unwrap_or(if probe.pointer.is_some() {
        HttpValue::Json
    } else {
        HttpValue::Status
    });
    match value {
        HttpValue::Status => Ok(f64::from(status)),
        HttpValue::LatencyMs => {
            let _ = response.bytes().await.map_err(|e| describe(&e))?;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
        HttpValue::Json => {
            if !response.status().is_success() {
                return Err(format!("status {status}"));
            }
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| format!("not JSON: {}", describe(&e)))?;
            number_at(&body, probe.pointer.as_deref().unwrap_or(""))
        }
    }
}

fn load_probe(probe: &LoadProbe, load: Option<&LoadSnapshot>) -> Result<f64, String> {
    let mut snapshot = load.ok_or("no background load")?;
    if let Some(name) = &probe.request {
        match snapshot.by_request.get(name) {
            Some(one) => snapshot = one,
            None => return Err(background::NO_DATA.to_string()),
        }
    }
    let stats = match probe.scope {
        LoadScope::Window => &snapshot.window,
        LoadScope::Run => &snapshot.run,
    };
    background::value(probe.metric, probe.status, stats)
        .ok_or_else(|| background::NO_DATA.to_string())
}

async fn metric_probe(probe: &MetricProbe, key: &str, ctx: &Probing<'_>) -> Result<f64, String> {
    let response = send(
        ctx.http,
        "GET",
        &probe.url,
        &Default::default(),
        None,
        None,
        Duration::from_secs(5),
    )
    .await?;
    if !response.status().is_success() {
        return Err(format!("{} answered {}", probe.url, response.status()));
    }
    let text = response.text().await.map_err(|e| describe(&e))?;
    let samples = prometheus::samples(&text);
    let mut firsts = ctx
        .firsts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match probe.quantile {
        Some(q) => {
            let buckets = prometheus::buckets(&samples, &probe.metric, &probe.labels);
            if buckets.is_empty() {
                return Err(format!("no `{}_bucket` series", probe.metric));
            }
            let buckets = if probe.delta {
                match firsts
                    .entry(key.to_string())
                    .or_insert_with(|| First::Buckets(buckets.clone()))
                {
                    First::Buckets(first) => prometheus::subtract(&buckets, first),
                    First::Value(_) => buckets,
                }
            } else {
                buckets
            };
            prometheus::quantile(q, &buckets)
                .ok_or_else(|| format!("`{}` has no observations", probe.metric))
        }
        None => {
            // A counter not yet incremented is often absent: read it as 0
            // when the metric family is declared.
            let value = prometheus::sum(&samples, &probe.metric, &probe.labels)
                .or_else(|| {
                    text.contains(&format!("# TYPE {} ", probe.metric))
                        .then_some(0.0)
                })
                .ok_or_else(|| {
                    format!(
                        "no `{}` series with labels {:?}",
                        probe.metric, probe.labels
                    )
                })?;
            if !probe.delta {
                return Ok(value);
            }
            match firsts.entry(key.to_string()).or_insert(First::Value(value)) {
                First::Value(first) => Ok(value - *first),
                First::Buckets(_) => Ok(value),
            }
        }
    }
}

async fn slo_probe(probe: &SloProbe, http: &reqwest::Client) -> Result<f64, String> {
    let url = format!("{}/api/v1/slo/status", probe.url.trim_end_matches('/'));
    let response = send(
        http,
        "GET",
        &url,
        &Default::default(),
        None,
        None,
        Duration::from_secs(5),
    )
    .await?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let report: serde_json::Value = response.json().await.map_err(|e| describe(&e))?;
    let slo = report["slos"]
        .as_array()
        .and_then(|slos| slos.iter().find(|s| s["id"] == probe.slo.as_str()))
        .ok_or_else(|| format!("no SLO `{}` in {url}", probe.slo))?;
    let field = |name: &str| {
        slo[name]
            .as_f64()
            .ok_or_else(|| format!("SLO `{}` has no data for `{name}` yet", probe.slo))
    };
    match probe.value {
        SloValue::Sli => field("sli"),
        SloValue::BudgetRemaining => field("budget_remaining"),
        SloValue::BurnRate => {
            let burns = slo["burn_rates"].as_array().cloned().unwrap_or_default();
            let burn = match &probe.window {
                Some(window) => burns.iter().find(|b| b["window"] == window.as_str()),
                None => burns.first(),
            };
            burn.and_then(|b| b["burn_rate"].as_f64())
                .ok_or_else(|| format!("SLO `{}` has no burn rate for that window yet", probe.slo))
        }
    }
}
