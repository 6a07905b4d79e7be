//! Line charts as inline SVG, drawn in Rust so the HTML report needs no
//! script, font or library from anywhere: it renders offline, in a mail
//! attachment, in a CI artifact viewer, with JavaScript off.
//!
//! A [`Chart`] is axes plus lines in data coordinates; `svg()` maps them
//! into a fixed plot box. The x axis of the percentile plot is already
//! transformed by the caller (`-log10(1 - p)`), so only linear and log10
//! scales exist here.

use super::html::escape;
use std::fmt::Write;

pub const WIDTH: f64 = 1100.0;
pub const HEIGHT: f64 = 330.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 46.0;

/// Distinct colours for series, in order; a report with more series than
/// colours reuses them (the legend still names each line).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Values must be positive; smaller ones are drawn at the axis minimum.
    Log10,
}

#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub min: f64,
    pub max: f64,
    pub scale: Scale,
    /// (value, label) marks with grid lines.
    pub ticks: Vec<(f64, String)>,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    /// In data coordinates; a non-finite y breaks the line.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
}

impl Axis {
    /// A linear axis from `min` to a rounded-up `max` with about five
    /// labelled ticks.
    pub fn linear(label: &str, min: f64, max: f64, format: impl Fn(f64) -> String) -> Self {
        let max = if max > min { max } else { min + 1.0 };
        let step = nice_step((max - min) / 5.0);
        let top = (max / step).ceil() * step;
        // Multiples of the step, computed rather than accumulated, so a
        // label never reads 0.6000000001.
        let first = (min / step).ceil() as i64;
        let last = (top / step).round() as i64;
        let ticks = (first..=last)
            .map(|i| {
                let value = i as f64 * step;
                (value, format(value))
            })
            .collect();
        Self {
            label: label.to_string(),
            min,
            max: top,
            scale: Scale::Linear,
            ticks,
        }
    }

    /// A log10 axis over whole decades that hold `min..=max`, ticks at
    /// 1, 2 and 5 times each power of ten when there are few decades.
    pub fn log10(label: &str, min: f64, max: f64, format: impl Fn(f64) -> String) -> Self {
        let low = min.max(f64::MIN_POSITIVE).log10().floor();
        let high = max.max(min * 10.0).log10().ceil().max(low + 1.0);
        let multiples: &[f64] = if high - low <= 3.0 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut ticks = Vec::new();
        let mut decade = low;
        while decade <= high {
            for m in multiples {
                let value = m * 10f64.powf(decade);
                if value <= 10f64.powf(high) * (1.0 + 1e-9) {
                    ticks.push((value, format(value)));
                }
            }
            decade += 1.0;
        }
        Self {
            label: label.to_string(),
            min: 10f64.powf(low),
            max: 10f64.powf(high),
            scale: Scale::Log10,
            ticks,
        }
    }

    /// Where `value` falls, from 0 (min) to 1 (max), clamped.
    fn fraction(&self, value: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (value - self.min) / (self.max - self.min),
            Scale::Log10 => {
                let v = value.max(self.min);
                (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let mantissa = raw / power;
    let nice = if mantissa <= 1.0 {
        1.0
    } else if mantissa <= 2.0 {
        2.0
    } else if mantissa <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

impl Chart {
    pub fn svg(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + self.x.fraction(x) * plot_w;
        let py = |y: f64| TOP + (1.0 - self.y.fraction(y)) * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><title>{title}</title>"#,
            title = escape(&self.title),
        );
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
            escape(&self.title)
        );
        for (value, label) in &self.y.ticks {
            let y = py(*value);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                escape(label)
            );
        }
        for (value, label) in &self.x.ticks {
            let x = px(*value);
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>"#
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0,
            escape(&self.x.label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" class="axis" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y.label)
        );
        for line in &self.lines {
            let d = path(&line.points, px, py);
            if d.is_empty() {
                continue;
            }
            let _ = write!(
                svg,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2.5" stroke-linejoin="round"{}><title>{}</title></path>"#,
                line.color,
                if line.dashed {
                    r#" stroke-dasharray="7 4""#
                } else {
                    ""
                },
                escape(&line.label)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// `M x y L x y ...`; a non-finite point ends a segment, the next starts
/// a new one.
fn path(points: &[(f64, f64)], px: impl Fn(f64) -> f64, py: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for &(x, y) in points {
        if !(x.is_finite() && y.is_finite()) {
            pen_down = false;
            continue;
        }
        let _ = write!(
            d,
            "{}{:.1} {:.1}",
            if pen_down {
                " L"
            } else if d.is_empty() {
                "M"
            } else {
                " M"
            },
            px(x),
            py(y)
        );
        pen_down = true;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis_values(axis: &Axis) -> Vec<f64> {
        axis.ticks.iter().map(|(v, _)| *v).collect()
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_data() {
        let axis = Axis::linear("t", 0.0, 87.0, |v| format!("{v}"));
        assert_eq!(axis_values(&axis), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(axis.max, 100.0);
        let flat = Axis::linear("t", 0.0, 0.0, |v| format!("{v}"));
        assert!(flat.max > flat.min, "an empty range still has a height");
    }

    #[test]
    fn log_ticks_span_whole_decades() {
        let axis = Axis::log10("us", 300.0, 45_000.0, |v| format!("{v}"));
        assert_eq!(axis.min, 100.0);
        assert_eq!(axis.max, 100_000.0);
        assert_eq!(axis_values(&axis)[..3], [100.0, 200.0, 500.0]);
        assert!((axis.fraction(1_000.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            axis.fraction(1.0),
            0.0,
            "below the axis is drawn at its floor"
        );
    }

    #[test]
    fn paths_break_at_gaps_and_stay_in_the_box() {
        let d = path(
            &[(0.0, 0.0), (1.0, 1.0), (2.0, f64::NAN), (3.0, 0.5)],
            |x| x * 10.0,
            |y| 100.0 - y * 100.0,
        );
        assert_eq!(d, "M0.0 100.0 L10.0 0.0 M30.0 50.0");
        let chart = Chart {
            title: "a <b>".to_string(),
            x: Axis::linear("x", 0.0, 10.0, |v| format!("{v}")),
            y: Axis::linear("y", 0.0, 10.0, |v| format!("{v}")),
            lines: vec![Line {
                label: "l&r".to_string(),
                color: PALETTE[0],
                dashed: true,
                points: vec![(0.0, 0.0), (10.0, 20.0)],
            }],
        };
        let svg = chart.svg();
        assert!(
            svg.contains("a &lt;b&gt;") && svg.contains("l&amp;r"),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(
                "M{LEFT:.1} {:.1} L{:.1} {TOP:.1}",
                HEIGHT - BOTTOM,
                WIDTH - RIGHT
            )),
            "{svg}"
        );
        assert!(svg.contains("stroke-dasharray"));
    }
}
