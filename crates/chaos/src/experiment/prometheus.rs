//! Just enough of the Prometheus text format for `type: metric` probes:
//! the samples of one metric whose labels include the probe's, summed,
//! and a histogram's buckets for `histogram_quantile`.

use std::collections::BTreeMap;

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `text` (comments and malformed lines skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let space = line.find(char::is_whitespace)?;
            (&line[..space], BTreeMap::new(), &line[space..])
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Some(labels)
}

fn matches(sample: &Sample, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| sample.labels.get(k) == Some(v))
}

/// The sum of `name`'s samples with `want`'s labels; `None` if none.
pub fn sum(samples: &[Sample], name: &str, want: &BTreeMap<String, String>) -> Option<f64> {
    let mut found = false;
    let mut total = 0.0;
    for s in samples
        .iter()
        .filter(|s| s.name == name && matches(s, want))
    {
        found = true;
        total += s.value;
    }
    found.then_some(total)
}

/// Cumulative bucket counts of histogram `name` by upper bound, summed
/// over the series with `want`'s labels.
pub fn buckets(samples: &[Sample], name: &str, want: &BTreeMap<String, String>) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut by_le: Vec<(f64, f64)> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.name == bucket && matches(s, want))
    {
        let Some(le) = s.labels.get("le").and_then(|le| parse_le(le)) else {
            continue;
        };
        match by_le.iter_mut().find(|(b, _)| *b == le) {
            Some((_, count)) => *count += s.value,
            None => by_le.push((le, s.value)),
        }
    }
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_le
}

fn parse_le(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        t => t.parse().ok(),
    }
}

/// `buckets - earlier`, bound by bound (a histogram's observations since
/// an earlier scrape).
pub fn subtract(buckets: &[(f64, f64)], earlier: &[(f64, f64)]) -> Vec<(f64, f64)> {
    buckets
        .iter()
        .map(|(le, count)| {
            let before = earlier
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, (count - before).max(0.0))
        })
        .collect()
}

/// PromQL's `histogram_quantile` over cumulative buckets: linear
/// interpolation inside the bucket the rank falls in; the highest finite
/// bound if it falls in `+Inf`. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, count) in buckets {
        if *count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            if *count == below {
                return Some(*le);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below));
        }
        lower = *le;
        below = *count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x
# TYPE orders_created_total counter
orders_created_total 42
notifier_delivery_attempts_total{channel="webhook",outcome="ok"} 10
notifier_delivery_attempts_total{channel="webhook",outcome="error"} 3
notifier_delivery_attempts_total{channel="log",outcome="ok"} 5
d_bucket{route="/a",le="0.1"} 50
d_bucket{route="/a",le="0.2"} 90
d_bucket{route="/a",le="+Inf"} 100
d_bucket{route="/b",le="0.1"} 0
d_bucket{route="/b",le="0.2"} 0
d_bucket{route="/b",le="+Inf"} 0
"#;

    #[test]
    fn sums_the_series_with_the_labels_asked_for() {
        let s = samples(TEXT);
        let none = BTreeMap::new();
        assert_eq!(sum(&s, "orders_created_total", &none), Some(42.0));
        assert_eq!(
            sum(&s, "notifier_delivery_attempts_total", &none),
            Some(18.0)
        );
        let webhook = BTreeMap::from([("channel".to_string(), "webhook".to_string())]);
        assert_eq!(
            sum(&s, "notifier_delivery_attempts_total", &webhook),
            Some(13.0)
        );
        assert_eq!(sum(&s, "missing", &none), None);
    }

    #[test]
    fn histogram_quantile_interpolates_like_promql() {
        let s = samples(TEXT);
        let b = buckets(&s, "d", &BTreeMap::new());
        assert_eq!(b, vec![(0.1, 50.0), (0.2, 90.0), (f64::INFINITY, 100.0)]);
        assert_eq!(quantile(0.5, &b), Some(0.1));
        let p70 = quantile(0.7, &b).unwrap();
        assert!((p70 - 0.15).abs() < 1e-9, "{p70}");
        // In +Inf: the highest finite bound.
        assert_eq!(quantile(0.99, &b), Some(0.2));
        let since = subtract(&b, &[(0.1, 50.0), (0.2, 50.0), (f64::INFINITY, 50.0)]);
        let p50 = quantile(0.5, &since).unwrap();
        assert!((p50 - 0.1625).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(0.5, &subtract(&b, &b)), None);
    }

    #[test]
    fn label_values_may_hold_escapes_and_commas() {
        let s = samples("m{a=\"x,\\\"y\\\"\",b=\"2\"} 1.5\n");
        assert_eq!(s[0].labels["a"], "x,\"y\"");
        assert_eq!(s[0].value, 1.5);
    }
}
