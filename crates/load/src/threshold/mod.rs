//! Thresholds, as k6 has them: `p(99) < 25ms` on a metric, optionally per
//! request name or scenario, evaluated at the end (and during the run for
//! `abort_on_fail`). A crossed threshold makes `reliable load` exit 99, so
//! CI and the canary drill can gate on a run.
//!
//! A threshold is a key, `METRIC` or `METRIC{name:create,scenario:peak}`,
//! and an expression `AGG OP VALUE`. Metrics and their aggregates:
//!
//! | metric | aggregates | value |
//! |---|---|---|
//! | `http_req_duration` | `p(N)`, `avg`, `med`, `min`, `max` | duration (`us`, `ms`, `s`; `ms` if none) |
//! | `generator_lateness` | the same | duration |
//! | `http_reqs` | `count`, `rate` (completed per second of the run) | integer, number |
//! | `errors` | `rate` (errors / completed), `count` | `0.1%` or `0.001`, integer |
//! | `checks` | `rate` (passed / all), `count` (failed) | the same |
//! | `dropped` | `count` (never sent + skipped on an empty pool) | integer |
//!
//! `rate(errors)` and `count(dropped)` name the key's metric again, as k6
//! users write them. Only the load phase's scenarios are measured, not
//! setup or teardown. `dropped` with a `name` tag counts only that name's
//! empty-pool skips: arrivals that were never sent belong to no name.
//!
//! Nothing measured is not a pass: a latency or rate with no samples under
//! the selector (a `name` that matched nothing, a scenario that completed
//! no request) fails with `observed: None`. A count of nothing is 0.
//!
//! Comparisons allow a relative error of 1e-9, so `rate >= 99.9%` holds at
//! exactly 999 of 1,000 despite binary fractions.

use crate::results::{new_histogram, Results, Stats};
use hdrhistogram::Histogram;
use std::cmp::Ordering;
use std::time::Duration;

mod parse;
use parse::{parse_expression, parse_key};

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The key as written, e.g. `http_req_duration{name:redirect}`.
    pub key: String,
    /// The expression as written, e.g. `p(99) < 25ms`.
    pub expression: String,
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: not evaluated during the first this-long of
    /// the load phase.
    pub delay_abort_eval: Duration,
    metric: Metric,
    selector: Selector,
    aggregate: Aggregate,
    op: Op,
    bound: Bound,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

impl Threshold {
    /// Parses `key` and `expression`; the error says what does not parse.
    pub fn parse(
        key: &str,
        expression: &str,
        abort_on_fail: bool,
        delay_abort_eval: Duration,
    ) -> Result<Self, ThresholdError> {
        let (metric, selector) = parse_key(key)?;
        let (aggregate, op, bound) = parse_expression(metric, expression)?;
        Ok(Self {
            key: key.to_string(),
            expression: expression.to_string(),
            abort_on_fail,
            delay_abort_eval,
            metric,
            selector,
            aggregate,
            op,
            bound,
        })
    }

    /// The metric's name, e.g. `http_req_duration`.
    pub fn metric(&self) -> &'static str {
        self.metric.name()
    }

    /// The `scenario:` tag, for the compiler to check that it exists.
    pub fn scenario_tag(&self) -> Option<&str> {
        self.selector.scenario.as_deref()
    }

    /// The `name:` tag, for the compiler to check that it exists.
    pub fn name_tag(&self) -> Option<&str> {
        self.selector.name.as_deref()
    }

    /// Evaluates against what has been measured so far.
    pub fn evaluate(&self, results: &Results) -> Verdict {
        let observed = self.observe(results);
        let passed = observed.is_some_and(|value| self.op.holds(value, self.bound.value));
        Verdict {
            key: self.key.clone(),
            expression: self.expression.clone(),
            observed: observed.map(|value| self.bound.unit.format(value)),
            passed,
        }
    }

    /// The aggregate's value in base units (microseconds, fractions,
    /// counts, per second), or `None` when there is nothing to judge.
    fn observe(&self, results: &Results) -> Option<f64> {
        let matched = self.selector.matching(results);
        match self.metric {
            Metric::HttpReqDuration => {
                latency_aggregate(self.aggregate, &merged(&matched, |s| &s.latency))
            }
            Metric::GeneratorLateness => {
                latency_aggregate(self.aggregate, &merged(&matched, |s| &s.lateness))
            }
            Metric::HttpReqs => {
                let completed = sum(&matched, Stats::completed);
                match self.aggregate {
                    Aggregate::Rate => {
                        let seconds = results.elapsed.as_secs_f64();
                        (seconds > 0.0).then(|| completed as f64 / seconds)
                    }
                    _ => Some(completed as f64),
                }
            }
            Metric::Errors => {
                let errors = sum(&matched, Stats::errors);
                match self.aggregate {
                    Aggregate::Rate => fraction(errors, sum(&matched, Stats::completed)),
                    _ => Some(errors as f64),
                }
            }
            Metric::Checks => {
                let passed = sum(&matched, |s| s.check_totals().0);
                let failed = sum(&matched, |s| s.check_totals().1);
                match self.aggregate {
                    Aggregate::Rate => fraction(passed, passed + failed),
                    _ => Some(failed as f64),
                }
            }
            Metric::Dropped => {
                let skipped = sum(&matched, |s| s.skipped_empty_pool);
                let never_sent: u64 = if self.selector.name.is_some() {
                    0
                } else {
                    results
                        .scenarios
                        .iter()
                        .filter(|s| self.selector.scenario_matches(&s.name))
                        .map(|s| s.dropped)
                        .sum()
                };
                Some((skipped + never_sent) as f64)
            }
        }
    }
}

/// Every threshold's verdict, in order.
pub fn evaluate_all(thresholds: &[Threshold], results: &Results) -> Vec<Verdict> {
    thresholds.iter().map(|t| t.evaluate(results)).collect()
}

/// A threshold's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub key: String,
    pub expression: String,
    /// The metric's value in the expression's unit, formatted (`12.3ms`,
    /// `0.05%`, `0`); `None` when nothing matched the selector.
    pub observed: Option<String>,
    pub passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    HttpReqDuration,
    GeneratorLateness,
    HttpReqs,
    Errors,
    Checks,
    Dropped,
}

const METRICS: [Metric; 6] = [
    Metric::HttpReqDuration,
    Metric::GeneratorLateness,
    Metric::HttpReqs,
    Metric::Errors,
    Metric::Checks,
    Metric::Dropped,
];

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::HttpReqDuration => "http_req_duration",
            Metric::GeneratorLateness => "generator_lateness",
            Metric::HttpReqs => "http_reqs",
            Metric::Errors => "errors",
            Metric::Checks => "checks",
            Metric::Dropped => "dropped",
        }
    }

    fn aggregates(self) -> &'static str {
        match self {
            Metric::HttpReqDuration | Metric::GeneratorLateness => "p(N), avg, med, min, max",
            Metric::HttpReqs | Metric::Errors | Metric::Checks => "count, rate",
            Metric::Dropped => "count",
        }
    }

    fn allows(self, aggregate: Aggregate) -> bool {
        use Aggregate::*;
        match self {
            Metric::HttpReqDuration | Metric::GeneratorLateness => {
                matches!(aggregate, Percentile(_) | Avg | Min | Max)
            }
            Metric::HttpReqs | Metric::Errors | Metric::Checks => matches!(aggregate, Count | Rate),
            Metric::Dropped => matches!(aggregate, Count),
        }
    }

    /// The unit a bare number is in, and what else may be written.
    fn unit_of(self, aggregate: Aggregate) -> UnitKind {
        match (self, aggregate) {
            (Metric::HttpReqDuration | Metric::GeneratorLateness, _) => UnitKind::Duration,
            (Metric::HttpReqs, Aggregate::Rate) => UnitKind::PerSecond,
            (_, Aggregate::Rate) => UnitKind::Fraction,
            _ => UnitKind::Count,
        }
    }
}

/// Which (scenario, request name) pairs a key selects.
#[derive(Debug, Clone, PartialEq, Default)]
struct Selector {
    name: Option<String>,
    scenario: Option<String>,
}

impl Selector {
    fn scenario_matches(&self, scenario: &str) -> bool {
        self.scenario.as_deref().is_none_or(|s| s == scenario)
    }

    fn matching<'r>(&self, results: &'r Results) -> Vec<&'r Stats> {
        results
            .scenarios
            .iter()
            .filter(|s| self.scenario_matches(&s.name))
            .flat_map(|s| &s.requests)
            .filter(|(name, _)| self.name.as_deref().is_none_or(|n| n == name))
            .map(|(_, stats)| stats)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate {
    /// `p(N)` as a quantile in 0..=1; `med` is `p(50)`.
    Percentile(f64),
    Avg,
    Min,
    Max,
    Count,
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// Longest first, so `<=` is not read as `<`.
    const ALL: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn holds(self, observed: f64, bound: f64) -> bool {
        let order = compare(observed, bound);
        match self {
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
        }
    }
}

/// Orders two values, equal within a relative 1e-9 (binary fractions:
/// `99.9%` parses to 0.999 but 999/1000 may differ in the last bit).
fn compare(a: f64, b: f64) -> Ordering {
    if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) {
        Ordering::Equal
    } else {
        a.total_cmp(&b)
    }
}

/// The expression's value in base units and how to show observations.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: f64,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitKind {
    Duration,
    Fraction,
    PerSecond,
    Count,
}

/// The unit the expression was written in, which observations are shown
/// in too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Micros,
    Millis,
    Seconds,
    Percent,
    Ratio,
    PerSecond,
    Count,
}

impl Unit {
    /// Base units (microseconds, fraction, count, per second) per unit.
    fn scale(self) -> f64 {
        match self {
            Unit::Micros | Unit::Ratio | Unit::PerSecond | Unit::Count => 1.0,
            Unit::Millis => 1e3,
            Unit::Seconds => 1e6,
            Unit::Percent => 1e-2,
        }
    }

    fn format(self, base: f64) -> String {
        let shown = base / self.scale();
        match self {
            Unit::Micros => format!("{}us", compact(shown)),
            Unit::Millis => format!("{}ms", compact(shown)),
            Unit::Seconds => format!("{}s", compact(shown)),
            Unit::Percent => format!("{}%", compact(shown)),
            Unit::Ratio => compact(shown),
            Unit::PerSecond => format!("{}/s", compact(shown)),
            Unit::Count => format!("{shown:.0}"),
        }
    }
}

/// About three significant digits, no exponent, no trailing zeros:
/// `12.3`, `0.0012`, `1235`.
fn compact(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 9) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn merged(stats: &[&Stats], histogram: impl Fn(&Stats) -> &Histogram<u64>) -> Histogram<u64> {
    let mut all = new_histogram();
    for s in stats {
        // Every histogram in the crate has the same bounds: adding cannot fail.
        let _ = all.add(histogram(s));
    }
    all
}

fn latency_aggregate(aggregate: Aggregate, histogram: &Histogram<u64>) -> Option<f64> {
    if histogram.is_empty() {
        return None;
    }
    Some(match aggregate {
        Aggregate::Percentile(q) => histogram.value_at_quantile(q) as f64,
        Aggregate::Avg => histogram.mean(),
        Aggregate::Min => histogram.min() as f64,
        Aggregate::Max => histogram.max() as f64,
        // The parser gives latency metrics no other aggregate.
        Aggregate::Count | Aggregate::Rate => histogram.len() as f64,
    })
}

fn sum(stats: &[&Stats], count: impl Fn(&Stats) -> u64) -> u64 {
    stats.iter().map(|s| count(s)).sum()
}

fn fraction(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests;
