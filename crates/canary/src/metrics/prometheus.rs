//! The Prometheus source: instant queries of `increase(...[window])` at
//! the look's time, through the HTTP API (`/api/v1/query`).
//!
//! `increase()` extrapolates to the window's edges, so counts come back
//! fractional; they are rounded. A window shorter than two scrapes has no
//! data yet and reads as zeros, which the judge treats as too few samples
//! (inconclusive), never as a pass.

use super::{MetricsError, MetricsSource, Query, Reading};
use crate::judge::{Counts, Histogram};
use async_trait::async_trait;
use std::time::{Duration, SystemTime};

/// Longest wait for one query: a slow Prometheus is a failed look.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server as a [`MetricsSource`].
pub struct Prometheus {
    base: url::Url,
    client: reqwest::Client,
}

impl Prometheus {
    pub fn new(base: url::Url) -> Self {
        let client = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { base, client }
    }

    /// `(labels, value)` of an instant vector result.
    async fn query(
        &self,
        promql: &str,
        at: SystemTime,
    ) -> Result<Vec<(serde_json::Map<String, serde_json::Value>, f64)>, MetricsError> {
        let mut url = self
            .base
            .join("api/v1/query")
            .map_err(|e| MetricsError::Unreachable {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        let time = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        url.query_pairs_mut()
            .append_pair("query", promql)
            .append_pair("time", &format!("{time:.3}"));
        let unreachable = |reason: String| MetricsError::Unreachable {
            url: self.base.to_string(),
            reason,
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| unreachable(format!("HTTP {status}, not a Prometheus answer: {e}")))?;
        if body["status"] != "success" {
            return Err(MetricsError::Query {
                query: promql.to_string(),
                reason: body["error"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_string(),
            });
        }
        let mut out = Vec::new();
        for series in body["data"]["result"].as_array().into_iter().flatten() {
            let labels = series["metric"].as_object().cloned().unwrap_or_default();
            let value = series["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite());
            if let Some(v) = value {
                out.push((labels, v));
            }
        }
        Ok(out)
    }

    async fn scalar(&self, promql: &str, at: SystemTime) -> Result<f64, MetricsError> {
        Ok(self.query(promql, at).await?.iter().map(|(_, v)| v).sum())
    }
}

fn rounded(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

#[async_trait]
impl MetricsSource for Prometheus {
    async fn read(
        &self,
        queries: &[Query],
        since: SystemTime,
        now: SystemTime,
    ) -> Result<Vec<Reading>, MetricsError> {
        let window = now
            .duration_since(since)
            .unwrap_or_default()
            .as_secs()
            .max(1);
        let increase = |selector: &str| format!("sum(increase({selector}[{window}s]))");
        let mut out = Vec::with_capacity(queries.len());
        for query in queries {
            match query {
                Query::Proportion { bad, total } => {
                    let mut counts = Counts { bad: 0, total: 0 };
                    for c in bad {
                        counts.bad += rounded(self.scalar(&increase(&c.selector()), now).await?);
                    }
                    for c in total {
                        counts.total += rounded(self.scalar(&increase(&c.selector()), now).await?);
                    }
                    out.push(Reading::Proportion(counts));
                }
                Query::Histogram { name, matchers } => {
                    let sel = |suffix: &str| {
                        super::Counter {
                            name: format!("{name}{suffix}"),
                            matchers: matchers.clone(),
                        }
                        .selector()
                    };
                    let buckets = self
                        .query(
                            &format!("sum by (le) (increase({}[{window}s]))", sel("_bucket")),
                            now,
                        )
                        .await?;
                    let mut by_bound: Vec<(f64, u64)> = buckets
                        .iter()
                        .filter_map(|(labels, v)| {
                            let le = match labels.get("le")?.as_str()? {
                                "+Inf" => f64::INFINITY,
                                s => s.parse::<f64>().ok().filter(|x| x.is_finite())?,
                            };
                            Some((le, rounded(*v)))
                        })
                        .collect();
                    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
                    // Extrapolated and rounded buckets may dip; keep them cumulative.
                    let mut running = 0;
                    for (_, c) in by_bound.iter_mut() {
                        running = (*c).max(running);
                        *c = running;
                    }
                    let sum = self.scalar(&increase(&sel("_sum")), now).await?.max(0.0);
                    let count = by_bound.last().map_or(0, |(_, c)| *c);
                    if by_bound.is_empty() {
                        // No series in the window: nothing observed.
                        by_bound.push((f64::INFINITY, 0));
                    }
                    let (bounds, cumulative): (Vec<f64>, Vec<u64>) = by_bound.into_iter().unzip();
                    let histogram = Histogram::from_cumulative(bounds, cumulative, sum, count)
                        .map_err(|e| MetricsError::Histogram {
                            name: name.clone(),
                            reason: e.to_string(),
                        })?;
                    out.push(Reading::Histogram(histogram));
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("Prometheus at {}", self.base)
    }
}
