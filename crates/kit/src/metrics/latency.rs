//! The request path's latency histograms, kept and rendered by kit.
//!
//! Why not the exporter's: its histogram handle stamps every sample with a
//! clock read behind a recency wrapper and buffers it until upkeep folds
//! the buffer into buckets: about 130 instructions a record, three records
//! a proxied request (issue 18), and a buffer that grows with the request
//! rate between upkeeps. Here a record is a scan of the bucket bounds
//! from the smallest and two relaxed atomic adds into counts of fixed
//! size.
//!
//! `/metrics` shows these families exactly as the exporter shows its own
//! (its formatting functions; a test renders the same samples both ways),
//! with the same bucket bounds, so dashboards, SLO rules and the console
//! read them unchanged. A family lives here or in the exporter, never in
//! both: [`LatencyFamily`]s are the request path's
//! (`http_server_request_duration_seconds`, the gateway's two), and
//! nothing records their names through the `metrics` macros.

use metrics::HistogramFn;
use metrics_exporter_prometheus::formatting::{
    sanitize_description, sanitize_label_key, sanitize_label_value,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A histogram family of durations in seconds, over
/// [`super::LATENCY_BUCKETS`].
#[derive(Clone, Copy, Debug)]
pub struct LatencyFamily {
    /// The metric's name, ending in `_seconds`.
    pub name: &'static str,
    /// Its `# HELP` text.
    pub help: &'static str,
}

/// The handle of one series of `family`, created on first use: keep it
/// rather than asking again per request (each call scans the family's
/// series under a lock).
pub fn latency_histogram(
    family: LatencyFamily,
    labels: &[(&'static str, &str)],
) -> metrics::Histogram {
    metrics::Histogram::from_arc(registry().series(family, labels))
}

/// Appends every family's text, as the exporter renders histograms.
pub(super) fn render_into(out: &mut String) {
    registry().render_into(out);
}

const BOUNDS: &[f64] = super::LATENCY_BUCKETS;

/// One series: a count per bucket (not cumulative; the last one above
/// every bound) and the sum.
struct Counts {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl HistogramFn for Counts {
    fn record(&self, seconds: f64) {
        // The first bound at or above the value (Prometheus' `le`), from
        // the smallest: most requests end in the first buckets, so this
        // is a comparison or two where a binary search is always five.
        // NaN is at or below no bound: counted in `+Inf` only, as the
        // exporter counts it.
        let bucket = BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Saturating: a negative or NaN duration adds nothing.
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Registry {
    families: Mutex<Vec<Family>>,
}

struct Family {
    kind: LatencyFamily,
    series: Vec<Series>,
}

struct Series {
    labels: Vec<(&'static str, String)>,
    counts: Arc<Counts>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    fn series(&self, kind: LatencyFamily, labels: &[(&'static str, &str)]) -> Arc<Counts> {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let index = match families.iter().position(|f| f.kind.name == kind.name) {
            Some(index) => index,
            None => {
                families.push(Family {
                    kind,
                    series: Vec::new(),
                });
                families.len() - 1
            }
        };
        let family = &mut families[index];
        let same = |series: &&Series| {
            series.labels.len() == labels.len()
                && series
                    .labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (key, value))| k == key && v == value)
        };
        if let Some(series) = family.series.iter().find(same) {
            return series.counts.clone();
        }
        let counts = Arc::new(Counts {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        });
        family.series.push(Series {
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            counts: counts.clone(),
        });
        counts
    }

    fn render_into(&self, out: &mut String) {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut order: Vec<&Family> = families.iter().collect();
        order.sort_by_key(|f| f.kind.name);
        for family in order {
            let name = family.kind.name;
            let _ = writeln!(
                out,
                "# HELP {name} {}\n# TYPE {name} histogram",
                sanitize_description(family.kind.help)
            );
            for series in &family.series {
                let labels: String = series
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{}=\"{}\",", sanitize_label_key(k), sanitize_label_value(v))
                    })
                    .collect();
                let mut count = 0u64;
                for (bound, bucket) in BOUNDS.iter().zip(&series.counts.buckets) {
                    count += bucket.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
                }
                count += series.counts.buckets[BOUNDS.len()].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
                let sum = series.counts.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                let labels = labels.trim_end_matches(',');
                let braces = |out: &mut String, suffix: &str, value: &dyn std::fmt::Display| {
                    let _ = if labels.is_empty() {
                        writeln!(out, "{name}_{suffix} {value}")
                    } else {
                        writeln!(out, "{name}_{suffix}{{{labels}}} {value}")
                    };
                };
                braces(out, "sum", &sum);
                braces(out, "count", &count);
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    const FAMILY: LatencyFamily = LatencyFamily {
        name: "test_request_duration_seconds",
        help: "Duration of test requests",
    };

    fn samples() -> [(&'static str, f64); 6] {
        // Sums exact in binary and in nanoseconds, so both sides print
        // the same digits.
        [
            ("/a", 0.0005),
            ("/a", 0.25),
            ("/a", 0.25),
            ("/a", 2.0),
            ("/a", 120.0),
            ("/b \"quoted\"\\", 0.5),
        ]
    }

    #[test]
    fn a_family_renders_as_the_exporter_renders_the_same_samples() {
        let registry = Registry::default();
        for (route, seconds) in samples() {
            registry
                .series(FAMILY, &[("http_route", route), ("status", "200")])
                .record(seconds);
        }
        let mut ours = String::new();
        registry.render_into(&mut ours);

        let recorder = PrometheusBuilder::new()
            .set_buckets(BOUNDS)
            .expect("buckets")
            .build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!(FAMILY.name, FAMILY.help);
            for (route, seconds) in samples() {
                metrics::histogram!(FAMILY.name, "http_route" => route, "status" => "200")
                    .record(seconds);
            }
        });
        let handle = recorder.handle();
        handle.run_upkeep();
        let theirs = handle.render();
        // The exporter orders a family's series by a hash map's order, so
        // the lines are compared as sets, and the family's header first.
        let sorted = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.sort_unstable();
            lines
        };
        assert_eq!(sorted(&ours), sorted(&theirs));
        let header = |text: &str| text.lines().take(2).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(header(&ours), header(&theirs));
        assert!(ours.contains(
            "test_request_duration_seconds_bucket{http_route=\"/a\",status=\"200\",le=\"0.25\"} 3\n"
        ));
        assert!(ours
            .contains("test_request_duration_seconds_count{http_route=\"/a\",status=\"200\"} 5\n"));
    }

    #[test]
    fn a_handle_asked_for_twice_is_one_series() {
        let registry = Registry::default();
        let labels = [("http_route", "/a")];
        registry.series(FAMILY, &labels).record(0.001);
        registry.series(FAMILY, &labels).record(0.001);
        registry
            .series(FAMILY, &[("http_route", "/b")])
            .record(0.001);
        let mut text = String::new();
        registry.render_into(&mut text);
        assert!(text.contains("test_request_duration_seconds_count{http_route=\"/a\"} 2\n"));
        assert!(text.contains("test_request_duration_seconds_count{http_route=\"/b\"} 1\n"));
        assert_eq!(text.matches("# TYPE").count(), 1);
    }

    #[test]
    fn a_value_on_a_bound_counts_in_that_bucket_and_nan_only_above_every_bound() {
        let registry = Registry::default();
        let counts = registry.series(FAMILY, &[]);
        counts.record(0.001);
        counts.record(-1.0);
        counts.record(f64::NAN);
        let mut text = String::new();
        registry.render_into(&mut text);
        assert!(text.contains("test_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("test_request_duration_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(text.contains("test_request_duration_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("test_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("test_request_duration_seconds_sum 0.001\n"));
        assert!(text.contains("test_request_duration_seconds_count 3\n"));
    }
}
