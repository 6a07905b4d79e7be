//! Reading threshold keys and expressions.

use super::*;

pub(super) fn parse_key(key: &str) -> Result<(Metric, Selector), ThresholdError> {
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

pub(super) fn parse_expression(
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

pub(super) fn parse_aggregate(metric: Metric, text: &str) -> Result<Aggregate, ThresholdError> {
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

pub(super) fn parse_value(kind: UnitKind, text: &str) -> Result<Bound, ThresholdError> {
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

pub(super) fn error(message: String) -> ThresholdError {
    ThresholdError(message)
}
