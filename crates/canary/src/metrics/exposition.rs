//! The in-process source: this process's own `/metrics` text, read at the
//! window's start and at each look, and subtracted.
//!
//! The registry holds cumulative values only, so the source keeps the
//! values it saw when a window was first asked about and answers later
//! looks with the difference. A window it has never seen starts now
//! (returns zeros): a restarted controller in a restarted process starts
//! a fresh window, which is all it can honestly compare. A window starting
//! at the Unix epoch counts from zero: the process's whole life.

use super::{Counter, Matcher, MetricsError, MetricsSource, Query, Reading};
use crate::judge::{Counts, Histogram};
use async_trait::async_trait;
use slo::exposition::parse_line;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Windows remembered at once (one per running canary and side is plenty).
const MAX_WINDOWS: usize = 64;

type Render = Box<dyn Fn() -> String + Send + Sync>;

/// A window's start: when it began, what it asked, what the registry held.
struct WindowStart {
    since: SystemTime,
    queries: Vec<Query>,
    values: Vec<Cumulative>,
}

/// This process's metrics registry as a [`MetricsSource`].
pub struct InProcess {
    render: Render,
    starts: Mutex<Vec<WindowStart>>,
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new(Box::new(kit::metrics::render))
    }
}

impl InProcess {
    /// A source over `render` (the registry's text; tests give their own).
    pub fn new(render: Render) -> Self {
        Self {
            render,
            starts: Mutex::new(Vec::new()),
        }
    }
}

/// Cumulative values of one query.
#[derive(Debug, Clone, PartialEq)]
enum Cumulative {
    Proportion {
        bad: f64,
        total: f64,
    },
    /// Cumulative bucket counts by bound, sum, count.
    Histogram {
        buckets: BTreeMap<OrderedBound, f64>,
        sum: f64,
        count: f64,
    },
}

/// A bucket bound usable as a map key (bounds are finite or +Inf, never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedBound(f64);
impl Eq for OrderedBound {}
impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn matches_all(matchers: &[Matcher], labels: &[(&str, String)]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(|l| labels.iter().find(|(k, _)| *k == l).map(|(_, v)| v.clone())))
}

fn cumulative(text: &str, query: &Query) -> Cumulative {
    match query {
        Query::Proportion { bad, total } => {
            let sum = |counters: &[Counter]| -> f64 {
                let mut out = 0.0;
                for line in text.lines() {
                    let Some(sample) = parse_line(line) else {
                        continue;
                    };
                    for c in counters {
                        if sample.name == c.name && matches_all(&c.matchers, &sample.labels) {
                            out += sample.value;
                        }
                    }
                }
                out
            };
            Cumulative::Proportion {
                bad: sum(bad),
                total: sum(total),
            }
        }
        Query::Histogram { name, matchers } => {
            let bucket = format!("{name}_bucket");
            let sum_name = format!("{name}_sum");
            let count_name = format!("{name}_count");
            let mut buckets: BTreeMap<OrderedBound, f64> = BTreeMap::new();
            let (mut sum, mut count) = (0.0, 0.0);
            for line in text.lines() {
                let Some(sample) = parse_line(line) else {
                    continue;
                };
                if !matches_all(matchers, &sample.labels) {
                    continue;
                }
                if sample.name == bucket {
                    let le = sample
                        .labels
                        .iter()
                        .find(|(k, _)| *k == "le")
                        .and_then(|(_, v)| match v.as_str() {
                            "+Inf" => Some(f64::INFINITY),
                            v => v.parse::<f64>().ok().filter(|x| x.is_finite()),
                        });
                    if let Some(le) = le {
                        *buckets.entry(OrderedBound(le)).or_default() += sample.value;
                    }
                } else if sample.name == sum_name {
                    sum += sample.value;
                } else if sample.name == count_name {
                    count += sample.value;
                }
            }
            Cumulative::Histogram {
                buckets,
                sum,
                count,
            }
        }
    }
}

/// Nothing counted yet: the start of a window that began with the process.
fn zero(query: &Query) -> Cumulative {
    match query {
        Query::Proportion { .. } => Cumulative::Proportion {
            bad: 0.0,
            total: 0.0,
        },
        Query::Histogram { .. } => Cumulative::Histogram {
            buckets: BTreeMap::new(),
            sum: 0.0,
            count: 0.0,
        },
    }
}

fn count(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

/// `now - start`; a counter that went down was reset, so its whole value
/// is the increase (as Prometheus's `increase()` assumes).
fn increase(now: f64, start: f64) -> f64 {
    if now >= start {
        now - start
    } else {
        now
    }
}

fn delta(name: &str, now: &Cumulative, start: &Cumulative) -> Result<Reading, MetricsError> {
    match (now, start) {
        (Cumulative::Proportion { bad, total }, Cumulative::Proportion { bad: b0, total: t0 }) => {
            Ok(Reading::Proportion(Counts {
                bad: count(increase(*bad, *b0)),
                total: count(increase(*total, *t0)),
            }))
        }
        (
            Cumulative::Histogram {
                buckets,
                sum,
                count: n,
            },
            Cumulative::Histogram {
                buckets: b0,
                sum: s0,
                count: n0,
            },
        ) => {
            let reset = n < n0;
            if buckets.is_empty() {
                // No series yet: nothing observed on this side.
                return Histogram::empty(vec![f64::INFINITY])
                    .map(Reading::Histogram)
                    .map_err(|e| MetricsError::Histogram {
                        name: name.to_string(),
                        reason: e.to_string(),
                    });
            }
            let bounds: Vec<f64> = buckets.keys().map(|b| b.0).collect();
            let cumulative: Vec<u64> = buckets
                .iter()
                .map(|(le, v)| {
                    let before = if reset {
                        0.0
                    } else {
                        b0.get(le).copied().unwrap_or(0.0)
                    };
                    count(increase(*v, before))
                })
                .collect();
            let (sum, total) = if reset {
                (*sum, count(*n))
            } else {
                ((sum - s0).max(0.0), count(increase(*n, *n0)))
            };
            Histogram::from_cumulative(bounds, cumulative, sum, total)
                .map(Reading::Histogram)
                .map_err(|e| MetricsError::Histogram {
                    name: name.to_string(),
                    reason: e.to_string(),
                })
        }
        _ => Err(MetricsError::Histogram {
            name: name.to_string(),
            reason: "changed kind".to_string(),
        }),
    }
}

fn query_name(query: &Query) -> String {
    match query {
        Query::Proportion { total, .. } => {
            total.first().map(|c| c.name.clone()).unwrap_or_default()
        }
        Query::Histogram { name, .. } => name.clone(),
    }
}

#[async_trait]
impl MetricsSource for InProcess {
    async fn read(
        &self,
        queries: &[Query],
        since: SystemTime,
        _now: SystemTime,
    ) -> Result<Vec<Reading>, MetricsError> {
        let text = (self.render)();
        let now: Vec<Cumulative> = queries.iter().map(|q| cumulative(&text, q)).collect();
        let start = if since == SystemTime::UNIX_EPOCH {
            queries.iter().map(zero).collect()
        } else {
            let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
            match starts
                .iter()
                .find(|w| w.since == since && w.queries == queries)
            {
                Some(start) => start.values.clone(),
                None => {
                    if starts.len() >= MAX_WINDOWS {
                        starts.remove(0);
                    }
                    starts.push(WindowStart {
                        since,
                        queries: queries.to_vec(),
                        values: now.clone(),
                    });
                    now.clone()
                }
            }
        };
        queries
            .iter()
            .zip(now.iter().zip(start.iter()))
            .map(|(q, (n, s))| delta(&query_name(q), n, s))
            .collect()
    }

    fn describe(&self) -> String {
        "this process's metrics registry".to_string()
    }

    fn is_in_process(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn source(text: Arc<Mutex<String>>) -> InProcess {
        InProcess::new(Box::new(move || text.lock().unwrap().clone()))
    }

    fn gateway_errors(pool: &str) -> Query {
        let base = vec![
            Matcher::eq("gateway_route", "links"),
            Matcher::eq("gateway_pool", pool),
        ];
        let mut bad = base.clone();
        bad.push(Matcher::Prefix(
            "http_response_status_code".into(),
            "5".into(),
        ));
        Query::Proportion {
            bad: vec![Counter::new("gateway_request_duration_seconds_count", bad)],
            total: vec![Counter::new("gateway_request_duration_seconds_count", base)],
        }
    }

    const BEFORE: &str = r#"
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="0.001"} 10
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="0.01"} 20
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="+Inf"} 20
gateway_request_duration_seconds_sum{gateway_route="links",gateway_pool="stable",http_response_status_code="302"} 0.05
gateway_request_duration_seconds_count{gateway_route="links",gateway_pool="stable",http_response_status_code="302"} 20
gateway_request_duration_seconds_count{gateway_route="links",gateway_pool="canary",http_response_status_code="302"} 5
"#;

    const AFTER: &str = r#"
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="0.001"} 15
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="0.01"} 40
gateway_request_duration_seconds_bucket{gateway_route="links",gateway_pool="stable",http_response_status_code="302",le="+Inf"} 41
gateway_request_duration_seconds_sum{gateway_route="links",gateway_pool="stable",http_response_status_code="302"} 0.15
gateway_request_duration_seconds_count{gateway_route="links",gateway_pool="stable",http_response_status_code="302"} 41
gateway_request_duration_seconds_count{gateway_route="links",gateway_pool="canary",http_response_status_code="302"} 9
gateway_request_duration_seconds_count{gateway_route="links",gateway_pool="canary",http_response_status_code="503"} 3
gateway_request_duration_seconds_count{gateway_route="other",gateway_pool="canary",http_response_status_code="503"} 100
"#;

    #[tokio::test]
    async fn a_window_is_the_difference_since_its_first_look() {
        let text = Arc::new(Mutex::new(BEFORE.to_string()));
        let source = source(text.clone());
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let queries = vec![
            gateway_errors("canary"),
            Query::Histogram {
                name: "gateway_request_duration_seconds".into(),
                matchers: vec![Matcher::eq("gateway_pool", "stable")],
            },
        ];
        let first = source.read(&queries, since, since).await.unwrap();
        assert_eq!(first[0], Reading::Proportion(Counts { bad: 0, total: 0 }));
        *text.lock().unwrap() = AFTER.to_string();
        let later = source.read(&queries, since, since).await.unwrap();
        assert_eq!(later[0], Reading::Proportion(Counts { bad: 3, total: 7 }));
        let Reading::Histogram(h) = &later[1] else {
            panic!("{later:?}")
        };
        assert_eq!(h.count(), 21);
        assert_eq!(h.counts(), &[5, 15, 1]);
        assert!((h.sum() - 0.1).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_reset_counter_counts_from_zero() {
        let text = Arc::new(Mutex::new(AFTER.to_string()));
        let source = source(text.clone());
        let since = SystemTime::UNIX_EPOCH;
        let q = vec![gateway_errors("canary")];
        source.read(&q, since, since).await.unwrap();
        *text.lock().unwrap() = BEFORE.to_string();
        let r = source.read(&q, since, since).await.unwrap();
        assert_eq!(r[0], Reading::Proportion(Counts { bad: 0, total: 5 }));
    }

    #[test]
    fn matchers_render_as_escaped_promql() {
        assert_eq!(Matcher::eq("a", "x\"y").promql(), r#"a="x\"y""#);
        assert_eq!(
            Matcher::Prefix("c".into(), "5.".into()).promql(),
            r#"c=~"5\\..*""#
        );
        assert_eq!(
            Counter::new("m", vec![Matcher::NotEqual("k".into(), "bad_input".into())]).selector(),
            r#"m{k!="bad_input"}"#
        );
    }
}
