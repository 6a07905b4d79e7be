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

fn parse_key(key: &str) -> Result<(Metric, Selector), ThresholdError> {
    let key = key.trim();
    let (metric_name, tags) = match key.split_once('{') {
        None => (key, None),
        Some((metric, rest)) => {
            let Some(tags) = rest.strip_suffix('}') else {
                return Err(error(format!(
                    "`{key}`: tags go in braces at the end, as in `http_req_duration{{name:redirect}}`"
                )));
            };
            (metric.trim(), Some(tags))
        }
    };
    let metric = METRICS
        .into_iter()
        .find(|m| m.name() == metric_name)
        .ok_or_else(|| {
            let known: Vec<&str> = METRICS.iter().map(|m| m.name()).collect();
            error(format!(
                "unknown metric `{metric_name}`; metrics: {}",
                known.join(", ")
            ))
        })?;
    let mut selector = Selector::default();
    for tag in tags.into_iter().flat_map(|t| t.split(',')) {
        let Some((tag_name, value)) = tag.split_once(':') else {
            return Err(error(format!(
                "`{}` in `{key}` is not `tag:value`; tags: name, scenario",
                tag.trim()
            )));
        };
        let (tag_name, value) = (tag_name.trim(), value.trim());
        let slot = match tag_name {
            "name" => &mut selector.name,
            "scenario" => &mut selector.scenario,
            _ => {
                return Err(error(format!(
                    "unknown tag `{tag_name}` in `{key}`; tags: name, scenario"
                )))
            }
        };
        if value.is_empty() {
            return Err(error(format!("tag `{tag_name}` in `{key}` has no value")));
        }
        if slot.is_some() {
            return Err(error(format!("tag `{tag_name}` is given twice in `{key}`")));
        }
        *slot = Some(value.to_string());
    }
    Ok((metric, selector))
}

fn parse_expression(
    metric: Metric,
    expression: &str,
) -> Result<(Aggregate, Op, Bound), ThresholdError> {
    let Some((at, symbol, op)) = Op::ALL
        .iter()
        .filter_map(|&(symbol, op)| expression.find(symbol).map(|at| (at, symbol, op)))
        .min_by_key(|&(at, symbol, _)| (at, std::cmp::Reverse(symbol.len())))
    else {
        let hint = if expression.contains('=') {
            " (`=` alone is not one: write `==`)"
        } else {
            ""
        };
        return Err(error(format!(
            "`{expression}` has no operator{hint}: write `AGGREGATE OPERATOR VALUE`, as in `p(99) < 25ms`; operators: <, <=, >, >=, ==, !="
        )));
    };
    let left = expression[..at].trim();
    let right = expression[at + symbol.len()..].trim();
    let aggregate = parse_aggregate(metric, left)?;
    let bound = parse_value(metric.unit_of(aggregate), right)?;
    Ok((aggregate, op, bound))
}

fn parse_aggregate(metric: Metric, text: &str) -> Result<Aggregate, ThresholdError> {
    let (name, argument) = match text.split_once('(') {
        None => (text, None),
        Some((name, rest)) => {
            let Some(argument) = rest.strip_suffix(')') else {
                return Err(error(format!("`{text}`: a `(` without its `)`")));
            };
            (name.trim(), Some(argument.trim()))
        }
    };
    let aggregate = match (name, argument) {
        ("p", Some(n)) => {
            let percent: f64 = n.parse().map_err(|_| {
                error(format!(
                    "`p({n})`: the percentile is a number, as in p(99) or p(99.9)"
                ))
            })?;
            if !(0.0..=100.0).contains(&percent) {
                return Err(error(format!("`p({n})`: the percentile is from 0 to 100")));
            }
            Aggregate::Percentile(percent / 100.0)
        }
        ("p", None) => {
            return Err(error(format!(
                "`{text}`: a percentile names its rank, as in p(99)"
            )))
        }
        ("avg", None) => Aggregate::Avg,
        ("med", None) => Aggregate::Percentile(0.5),
        ("min", None) => Aggregate::Min,
        ("max", None) => Aggregate::Max,
        ("count" | "rate", Some(named)) if named != metric.name() => {
            return Err(error(format!(
                "`{text}` names the metric `{named}`, but the key's metric is `{}`",
                metric.name()
            )))
        }
        ("count", _) => Aggregate::Count,
        ("rate", _) => Aggregate::Rate,
        _ => {
            return Err(error(format!(
                "unknown aggregate `{text}`; `{}` takes {}",
                metric.name(),
                metric.aggregates()
            )))
        }
    };
    if !metric.allows(aggregate) {
        return Err(error(format!(
            "`{text}` does not apply to `{}`; it takes {}",
            metric.name(),
            metric.aggregates()
        )));
    }
    Ok(aggregate)
}

fn parse_value(kind: UnitKind, text: &str) -> Result<Bound, ThresholdError> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E')))
        .unwrap_or(text.len());
    // `e` may start a unit only in no unit we take, so the split is safe.
    let (number, unit_text) = (text[..split].trim(), text[split..].trim());
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| error(format!("`{text}`: expected a number that is not negative")))?;
    let unit = match (kind, unit_text) {
        (UnitKind::Duration, "us" | "µs") => Unit::Micros,
        (UnitKind::Duration, "ms" | "") => Unit::Millis,
        (UnitKind::Duration, "s") => Unit::Seconds,
        (UnitKind::Duration, _) => {
            return Err(error(format!(
                "`{text}`: a duration takes us, ms or s (ms when none)"
            )))
        }
        (UnitKind::Fraction, "%") => Unit::Percent,
        (UnitKind::Fraction, "") if value <= 1.0 => Unit::Ratio,
        (UnitKind::Fraction, _) => {
            return Err(error(format!(
                "`{text}`: a rate is a percentage like 0.1% or a fraction from 0 to 1 like 0.001"
            )))
        }
        (UnitKind::PerSecond, "" | "/s") => Unit::PerSecond,
        (UnitKind::PerSecond, _) => {
            return Err(error(format!(
                "`{text}`: the rate of http_reqs is requests per second, a plain number"
            )))
        }
        (UnitKind::Count, "") if value.fract() == 0.0 => Unit::Count,
        (UnitKind::Count, _) => return Err(error(format!("`{text}`: a count is a whole number"))),
    };
    if unit == Unit::Percent && value > 100.0 {
        return Err(error(format!("`{text}`: a rate is at most 100%")));
    }
    Ok(Bound {
        value: value * unit.scale(),
        unit,
    })
}

fn error(message: String) -> ThresholdError {
    ThresholdError(message)
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
mod tests {
    use super::*;
    use crate::results::{record, Outcome, ScenarioResults};

    fn threshold(key: &str, expression: &str) -> Threshold {
        Threshold::parse(key, expression, false, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{key}: {expression}: {e}"))
    }

    fn refusal(key: &str, expression: &str) -> String {
        match Threshold::parse(key, expression, false, Duration::ZERO) {
            Ok(t) => panic!("{key}: {expression} parsed as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let t = threshold("http_req_duration", "p(99) < 25ms");
        assert_eq!(t.metric(), "http_req_duration");
        assert_eq!(
            (t.aggregate, t.op, t.bound),
            (
                Aggregate::Percentile(0.99),
                Op::Lt,
                Bound {
                    value: 25_000.0,
                    unit: Unit::Millis
                }
            )
        );
        let t = threshold("http_req_duration", "p(99.9)<=1s");
        assert_eq!(t.op, Op::Le);
        assert_eq!(
            t.bound,
            Bound {
                value: 1e6,
                unit: Unit::Seconds
            }
        );
        assert!(matches!(t.aggregate, Aggregate::Percentile(q) if (q - 0.999).abs() < 1e-12));
        let t = threshold("generator_lateness", "avg < 300us");
        assert_eq!(
            (t.aggregate, t.bound.value, t.bound.unit),
            (Aggregate::Avg, 300.0, Unit::Micros)
        );
        let t = threshold("http_req_duration", "med < 5");
        assert_eq!(
            (t.aggregate, t.bound.value, t.bound.unit),
            (Aggregate::Percentile(0.5), 5_000.0, Unit::Millis)
        );
        let t = threshold("errors", "rate < 0.1%");
        assert_eq!(
            (t.aggregate, t.bound.unit),
            (Aggregate::Rate, Unit::Percent)
        );
        assert!((t.bound.value - 0.001).abs() < 1e-15);
        let same = threshold("errors", "rate(errors) < 0.1%");
        assert_eq!(
            (same.aggregate, same.op, same.bound),
            (t.aggregate, t.op, t.bound)
        );
        let t = threshold("errors", "rate<0.001");
        assert_eq!(
            t.bound,
            Bound {
                value: 0.001,
                unit: Unit::Ratio
            }
        );
        let t = threshold("dropped", "count == 0");
        assert_eq!(
            (t.aggregate, t.op, t.bound),
            (
                Aggregate::Count,
                Op::Eq,
                Bound {
                    value: 0.0,
                    unit: Unit::Count
                }
            )
        );
        assert_eq!(
            threshold("dropped", "count(dropped) == 0").aggregate,
            Aggregate::Count
        );
        let t = threshold("checks", "rate > 99.9%");
        assert_eq!((t.aggregate, t.op), (Aggregate::Rate, Op::Gt));
        assert_eq!(threshold("checks", "rate(checks) >= 99%").op, Op::Ge);
        assert_eq!(
            threshold("http_reqs", "rate != 100").bound,
            Bound {
                value: 100.0,
                unit: Unit::PerSecond
            }
        );
        assert_eq!(threshold("http_reqs", "count > 10").op, Op::Gt);
        assert_eq!(
            threshold("http_req_duration", "max <= 2.5 s").bound.value,
            2.5e6
        );
        assert_eq!(
            threshold("http_req_duration", "min >= 1e3us").bound.value,
            1e3
        );
    }

    #[test]
    fn parses_tags() {
        let t = threshold("http_req_duration{name:redirect}", "p(99) < 25ms");
        assert_eq!((t.name_tag(), t.scenario_tag()), (Some("redirect"), None));
        let t = threshold(
            "http_req_duration{ scenario: viral , name : is redirect }",
            "p(99) < 25ms",
        );
        assert_eq!(
            (t.name_tag(), t.scenario_tag()),
            (Some("is redirect"), Some("viral"))
        );
        assert_eq!(
            t.key,
            "http_req_duration{ scenario: viral , name : is redirect }"
        );
        assert_eq!(t.expression, "p(99) < 25ms");
        let t =
            Threshold::parse("errors", "rate < 1%", true, Duration::from_secs(10)).expect("parses");
        assert!(t.abort_on_fail);
        assert_eq!(t.delay_abort_eval, Duration::from_secs(10));
    }

    #[test]
    fn refuses_bad_keys_and_says_what_is_allowed() {
        let cases = [
            ("latency", "p(99) < 1ms", "unknown metric `latency`; metrics: http_req_duration, generator_lateness, http_reqs, errors, checks, dropped"),
            ("http_req_duration{method:GET}", "p(99) < 1ms", "unknown tag `method` in `http_req_duration{method:GET}`; tags: name, scenario"),
            ("http_req_duration{redirect}", "p(99) < 1ms", "`redirect` in `http_req_duration{redirect}` is not `tag:value`; tags: name, scenario"),
            ("http_req_duration{name:a", "p(99) < 1ms", "tags go in braces at the end"),
            ("http_req_duration{name:a,name:b}", "p(99) < 1ms", "tag `name` is given twice"),
            ("http_req_duration{name:}", "p(99) < 1ms", "tag `name` in `http_req_duration{name:}` has no value"),
        ];
        for (key, expression, want) in cases {
            let got = refusal(key, expression);
            assert!(got.contains(want), "{key}: {got}");
        }
    }

    #[test]
    fn refuses_bad_expressions_and_says_what_is_allowed() {
        let cases = [
            (
                "errors",
                "p(99) < 1ms",
                "`p(99)` does not apply to `errors`; it takes count, rate",
            ),
            (
                "dropped",
                "rate < 1%",
                "`rate` does not apply to `dropped`; it takes count",
            ),
            (
                "http_req_duration",
                "count < 10",
                "`count` does not apply to `http_req_duration`; it takes p(N), avg, med, min, max",
            ),
            ("errors", "med < 1", "`med` does not apply to `errors`"),
            (
                "http_req_duration",
                "mean < 1ms",
                "unknown aggregate `mean`; `http_req_duration` takes p(N), avg, med, min, max",
            ),
            (
                "errors",
                "rate(checks) < 0.1%",
                "`rate(checks)` names the metric `checks`, but the key's metric is `errors`",
            ),
            (
                "http_req_duration",
                "p(99) 25ms",
                "has no operator: write `AGGREGATE OPERATOR VALUE`",
            ),
            ("dropped", "count = 0", "(`=` alone is not one: write `==`)"),
            (
                "http_req_duration",
                "p(99) < 25xs",
                "`25xs`: a duration takes us, ms or s (ms when none)",
            ),
            (
                "http_req_duration",
                "p(99) < fast",
                "`fast`: expected a number that is not negative",
            ),
            (
                "http_req_duration",
                "p(99) < -1ms",
                "expected a number that is not negative",
            ),
            (
                "http_req_duration",
                "p(101) < 1ms",
                "`p(101)`: the percentile is from 0 to 100",
            ),
            (
                "http_req_duration",
                "p(x) < 1ms",
                "`p(x)`: the percentile is a number",
            ),
            (
                "http_req_duration",
                "p < 1ms",
                "a percentile names its rank",
            ),
            ("http_req_duration", "p(99 < 1ms", "a `(` without its `)`"),
            (
                "errors",
                "rate < 5",
                "a rate is a percentage like 0.1% or a fraction from 0 to 1",
            ),
            ("errors", "rate < 150%", "a rate is at most 100%"),
            ("errors", "count < 1.5", "`1.5`: a count is a whole number"),
            (
                "dropped",
                "count == 0 requests",
                "a count is a whole number",
            ),
            (
                "http_reqs",
                "rate > 5%",
                "the rate of http_reqs is requests per second",
            ),
        ];
        for (key, expression, want) in cases {
            let got = refusal(key, expression);
            assert!(got.contains(want), "{key}: {expression}: {got}");
        }
    }

    fn answered(latencies_us: &[u64], failing: usize) -> Stats {
        let mut stats = Stats::default();
        for (i, &micros) in latencies_us.iter().enumerate() {
            stats.sent += 1;
            let ok = i >= failing;
            let status = if ok { 200 } else { 500 };
            stats.record_outcome(Outcome::Status(status), ok, Duration::from_micros(micros));
        }
        stats
    }

    fn scenario(name: &str, dropped: u64, requests: Vec<(&str, Stats)>) -> ScenarioResults {
        ScenarioResults {
            name: name.to_string(),
            executor: "constant-arrival-rate",
            target_rate: Some(10.0),
            connections: 8,
            start: Duration::ZERO,
            duration: Duration::from_secs(10),
            scheduled: 0,
            dropped,
            requests: requests
                .into_iter()
                .map(|(n, s)| (n.to_string(), s))
                .collect(),
        }
    }

    /// baseline: create (100..=1000 us, one 500), redirect (90 x 500 us,
    /// 89 checks passed, 1 failed); viral: redirect (100 x 2 ms, 3
    /// skipped on an empty pool, 5 dropped). 200 completed in 20 s.
    fn run() -> Results {
        let create: Vec<u64> = (1..=10).map(|i| i * 100).collect();
        let mut create = answered(&create, 1);
        for _ in 0..10 {
            record(&mut create.lateness, Duration::from_micros(5));
        }
        let mut baseline_redirect = answered(&[500; 90], 0);
        for i in 0..90 {
            baseline_redirect.record_check("is redirect", i != 0);
        }
        let mut viral_redirect = answered(&[2_000; 100], 0);
        viral_redirect.skipped_empty_pool = 3;
        for _ in 0..100 {
            record(&mut viral_redirect.lateness, Duration::from_micros(50));
        }
        Results {
            scenarios: vec![
                scenario(
                    "baseline",
                    0,
                    vec![("create", create), ("redirect", baseline_redirect)],
                ),
                scenario("viral", 5, vec![("redirect", viral_redirect)]),
            ],
            elapsed: Duration::from_secs(20),
            ..Results::default()
        }
    }

    fn observe(key: &str, expression: &str) -> (Option<String>, bool) {
        let verdict = threshold(key, expression).evaluate(&run());
        assert_eq!(
            (verdict.key.as_str(), verdict.expression.as_str()),
            (key, expression)
        );
        (verdict.observed, verdict.passed)
    }

    fn seen(text: &str, passed: bool) -> (Option<String>, bool) {
        (Some(text.to_string()), passed)
    }

    #[test]
    fn latency_aggregates_in_the_expressions_unit() {
        assert_eq!(
            observe("http_req_duration", "p(50) < 1ms"),
            seen("1ms", false)
        );
        assert_eq!(
            observe("http_req_duration", "p(50) <= 1ms"),
            seen("1ms", true)
        );
        assert_eq!(
            observe("http_req_duration", "p(99) < 2500us"),
            seen("2000us", true)
        );
        assert_eq!(
            observe("http_req_duration", "med < 0.001s"),
            seen("0.001s", false)
        );
        assert_eq!(
            observe("http_req_duration", "avg < 2ms"),
            seen("1.25ms", true)
        );
        assert_eq!(
            observe("http_req_duration", "min >= 0.1ms"),
            seen("0.1ms", true)
        );
        assert_eq!(
            observe("http_req_duration", "max > 2ms"),
            seen("2ms", false)
        );
        assert_eq!(
            observe("generator_lateness", "p(99.9) < 1ms"),
            seen("0.05ms", true)
        );
        assert_eq!(
            observe("generator_lateness", "avg < 40us"),
            seen("45.9us", false)
        );
    }

    #[test]
    fn tags_select_scenarios_and_names() {
        assert_eq!(
            observe("http_req_duration{name:create}", "p(99) < 1ms"),
            seen("1ms", false)
        );
        assert_eq!(
            observe("http_req_duration{name:create}", "avg < 1ms"),
            seen("0.55ms", true)
        );
        assert_eq!(
            observe("http_req_duration{scenario:viral}", "p(1) == 2ms"),
            seen("2ms", true)
        );
        assert_eq!(
            observe(
                "http_req_duration{scenario:baseline,name:redirect}",
                "max == 500us"
            ),
            seen("500us", true)
        );
        assert_eq!(
            observe("http_req_duration{name:redirect}", "p(50) < 1ms"),
            seen("2ms", false)
        );
        assert_eq!(
            observe("generator_lateness{scenario:viral}", "max < 1ms"),
            seen("0.05ms", true)
        );
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(observe("http_reqs", "count == 200"), seen("200", true));
        assert_eq!(observe("http_reqs", "rate >= 10"), seen("10/s", true));
        assert_eq!(
            observe("http_reqs{scenario:viral}", "rate > 5"),
            seen("5/s", false)
        );
        assert_eq!(observe("errors", "rate < 0.1%"), seen("0.5%", false));
        assert_eq!(
            observe("errors", "rate(errors) < 0.01"),
            seen("0.005", true)
        );
        assert_eq!(observe("errors", "count <= 1"), seen("1", true));
        assert_eq!(
            observe("errors{scenario:viral}", "rate == 0%"),
            seen("0%", true)
        );
        assert_eq!(
            observe("errors{name:create}", "rate > 9%"),
            seen("10%", true)
        );
        assert_eq!(observe("checks", "rate > 99.9%"), seen("98.9%", false));
        assert_eq!(observe("checks", "count == 1"), seen("1", true));
        assert_eq!(observe("dropped", "count == 0"), seen("8", false));
        assert_eq!(
            observe("dropped{scenario:viral}", "count != 8"),
            seen("8", false)
        );
        assert_eq!(
            observe("dropped{scenario:baseline}", "count == 0"),
            seen("0", true)
        );
        assert_eq!(
            observe("dropped{name:redirect}", "count == 3"),
            seen("3", true)
        );
    }

    #[test]
    fn nothing_measured_fails_latencies_and_rates_but_counts_zero() {
        assert_eq!(
            observe("http_req_duration{name:typo}", "p(99) < 1s"),
            (None, false)
        );
        assert_eq!(
            observe(
                "generator_lateness{scenario:baseline,name:redirect}",
                "p(99) < 1s"
            ),
            (None, false)
        );
        assert_eq!(observe("errors{name:typo}", "rate < 1%"), (None, false));
        assert_eq!(observe("checks{name:create}", "rate > 1%"), (None, false));
        assert_eq!(observe("errors{name:typo}", "count == 0"), seen("0", true));
        assert_eq!(
            observe("dropped{scenario:typo}", "count == 0"),
            seen("0", true)
        );
        assert_eq!(
            observe("http_reqs{name:typo}", "count > 0"),
            seen("0", false)
        );
        let empty = Results::default();
        let verdict = threshold("http_reqs", "rate > 0").evaluate(&empty);
        assert_eq!((verdict.observed, verdict.passed), (None, false));
    }

    #[test]
    fn every_operator_and_exact_boundaries() {
        let results = {
            let mut stats = Stats::default();
            for i in 0..1000 {
                stats.record_outcome(Outcome::Status(200), true, Duration::from_millis(1));
                stats.record_check("ok", i != 0);
            }
            Results {
                scenarios: vec![scenario("s", 0, vec![("r", stats)])],
                elapsed: Duration::from_secs(1),
                ..Results::default()
            }
        };
        let passes = |expression: &str| threshold("checks", expression).evaluate(&results).passed;
        assert!(passes("rate >= 99.9%"));
        assert!(passes("rate <= 99.9%"));
        assert!(passes("rate == 99.9%"));
        assert!(passes("rate == 0.999"));
        assert!(!passes("rate != 99.9%"));
        assert!(!passes("rate > 99.9%"));
        assert!(!passes("rate < 99.9%"));
        assert!(passes("rate > 99.8%"));
        assert!(passes("rate < 99.91%"));
        assert!(passes("rate != 99.8%"));
    }

    #[test]
    fn evaluate_all_keeps_the_order() {
        let thresholds = [
            threshold("dropped", "count == 0"),
            threshold("http_reqs", "count == 200"),
        ];
        let verdicts = evaluate_all(&thresholds, &run());
        let summary: Vec<(&str, bool)> = verdicts
            .iter()
            .map(|v| (v.key.as_str(), v.passed))
            .collect();
        assert_eq!(summary, vec![("dropped", false), ("http_reqs", true)]);
    }

    #[test]
    fn compact_keeps_about_three_significant_digits() {
        let cases = [
            (0.0, "0"),
            (12.345, "12.3"),
            (0.0012, "0.0012"),
            (1234.5, "1234"),
            (99.96, "100"),
            (1.0, "1"),
            (0.5, "0.5"),
            (98.88888, "98.9"),
        ];
        for (value, want) in cases {
            assert_eq!(compact(value), want, "{value}");
        }
    }
}
