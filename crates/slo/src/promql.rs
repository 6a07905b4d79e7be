//! PromQL checks with the `promql-parser` crate.
//!
//! A query that Prometheus would reject must fail at `reliable slo
//! generate`, naming the spec line, not hours later when the rule group
//! stops evaluating. The same parser lets the live evaluator read the
//! counter selectors out of simple `sum(rate(selector[w]))` queries.

use crate::fields::At;
use crate::model::{QueryTemplate, WINDOW_PLACEHOLDER};
use crate::window::Window;
use crate::SpecError;
use promql_parser::label::Matcher;
use promql_parser::parser::{Expr, VectorSelector};

/// The longest duration written as a number of seconds (in a range, a
/// subquery's range or step, or after `offset`) that a query may hold:
/// 10^15 s, some 30 million years.
const MAX_DURATION_SECONDS: f64 = 1e15;

/// `promql_parser`'s parse, refusing first what would make it panic: a
/// duration written as a number of seconds too large for a `Duration`
/// (`rate(x[1e300])`, `x offset 99999999999999999999`, `offset Inf`), which
/// it converts with `Duration::from_secs_f64` (found by the `slo_sloth`
/// fuzz target).
fn parse(text: &str) -> Result<Expr, String> {
    check_durations(text)?;
    promql_parser::parser::parse(text)
}

/// One pass over the query's tokens outside strings and comments: every
/// number inside `[...]` or after `offset` must be a finite duration of
/// at most [`MAX_DURATION_SECONDS`]. Durations with units (`5m`, `1h30m`)
/// are the parser's to check, and it does.
fn check_durations(text: &str) -> Result<(), String> {
    let out_of_range = |token: &str| {
        format!("the duration `{token}` is out of range (at most {MAX_DURATION_SECONDS:e} seconds)")
    };
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut after_offset) = (0, 0usize, false);
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'"' | b'\'' | b'`' => {
                // To the closing quote; backslash escapes but in raw strings.
                i += 1;
                while i < bytes.len() && bytes[i] != byte {
                    i += if byte != b'`' && bytes[i] == b'\\' {
                        2
                    } else {
                        1
                    };
                }
                i += 1;
                after_offset = false;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => (depth, i, after_offset) = (depth + 1, i + 1, false),
            b']' => (depth, i, after_offset) = (depth.saturating_sub(1), i + 1, false),
            // Whitespace and a sign keep an `offset` waiting for its value.
            b' ' | b'\t' | b'\r' | b'\n' | b'+' | b'-' => i += 1,
            b'0'..=b'9' | b'.' => {
                let start = i;
                while i < bytes.len() {
                    let exponent_sign = matches!(bytes[i], b'+' | b'-')
                        && matches!(bytes[i - 1], b'e' | b'E')
                        && !text[start..i].starts_with("0x");
                    if bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let token = &text[start..i];
                if depth > 0 || after_offset {
                    if let Ok(seconds) = token.parse::<f64>() {
                        if seconds.is_nan() || seconds.abs() > MAX_DURATION_SECONDS {
                            return Err(out_of_range(token));
                        }
                    }
                }
                after_offset = false;
            }
            // A word; a colon (in a rule name or a subquery) is a separator.
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                if after_offset
                    && (word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan"))
                {
                    return Err(out_of_range(word));
                }
                after_offset = word.eq_ignore_ascii_case("offset");
            }
            _ => (i, after_offset) = (i + 1, false),
        }
    }
    Ok(())
}

/// Checks a query; `window` says whether it must contain `{{.window}}`.
pub fn template(
    at: &At<'_>,
    line: usize,
    text: &str,
    needs_window: bool,
) -> Result<QueryTemplate, SpecError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(at.here(line, "query must not be empty"));
    }
    if needs_window && !text.contains(WINDOW_PLACEHOLDER) {
        return Err(at.here(
            line,
            format!("query must use {WINDOW_PLACEHOLDER} as its range, e.g. rate(x[{WINDOW_PLACEHOLDER}])"),
        ));
    }
    let rendered = text.replace(WINDOW_PLACEHOLDER, "5m");
    parse(&rendered).map_err(|e| {
        at.here(
            line,
            format!("query does not parse as PromQL: {}", one_line(&e)),
        )
    })?;
    Ok(QueryTemplate::new_checked(text.to_string()))
}

/// A raw counter selector (OpenSLO `counter: true`): `name{matchers}`.
pub fn counter_selector(at: &At<'_>, line: usize, text: &str) -> Result<String, SpecError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(at.here(line, "query must not be empty"));
    }
    match parse(text) {
        Err(e) => Err(at.here(line, format!("query does not parse as PromQL: {}", one_line(&e)))),
        Ok(Expr::VectorSelector(vs)) if vs.offset.is_none() && vs.at.is_none() => {
            if vs.name.is_none() || !text.starts_with(vs.name.as_deref().unwrap_or_default()) {
                return Err(at.here(line, "write the metric name before the braces, e.g. http_requests_total{job=\"api\"}"));
            }
            Ok(text.to_string())
        }
        Ok(_) => Err(at.here(
            line,
            "a counter query must be a plain series selector such as http_requests_total{code=~\"5..\"}: the rate and sum are added for each window",
        )),
    }
}

/// `sum(rate(selector[{{.window}}]))` for a checked counter selector.
pub fn rate_of(selector: &str) -> QueryTemplate {
    QueryTemplate::new_checked(format!("sum(rate({selector}[{WINDOW_PLACEHOLDER}]))"))
}

/// Adds a matcher to a checked selector: `x{a="b"}` + `le="0.3"`.
pub fn with_matcher(selector: &str, matcher: &str) -> String {
    match selector.strip_suffix('}') {
        Some(open) if open.trim_end().ends_with('{') => format!("{open}{matcher}}}"),
        Some(open) => format!("{open},{matcher}}}"),
        None => format!("{selector}{{{matcher}}}"),
    }
}

/// Undoes [`with_matcher`]: `x{a="b",le="0.3"}` without `le="0.3"` is
/// `x{a="b"}`. `None` when the selector does not end with that matcher.
pub fn without_matcher(selector: &str, matcher: &str) -> Option<String> {
    let open = selector.strip_suffix(&format!("{matcher}}}"))?;
    match open.strip_suffix('{') {
        Some(name) => Some(name.trim_end().to_string()),
        None => open.strip_suffix(',').map(|rest| format!("{rest}}}")),
    }
}

/// The histogram bucket selector (without `le`) behind a latency SLI's
/// good events, which OpenSLO's `thresholdMetric` builds as
/// `rate_of(with_matcher(buckets, le="<threshold>"))`. `None` for any
/// other shape: dashboards then have no quantiles to draw.
pub fn latency_buckets(good: &QueryTemplate, threshold: f64) -> Option<String> {
    let selector = good
        .as_str()
        .strip_prefix("sum(rate(")?
        .strip_suffix(&format!("[{WINDOW_PLACEHOLDER}]))"))?;
    let buckets = without_matcher(selector, &format!("le=\"{threshold}\""))?;
    // The result must still be a plain selector, or it was not our shape.
    match parse(&buckets) {
        Ok(Expr::VectorSelector(_)) => Some(buckets),
        _ => None,
    }
}

/// The series one SLI counter sums: a name and matchers.
#[derive(Debug, Clone)]
pub struct CounterSeries {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub or_matchers: Vec<Vec<Matcher>>,
}

impl CounterSeries {
    pub fn matches<'l>(&self, name: &str, labels: impl Fn(&str) -> Option<&'l str>) -> bool {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        let get = |label: &str| -> &str {
            if label == "__name__" {
                name
            } else {
                labels(label).unwrap_or("")
            }
        };
        let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(get(&m.name)));
        all(&self.matchers)
            && (self.or_matchers.is_empty() || self.or_matchers.iter().any(|ms| all(ms)))
    }
}

/// The counter behind `sum(rate(selector[w]))` or `sum(increase(...))`, if
/// the query has that shape; the live evaluator can follow only those.
pub fn summed_counter(query: &QueryTemplate) -> Option<CounterSeries> {
    let expr = parse(&query.render(Window::minutes(5))).ok()?;
    let Expr::Aggregate(agg) = unparen(&expr) else {
        return None;
    };
    if agg.op.to_string() != "sum" || agg.modifier.is_some() || agg.param.is_some() {
        return None;
    }
    let Expr::Call(call) = unparen(&agg.expr) else {
        return None;
    };
    if !matches!(call.func.name, "rate" | "increase") || call.args.args.len() != 1 {
        return None;
    }
    let Expr::MatrixSelector(ms) = unparen(&call.args.args[0]) else {
        return None;
    };
    let VectorSelector {
        name,
        matchers,
        offset,
        at,
    } = &ms.vs;
    if offset.is_some() || at.is_some() {
        return None;
    }
    Some(CounterSeries {
        name: name.clone(),
        matchers: matchers.matchers.clone(),
        or_matchers: matchers.or_matchers.clone(),
    })
}

fn unparen(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a generated expression parses (used by tests of the generator).
pub fn parses(expr: &str) -> Result<(), String> {
    parse(expr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_too_large_for_the_parser_is_refused_not_a_panic() {
        for query in [
            "sum(rate(e[222222222222222222222222222222222:22222222m]))",
            "sum(rate(e[5m:22222222222222222222222]))",
            "rate(x[99999999999999999999])",
            "rate(x[1e300])",
            "rate(x[1.9e19])",
            "rate(x[5m:1e300])",
            "x offset 99999999999999999999999999",
            "x offset -1e300",
            "x offset Inf",
            "x offset  +NaN",
            "rate(x[5m] offset -99999999999999999999999999)",
        ] {
            let error = parse(query).expect_err(query);
            assert!(error.contains("out of range"), "{query}: {error}");
        }
        // Numbers elsewhere, in strings and comments, and durations the
        // parser checks itself, are left to it.
        for query in [
            "rate(x[1e15])",
            "rate(x[300])",
            "rate(x[5m:30s])",
            "x offset 5m",
            "x > 100000000000000000000000000",
            "x @ 1e300",
            "rate(x{path=\"[99999999999999999999]\"}[5m])",
            "rate(x[5m]) # offset 99999999999999999999",
            "x and on(le) y",
        ] {
            assert!(parse(query).is_ok(), "{query}");
        }
        assert!(parse("rate(x[99999999999y])").is_err());
    }

    fn at() -> At<'static> {
        At::root("t.yaml").child("q")
    }

    #[test]
    fn checks_templates() {
        assert!(template(&at(), 1, "sum(rate(x{a=\"b\"}[{{.window}}]))", true).is_ok());
        let e = template(&at(), 3, "sum(rate(x[{{.window}}])", true).expect_err("bad");
        assert!(e.message.contains("does not parse"), "{e}");
        assert_eq!(e.line, 3);
        assert!(template(&at(), 1, "   ", true)
            .expect_err("empty")
            .message
            .contains("empty"));
        assert!(template(&at(), 1, "sum(rate(x[5m]))", true).is_err());
    }

    #[test]
    fn counter_selectors() {
        assert!(counter_selector(&at(), 1, "http_requests_total{code=~\"5..\"}").is_ok());
        assert!(counter_selector(&at(), 1, "rate(x[5m])").is_err());
        assert!(counter_selector(&at(), 1, "{__name__=\"x\"}").is_err());
        assert_eq!(
            with_matcher("x{a=\"b\"}", "le=\"0.3\""),
            "x{a=\"b\",le=\"0.3\"}"
        );
        assert_eq!(with_matcher("x", "le=\"0.3\""), "x{le=\"0.3\"}");
        assert_eq!(with_matcher("x{}", "le=\"0.3\""), "x{le=\"0.3\"}");
    }

    #[test]
    fn without_matcher_undoes_with_matcher() {
        for selector in ["x{a=\"b\"}", "x", "x{a=~\"/v2/.*\",c=\"d\"}"] {
            let with = with_matcher(selector, "le=\"0.3\"");
            assert_eq!(
                without_matcher(&with, "le=\"0.3\"").as_deref(),
                Some(selector)
            );
        }
        assert_eq!(without_matcher("x{a=\"b\"}", "le=\"0.3\""), None);
        assert_eq!(without_matcher("x{le=\"0.5\"}", "le=\"0.3\""), None);
    }

    #[test]
    fn finds_the_buckets_of_a_latency_sli() {
        let good = rate_of(&with_matcher("h_bucket{s=\"a\"}", "le=\"0.1\""));
        assert_eq!(
            latency_buckets(&good, 0.1).as_deref(),
            Some("h_bucket{s=\"a\"}")
        );
        assert_eq!(latency_buckets(&good, 0.2), None, "another threshold");
        let other = QueryTemplate::new_checked("sum(rate(h_bucket{le=\"0.1\"}[5m]))".into());
        assert_eq!(latency_buckets(&other, 0.1), None, "not a template");
    }

    #[test]
    fn finds_the_counter_of_a_rate_sum() {
        let q = QueryTemplate::new_checked(
            "sum(rate(http_total{service=\"a\",code=~\"5..\"}[{{.window}}]))".into(),
        );
        let c = summed_counter(&q).expect("simple");
        let labels = |code: &'static str| {
            move |l: &str| match l {
                "service" => Some("a"),
                "code" => Some(code),
                _ => None,
            }
        };
        assert!(c.matches("http_total", labels("503")));
        assert!(!c.matches("http_total", labels("200")));
        assert!(!c.matches("other", labels("503")));
        let complex = QueryTemplate::new_checked("sum by (x) (rate(a[{{.window}}]))".into());
        assert!(summed_counter(&complex).is_none());
    }
}
