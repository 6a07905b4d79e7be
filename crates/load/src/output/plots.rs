//! The report's four charts, built from the results: latency over time
//! (p50 dashed, p99 solid), requests per second, errors per second, and
//! the latency-percentile plot in HdrHistogram's style, whose x axis
//! stretches the tail (`-log10(1 - p)`: 0, 90%, 99%, 99.9%, ...) so the
//! p99.9 gets as much room as the median.
//!
//! Each (scenario, request name) keeps one colour in every chart; the
//! legend is HTML beside the charts ([`Legend`]).

use super::chart::{Axis, Chart, Line, PALETTE};
use super::units::{self, Micros};
use crate::results::{Results, Series};
use hdrhistogram::Histogram;

/// Above this ratio between the slowest and the fastest value, latency
/// axes switch to log10, so a few 5 s timeouts do not flatten the rest.
const LOG_SCALE_RATIO: f64 = 100.0;

/// The percentile plot's x axis ends at most at 99.9999%.
const MAX_NINES: f64 = 6.0;

/// (scenario, name) -> colour, in the order the results list them.
#[derive(Debug, Clone, Default)]
pub struct Legend {
    pub entries: Vec<(String, String, &'static str)>,
}

impl Legend {
    pub fn of(results: &Results) -> Self {
        let mut legend = Legend::default();
        let names = results
            .scenarios
            .iter()
            .flat_map(|s| s.requests.iter().map(move |(name, _)| (&s.name, name)))
            .chain(results.series.iter().map(|s| (&s.scenario, &s.name)));
        for (scenario, name) in names {
            if legend.color(scenario, name).is_none() {
                let color = PALETTE[legend.entries.len() % PALETTE.len()];
                legend.entries.push((scenario.clone(), name.clone(), color));
            }
        }
        legend
    }

    pub fn color(&self, scenario: &str, name: &str) -> Option<&'static str> {
        self.entries
            .iter()
            .find(|(s, n, _)| s == scenario && n == name)
            .map(|(_, _, color)| *color)
    }
}

fn label(scenario: &str, name: &str) -> String {
    format!("{scenario} / {name}")
}

fn time_label(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    if whole < 60 {
        format!("{whole}s")
    } else if whole.is_multiple_of(60) {
        format!("{}m", whole / 60)
    } else {
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn micros_label(value: f64) -> String {
    Micros(value.round().max(0.0) as u64).to_string()
}

fn time_axis(results: &Results) -> Axis {
    let last = results
        .series
        .iter()
        .filter_map(|s| s.points.last().map(|p| p.t))
        .fold(results.elapsed.as_secs_f64(), f64::max);
    Axis::linear(
        "seconds since the load phase started",
        0.0,
        last,
        time_label,
    )
}

/// Linear from 0, or log10 when the values span more than
/// [`LOG_SCALE_RATIO`].
fn latency_axis(label: &str, values: impl Iterator<Item = f64>) -> Axis {
    let (low, high) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if high > 0.0 && high / low > LOG_SCALE_RATIO {
        Axis::log10(&format!("{label} (log scale)"), low, high, micros_label)
    } else {
        Axis::linear(label, 0.0, high.max(1.0), micros_label)
    }
}

fn series_line(
    legend: &Legend,
    series: &Series,
    suffix: &str,
    dashed: bool,
    value: impl Fn(&crate::results::Point) -> f64,
) -> Line {
    Line {
        label: format!("{} {suffix}", label(&series.scenario, &series.name)),
        color: legend
            .color(&series.scenario, &series.name)
            .unwrap_or(PALETTE[0]),
        dashed,
        points: series.points.iter().map(|p| (p.t, value(p))).collect(),
    }
}

/// A second in which nothing completed has no latency: the line breaks
/// there instead of dropping to a flattering 0.
fn measured(point: &crate::results::Point, us: u64) -> f64 {
    if point.completed == 0 {
        f64::NAN
    } else {
        us as f64
    }
}

pub fn latency_over_time(results: &Results, legend: &Legend) -> Chart {
    let mut lines = Vec::new();
    for series in &results.series {
        lines.push(series_line(legend, series, "p99", false, |p| {
            measured(p, p.p99_us)
        }));
        lines.push(series_line(legend, series, "p50", true, |p| {
            measured(p, p.p50_us)
        }));
    }
    let values = results
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .flat_map(|p| [p.p50_us as f64, p.p99_us as f64]);
    Chart {
        title: "Latency over time: p99 solid, p50 dashed".to_string(),
        x: time_axis(results),
        y: latency_axis("latency", values),
        lines,
    }
}

/// Per second of the bucket, so coarsened buckets (width 2, 4, ...) are
/// not drawn as bursts.
fn per_second(count: u64, width: f64) -> f64 {
    if width > 0.0 {
        count as f64 / width
    } else {
        count as f64
    }
}

pub fn rate_over_time(results: &Results, legend: &Legend) -> Chart {
    let lines: Vec<Line> = results
        .series
        .iter()
        .map(|s| {
            series_line(legend, s, "completed/s", false, |p| {
                per_second(p.completed, p.width)
            })
        })
        .collect();
    let high = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    Chart {
        title: "Requests completed per second".to_string(),
        x: time_axis(results),
        y: Axis::linear("requests/s", 0.0, high, units::number),
        lines,
    }
}

pub fn errors_over_time(results: &Results, legend: &Legend) -> Chart {
    let mut lines = Vec::new();
    for series in &results.series {
        lines.push(series_line(legend, series, "errors/s", false, |p| {
            per_second(p.errors, p.width)
        }));
        if series.points.iter().any(|p| p.check_failures > 0) {
            lines.push(series_line(legend, series, "failed checks/s", true, |p| {
                per_second(p.check_failures, p.width)
            }));
        }
    }
    let high = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    Chart {
        title: "Errors per second (solid), failed checks per second (dashed)".to_string(),
        x: time_axis(results),
        y: Axis::linear("per second", 0.0, high, units::number),
        lines,
    }
}

/// `0%`, `90%`, `99%`, `99.9%` for 0, 1, 2, 3 nines.
fn nines_label(nines: f64) -> String {
    let n = nines.round() as usize;
    match n {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        _ => format!("99.{}%", "9".repeat(n - 2)),
    }
}

/// The histogram as (nines, latency us) points: `nines = -log10(1 - p)`.
/// The maximum sits at the resolution the sample count allows
/// (`log10(count)`), since p = 1 has no finite place on the axis.
pub fn percentile_curve(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let limit = (histogram.len() as f64).log10().clamp(1.0, MAX_NINES);
    let mut points = vec![(0.0, histogram.min() as f64)];
    for step in histogram.iter_quantiles(5) {
        let quantile = step.quantile_iterated_to();
        if quantile >= 1.0 {
            break;
        }
        let nines = -(1.0 - quantile).log10();
        if nines > limit {
            break;
        }
        points.push((nines, step.value_iterated_to() as f64));
    }
    points.push((limit, histogram.max() as f64));
    points
}

pub fn latency_by_percentile(results: &Results, legend: &Legend) -> Chart {
    let mut lines = Vec::new();
    for scenario in &results.scenarios {
        for (name, stats) in &scenario.requests {
            let points = percentile_curve(&stats.latency);
            if points.is_empty() {
                continue;
            }
            lines.push(Line {
                label: label(&scenario.name, name),
                color: legend.color(&scenario.name, name).unwrap_or(PALETTE[0]),
                dashed: false,
                points,
            });
        }
    }
    let nines = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(2.0, f64::max)
        .ceil()
        .min(MAX_NINES);
    let values: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .collect();
    let mut x = Axis::linear("percentile", 0.0, nines, nines_label);
    x.ticks = (0..=nines as usize)
        .map(|n| (n as f64, nines_label(n as f64)))
        .collect();
    x.max = nines;
    Chart {
        title: "Latency by percentile (whole run, HdrHistogram style)".to_string(),
        x,
        y: latency_axis("latency", values.into_iter()),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::results::{new_histogram, record};
    use std::time::Duration;

    #[test]
    fn nines_read_as_percentiles() {
        let labels: Vec<String> = (0..5).map(|n| nines_label(n as f64)).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn the_percentile_curve_climbs_to_the_maximum() {
        let mut histogram = new_histogram();
        for ms in 1..=1_000 {
            record(&mut histogram, Duration::from_millis(ms));
        }
        let curve = percentile_curve(&histogram);
        assert!(curve.len() > 10, "{curve:?}");
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let (x, y) = curve[curve.len() - 1];
        assert_eq!(x, 3.0, "1,000 samples resolve to 99.9%");
        assert_eq!(y, histogram.max() as f64);
        // Near p90 the latency is near 900 ms.
        let p90 = curve
            .iter()
            .find(|(x, _)| *x >= 1.0)
            .map(|p| p.1)
            .unwrap_or(0.0);
        assert!((850_000.0..950_000.0).contains(&p90), "{p90}");
        assert!(percentile_curve(&new_histogram()).is_empty());
    }

    #[test]
    fn one_colour_per_scenario_and_name_in_every_chart() {
        let results = fixture::results();
        let legend = Legend::of(&results);
        assert_eq!(legend.entries.len(), 3);
        let redirect = legend.color("baseline", "redirect");
        assert_eq!(redirect, Some(PALETTE[1]));
        let latency = latency_over_time(&results, &legend);
        assert_eq!(latency.lines.len(), 6);
        assert!(latency.lines[2].label.ends_with("p99") && latency.lines[2].color == PALETTE[1]);
        let percentiles = latency_by_percentile(&results, &legend);
        assert_eq!(percentiles.lines.len(), 3);
        assert_eq!(percentiles.lines[1].color, PALETTE[1]);
        assert!(percentiles.x.ticks.len() >= 4, "{:?}", percentiles.x.ticks);
    }

    #[test]
    fn a_second_without_answers_breaks_the_latency_line() {
        let mut results = fixture::results();
        results.series[0].points[5].completed = 0;
        results.series[0].points[5].p99_us = 0;
        let legend = Legend::of(&results);
        let chart = latency_over_time(&results, &legend);
        assert!(chart.lines[0].points[5].1.is_nan());
        assert!(
            chart.svg().contains(" M"),
            "the path restarts after the gap"
        );
    }

    #[test]
    fn timeouts_switch_latency_axes_to_log() {
        let results = fixture::results();
        let legend = Legend::of(&results);
        // The redirect's 5 s timeouts against ~1 ms medians.
        let percentiles = latency_by_percentile(&results, &legend);
        assert_eq!(percentiles.y.scale, super::super::chart::Scale::Log10);
        // Per-second p99 stays within 100x of the p50s: linear.
        let latency = latency_over_time(&results, &legend);
        assert_eq!(latency.y.scale, super::super::chart::Scale::Linear);
        let rate = rate_over_time(&results, &legend);
        assert!(rate.y.max >= 22.0);
    }
}
