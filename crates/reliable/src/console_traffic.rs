//! Request rate, error ratio and p99 per module over the last 5 minutes,
//! from samples of the process's own `/metrics` text.
//!
//! Why from the exposition text: it is what Prometheus would scrape, so
//! the console shows the numbers a dashboard would (the
//! `http_server_request_duration_seconds` histogram by `service`), with
//! no second set of counters to keep in step. Lines are read with
//! [`slo::exposition::parse_line`], the live SLO evaluator's parser.
//!
//! Memory: a sample is kept as an anchor when the previous anchor is at
//! least [`ANCHOR_SPACING_MS`] older, else it only replaces the newest
//! sample; anchors older than the window go. So at most 62 samples exist
//! whatever the tick (each a few KB: services x histogram buckets).

use slo::exposition::parse_line;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The window the rates cover.
pub const WINDOW_MS: i64 = 5 * 60_000;
/// Spacing of the kept samples.
pub const ANCHOR_SPACING_MS: i64 = 5_000;

const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
const DURATION_BUCKET: &str = "http_server_request_duration_seconds_bucket";
const EVENTS_PUBLISHED: &str = "orders_outbox_published_total";
const EVENTS_FAILED: &str = "orders_outbox_publish_errors_total";

/// One service's cumulative counters.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    total: f64,
    errors: f64,
    /// Cumulative bucket counts by upper bound. Keyed by the bound's bits:
    /// for non-negative floats (and +Inf) the bit patterns order as the
    /// numbers do.
    buckets: BTreeMap<u64, f64>,
}

/// The counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    at_ms: i64,
    services: HashMap<String, Counters>,
    events_published: f64,
    events_failed: f64,
}

impl Sample {
    fn parse(at_ms: i64, text: &str) -> Self {
        let mut sample = Sample {
            at_ms,
            ..Sample::default()
        };
        for line in text.lines() {
            let Some(s) = parse_line(line) else { continue };
            let label = |name: &str| {
                s.labels
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.as_str())
            };
            match s.name {
                DURATION_COUNT | DURATION_BUCKET => {
                    let Some(service) = label("service") else {
                        continue;
                    };
                    let counters = sample.services.entry(service.to_string()).or_default();
                    if s.name == DURATION_COUNT {
                        counters.total += s.value;
                        if label("http_response_status_code").is_some_and(|c| c.starts_with('5')) {
                            counters.errors += s.value;
                        }
                    } else if let Some(le) = label("le").and_then(parse_bound) {
                        *counters.buckets.entry(le.to_bits()).or_default() += s.value;
                    }
                }
                EVENTS_PUBLISHED => sample.events_published += s.value,
                EVENTS_FAILED => sample.events_failed += s.value,
                _ => {}
            }
        }
        sample
    }
}

fn parse_bound(le: &str) -> Option<f64> {
    let bound = match le {
        "+Inf" => f64::INFINITY,
        other => other.parse().ok()?,
    };
    (bound >= 0.0).then_some(bound)
}

/// A counter's increase; a reset (a restarted process) counts from zero.
fn increase(old: f64, new: f64) -> f64 {
    if new >= old {
        new - old
    } else {
        new
    }
}

/// A module's traffic over the window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traffic {
    /// Requests per second.
    pub rate: f64,
    /// Share answered 5xx; `None` without requests.
    pub error_ratio: Option<f64>,
    /// 99th percentile latency, seconds; `None` without requests.
    pub p99_seconds: Option<f64>,
}

/// The kept samples.
#[derive(Debug, Default)]
pub struct TrafficWindow {
    anchors: VecDeque<Sample>,
    newest: Option<Sample>,
}

impl TrafficWindow {
    /// Records the `/metrics` text sampled at `at_ms`.
    pub fn observe(&mut self, at_ms: i64, metrics: &str) {
        let sample = Sample::parse(at_ms, metrics);
        let spaced = self
            .anchors
            .back()
            .is_none_or(|a| at_ms - a.at_ms >= ANCHOR_SPACING_MS);
        if spaced {
            self.anchors.push_back(sample);
            self.newest = None;
        } else {
            self.newest = Some(sample);
        }
        while self
            .anchors
            .front()
            .is_some_and(|a| at_ms - a.at_ms > WINDOW_MS)
            && self.anchors.len() > 1
        {
            self.anchors.pop_front();
        }
    }

    /// The oldest and newest samples of the window; `None` before two.
    fn span(&self) -> Option<(&Sample, &Sample)> {
        let newest = self.newest.as_ref().or(self.anchors.back())?;
        let oldest = self.anchors.front()?;
        (newest.at_ms > oldest.at_ms).then_some((oldest, newest))
    }

    /// `service`'s traffic over the window; `None` before two samples.
    pub fn service(&self, service: &str) -> Option<Traffic> {
        let (old, new) = self.span()?;
        let seconds = (new.at_ms - old.at_ms) as f64 / 1000.0;
        let empty = Counters::default();
        let before = old.services.get(service).unwrap_or(&empty);
        let Some(after) = new.services.get(service) else {
            return Some(Traffic::default());
        };
        let total = increase(before.total, after.total);
        if total <= 0.0 {
            return Some(Traffic::default());
        }
        let buckets: Vec<(f64, f64)> = after
            .buckets
            .iter()
            .map(|(bits, count)| {
                let was = before.buckets.get(bits).copied().unwrap_or(0.0);
                (f64::from_bits(*bits), increase(was, *count))
            })
            .collect();
        Some(Traffic {
            rate: total / seconds,
            error_ratio: Some(increase(before.errors, after.errors) / total),
            p99_seconds: quantile(0.99, &buckets),
        })
    }

    /// Events published per second and the share that failed to publish.
    pub fn events(&self) -> Option<(f64, Option<f64>)> {
        let (old, new) = self.span()?;
        let seconds = (new.at_ms - old.at_ms) as f64 / 1000.0;
        let published = increase(old.events_published, new.events_published);
        let failed = increase(old.events_failed, new.events_failed);
        let attempts = published + failed;
        Some((
            published / seconds,
            (attempts > 0.0).then(|| failed / attempts),
        ))
    }
}

/// `histogram_quantile` over cumulative `(upper bound, count)` buckets in
/// bound order: linear within the bucket the rank falls in; the highest
/// finite bound when it falls in `+Inf`.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ok` 2xx and `failed` 5xx requests of `service`, all 2xx within
    /// 50 ms and all 5xx between 0.5 and 1 s.
    fn metrics(service: &str, ok: u64, failed: u64) -> String {
        let total = ok + failed;
        format!(
            "# TYPE http_server_request_duration_seconds histogram\n\
             http_server_request_duration_seconds_count{{service=\"{service}\",http_response_status_code=\"200\"}} {ok}\n\
             http_server_request_duration_seconds_count{{service=\"{service}\",http_response_status_code=\"503\"}} {failed}\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"200\",le=\"0.05\"}} {ok}\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"200\",le=\"1\"}} {ok}\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"200\",le=\"+Inf\"}} {ok}\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"503\",le=\"0.05\"}} 0\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"503\",le=\"1\"}} {failed}\n\
             http_server_request_duration_seconds_bucket{{service=\"{service}\",http_response_status_code=\"503\",le=\"+Inf\"}} {failed}\n\
             orders_outbox_published_total {total}\n"
        )
    }

    #[test]
    fn rates_errors_and_p99_come_from_the_increase_over_the_window() {
        let mut window = TrafficWindow::default();
        window.observe(0, &metrics("shortener", 1000, 0));
        assert_eq!(window.service("shortener"), None, "one sample is no rate");
        // 10 s later: 980 more fast answers and 20 slow errors.
        window.observe(10_000, &metrics("shortener", 1980, 20));
        let traffic = window.service("shortener").expect("two samples");
        assert!((traffic.rate - 100.0).abs() < 1e-9, "{traffic:?}");
        assert_eq!(traffic.error_ratio, Some(0.02));
        // Rank 990 of 1000: 10 into the 20 between 0.05 and 1 s.
        let p99 = traffic.p99_seconds.expect("p99");
        assert!((p99 - 0.525).abs() < 1e-9, "{p99}");
        let (events, failed) = window.events().expect("events");
        assert!((events - 100.0).abs() < 1e-9);
        assert_eq!(failed, Some(0.0));
        assert_eq!(window.service("orders"), Some(Traffic::default()));
    }

    #[test]
    fn samples_stay_bounded_and_cover_five_minutes_at_any_tick() {
        let mut window = TrafficWindow::default();
        let tick = 200;
        for i in 0..20_000 {
            window.observe(i * tick, &metrics("gateway", i as u64, 0));
        }
        assert!(window.anchors.len() <= 62, "{}", window.anchors.len());
        let (old, new) = window.span().expect("span");
        assert!(new.at_ms - old.at_ms <= WINDOW_MS + ANCHOR_SPACING_MS);
        assert!(new.at_ms - old.at_ms >= WINDOW_MS - ANCHOR_SPACING_MS);
        // One request per 200 ms tick: 5 per second.
        let rate = window.service("gateway").expect("rate").rate;
        assert!((rate - 5.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_counter_reset_is_not_a_negative_rate_and_infinity_caps_at_the_top_bound() {
        let mut window = TrafficWindow::default();
        window.observe(0, &metrics("notifier", 500, 0));
        window.observe(10_000, &metrics("notifier", 100, 0));
        let traffic = window.service("notifier").expect("rate");
        assert!((traffic.rate - 10.0).abs() < 1e-9);
        assert_eq!(
            quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }
}
