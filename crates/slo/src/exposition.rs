//! Reading SLI event counters out of Prometheus text exposition.
//!
//! The live evaluator has no Prometheus: it reads the platform's own
//! `/metrics` text and sums, per SLO, the counters its queries select. It
//! can follow queries of the shape `sum(rate(selector[w]))` (which is what
//! OpenSLO counters and latency SLIs become, and what Sloth specs usually
//! are); the [`Sampler`] reports the others as not evaluable locally.

use crate::model::{ErrorEvents, Sli, Slo};
use crate::promql::{summed_counter, CounterSeries};
use std::collections::HashMap;

/// One `name{labels} value` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// Parses one exposition line; comments, blanks and garbage give `None`.
pub fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            while chars
                .peek()
                .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
            {
                chars.next();
            }
            let (start, c) = chars.next()?;
            if c == '}' {
                end = start + 1;
                break;
            }
            let eq = body[start..].find('=')? + start;
            let key = body[start..eq].trim();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.push((key, value));
        }
        rest = &body[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Cumulative SLI event counters of one SLO at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventCounts {
    pub errors: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Bad,
    Good,
    Total,
}

/// (SLO index, role, selector index).
type Entry = (usize, Role, usize);

/// The selectors of one metric name: those with an equality matcher are
/// indexed by (label, value), so a line is checked against the few
/// selectors that can match it, not against every SLO on the same metric
/// (1,000 SLOs on `http_server_request_duration_seconds_count` would
/// otherwise cost 1,000 matcher checks per line).
#[derive(Debug, Default)]
struct ByName {
    by_label: HashMap<(String, String), Vec<Entry>>,
    /// Labels used as index keys under this name.
    index_labels: Vec<String>,
    unindexed: Vec<Entry>,
}

/// Which counters belong to which SLO, indexed by metric name.
#[derive(Debug, Default)]
pub struct Sampler {
    by_name: HashMap<String, ByName>,
    selectors: Vec<CounterSeries>,
    good_based: Vec<bool>,
    /// Latency SLIs: a missing bucket is no data, not 100% slow (see
    /// `rules::error_events`).
    needs_good: Vec<bool>,
    slos: usize,
}

impl Sampler {
    /// Indexes the SLOs; returns it and the ids of SLOs it cannot follow.
    pub fn new(slos: &[Slo]) -> (Self, Vec<String>) {
        let mut sampler = Sampler {
            slos: slos.len(),
            ..Sampler::default()
        };
        let mut skipped = Vec::new();
        for (i, slo) in slos.iter().enumerate() {
            let (errors, good_based, total) = match &slo.sli {
                Sli::Events {
                    errors: ErrorEvents::Bad(b),
                    total,
                    ..
                } => (summed_counter(b), false, summed_counter(total)),
                Sli::Events {
                    errors: ErrorEvents::Good(g),
                    total,
                    ..
                } => (summed_counter(g), true, summed_counter(total)),
                Sli::Raw { .. } => (None, false, None),
            };
            sampler.good_based.push(good_based);
            sampler.needs_good.push(matches!(
                slo.sli,
                Sli::Events {
                    latency_threshold: Some(_),
                    ..
                }
            ));
            let (Some(errors), Some(total)) = (errors, total) else {
                skipped.push(slo.id());
                continue;
            };
            if errors.name.is_none() || total.name.is_none() {
                skipped.push(slo.id());
                continue;
            }
            let role = if good_based { Role::Good } else { Role::Bad };
            for (selector, role) in [(errors, role), (total, Role::Total)] {
                let name = selector.name.clone().unwrap_or_default();
                let entry = (i, role, sampler.selectors.len());
                let group = sampler.by_name.entry(name).or_default();
                let key = selector.matchers.iter().find(|m| {
                    m.name != "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal)
                });
                match key {
                    Some(m) if selector.or_matchers.is_empty() => {
                        if !group.index_labels.contains(&m.name) {
                            group.index_labels.push(m.name.clone());
                        }
                        group
                            .by_label
                            .entry((m.name.clone(), m.value.clone()))
                            .or_default()
                            .push(entry);
                    }
                    _ => group.unindexed.push(entry),
                }
                sampler.selectors.push(selector);
            }
        }
        (sampler, skipped)
    }

    /// Sums each SLO's counters in `text`; `None` where its total counter
    /// has no series (no data, which is not zero traffic).
    pub fn sample(&self, text: &str) -> Vec<Option<EventCounts>> {
        // (errors-or-good sum, total sum, total seen, errors-or-good seen)
        let mut acc = vec![(0.0, 0.0, false, false); self.slos];
        for line in text.lines() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let Some(group) = self.by_name.get(&line[..name_end]) else {
                continue;
            };
            let Some(sample) = parse_line(line) else {
                continue;
            };
            let get = |l: &str| {
                sample
                    .labels
                    .iter()
                    .find(|(k, _)| *k == l)
                    .map(|(_, v)| v.as_str())
            };
            let mut key = (String::new(), String::new());
            let indexed = group.index_labels.iter().flat_map(|label| {
                key = (label.clone(), get(label).unwrap_or("").to_string());
                group
                    .by_label
                    .get(&key)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
            });
            let candidates: Vec<Entry> = indexed.chain(&group.unindexed).copied().collect();
            for (slo, role, sel) in candidates {
                if !self.selectors[sel].matches(sample.name, get) {
                    continue;
                }
                let a = &mut acc[slo];
                match role {
                    Role::Bad | Role::Good => {
                        a.0 += sample.value;
                        a.3 = true;
                    }
                    Role::Total => {
                        a.1 += sample.value;
                        a.2 = true;
                    }
                }
            }
        }
        acc.iter()
            .zip(self.good_based.iter().zip(&self.needs_good))
            .map(|(&(e, total, seen, e_seen), (&good_based, &needs_good))| {
                (seen && (e_seen || !needs_good)).then(|| EventCounts {
                    errors: if good_based { (total - e).max(0.0) } else { e },
                    total,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition_lines() {
        let s = parse_line(r#"http_total{service="a",route="/{slug}",q="x\"y"} 12 1700000000"#)
            .expect("sample");
        assert_eq!(s.name, "http_total");
        assert_eq!(
            s.labels,
            vec![
                ("service", "a".into()),
                ("route", "/{slug}".into()),
                ("q", "x\"y".into())
            ]
        );
        assert_eq!(s.value, 12.0);
        assert_eq!(parse_line("up 1").map(|s| s.value), Some(1.0));
        assert_eq!(
            parse_line("x_bucket{le=\"+Inf\"} +Inf").map(|s| s.value),
            Some(f64::INFINITY)
        );
        assert!(parse_line("# TYPE x counter").is_none());
        assert!(parse_line("broken{a=\"b\" 1").is_none());
    }

    #[test]
    fn a_latency_threshold_without_its_bucket_is_no_data() {
        let text = "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: fast}\nspec:\n  service: s\n  indicator:\n    spec:\n      thresholdMetric:\n        metricSource: {type: Prometheus, spec: {query: 'd_bucket{service=\"s\"}'}}\n  timeWindow: [{duration: 30d, isRolling: true}]\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.99, op: lte, value: 0.3}]\n";
        let slos = crate::catalog::load_texts(&[("t.yaml".into(), text.into())]).expect("valid");
        let (sampler, skipped) = Sampler::new(&slos);
        assert!(skipped.is_empty());
        let with = "d_bucket{service=\"s\",le=\"0.3\"} 90\nd_bucket{service=\"s\",le=\"+Inf\"} 100\nd_count{service=\"s\"} 100\n";
        assert_eq!(
            sampler.sample(with)[0],
            Some(EventCounts {
                errors: 10.0,
                total: 100.0
            })
        );
        let without = "d_bucket{service=\"s\",le=\"0.25\"} 90\nd_count{service=\"s\"} 100\n";
        assert_eq!(sampler.sample(without)[0], None);
    }

    #[test]
    fn sums_the_counters_of_each_slo() {
        let text = "version: prometheus/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(req_total{code=~\"5..\"}[{{.window}}]))\n        total_query: sum(rate(req_total[{{.window}}]))\n  - name: raw\n    objective: 99\n    sli:\n      raw:\n        error_ratio_query: x[{{.window}}]\n";
        let slos = crate::catalog::load_texts(&[("t.yaml".into(), text.into())]).expect("valid");
        let (sampler, skipped) = Sampler::new(&slos);
        assert_eq!(skipped, vec!["s-raw".to_string()]);
        let counts =
            sampler.sample("req_total{code=\"200\"} 90\nreq_total{code=\"503\"} 10\nother 5\n");
        assert_eq!(
            counts[0],
            Some(EventCounts {
                errors: 10.0,
                total: 100.0
            })
        );
        assert_eq!(counts[1], None);
        assert_eq!(sampler.sample("other 1\n")[0], None);
        assert_eq!(
            sampler.sample("req_total{code=\"200\"} 5\n")[0],
            Some(EventCounts {
                errors: 0.0,
                total: 5.0
            })
        );
    }
}
