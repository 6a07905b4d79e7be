//! Where the judge's numbers come from: the same questions asked of this
//! process's metrics registry ([`InProcess`], when the target runs in
//! `reliable up`) or of Prometheus ([`Prometheus`], when the controller
//! runs against a cluster).
//!
//! A question ([`Query`]) is "how much did these counters grow" or "how
//! did this histogram fill" over the canary's window. Each target kind
//! knows which of its series answer it for one side (a gateway pool, a
//! model version); see [`crate::target::queries`]. Both sources answer with
//! window increases, never with raw cumulative values, so a counter reset
//! (a pod restarted mid-canary) is Prometheus's `increase()` problem, not
//! ours.

mod exposition;
mod prometheus;

pub use exposition::InProcess;
pub use prometheus::Prometheus;

use crate::judge::{Counts, Histogram};
use async_trait::async_trait;
use serde::Serialize;
use std::time::SystemTime;

/// A label matcher on one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Matcher {
    Equal(String, String),
    NotEqual(String, String),
    /// The label's value starts with this text (`5` for server errors).
    Prefix(String, String),
}

impl Matcher {
    pub fn eq(label: &str, value: &str) -> Self {
        Self::Equal(label.to_string(), value.to_string())
    }

    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equal(l, v) => value_of(l).as_deref() == Some(v.as_str()),
            Self::NotEqual(l, v) => value_of(l).as_deref() != Some(v.as_str()),
            Self::Prefix(l, p) => value_of(l).is_some_and(|x| x.starts_with(p.as_str())),
        }
    }

    /// The PromQL form; values are escaped as PromQL string literals.
    pub fn promql(&self) -> String {
        let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let regex_quote = |v: &str| {
            let mut out = String::new();
            for c in v.chars() {
                if "\\.+*?()|[]{}^$".contains(c) {
                    out.push_str("\\\\");
                }
                if c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        };
        match self {
            Self::Equal(l, v) => format!("{l}=\"{}\"", quote(v)),
            Self::NotEqual(l, v) => format!("{l}!=\"{}\"", quote(v)),
            Self::Prefix(l, p) => format!("{l}=~\"{}.*\"", regex_quote(p)),
        }
    }
}

/// Counters (by name and matchers) summed together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

impl Counter {
    pub fn new(name: &str, matchers: Vec<Matcher>) -> Self {
        Self {
            name: name.to_string(),
            matchers,
        }
    }

    /// `name{matchers}` in PromQL.
    pub fn selector(&self) -> String {
        let inner: Vec<String> = self.matchers.iter().map(Matcher::promql).collect();
        format!("{}{{{}}}", self.name, inner.join(","))
    }
}

/// One side's question for one metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Query {
    /// Bad events over all events, each the sum of some counters.
    Proportion {
        bad: Vec<Counter>,
        total: Vec<Counter>,
    },
    /// A histogram's buckets, sum and count (`name` without `_bucket`),
    /// summed over the series the matchers select.
    Histogram {
        name: String,
        matchers: Vec<Matcher>,
    },
}

/// The answer to a [`Query`] over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Reading {
    Proportion(Counts),
    Histogram(Histogram),
}

/// Why the metrics could not be read: the run fails safe on it (pauses or
/// rolls back per `on_metrics_error`, never promotes).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("Prometheus at {url} did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Prometheus refused `{query}`: {reason}")]
    Query { query: String, reason: String },
    #[error("histogram {name} is not usable: {reason}")]
    Histogram { name: String, reason: String },
}

/// A source of window increases.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// What the counters and histograms `queries` select grew by between
    /// `since` and `now`, in the order asked.
    async fn read(
        &self,
        queries: &[Query],
        since: SystemTime,
        now: SystemTime,
    ) -> Result<Vec<Reading>, MetricsError>;

    /// Where the numbers come from, for the decisions' evidence.
    fn describe(&self) -> String;

    /// Reads this process's registry: it has no history, so a window that
    /// starts at the Unix epoch means "since the process started".
    fn is_in_process(&self) -> bool {
        false
    }
}
