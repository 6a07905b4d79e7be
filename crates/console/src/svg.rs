//! Charts and the service graph, drawn server-side as inline SVG: no
//! script, no chart library, styled by the console's stylesheet (the CSP
//! forbids inline styles, so only classes and SVG attributes are used).

use crate::format;
use crate::sources::{EdgeKind, NodeKind, ServiceGraph};
use maud::{html, Markup};
use std::collections::HashMap;

const W: f64 = 600.0;
const H: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// A line chart of `(unix ms, value)`: one dot per point with a value
/// (with its time and value as a tooltip), the line broken where a point
/// has none. `target` draws a dashed reference line (the objective, or
/// zero budget left). `label` formats values.
pub fn line_chart(
    title: &str,
    points: &[(i64, Option<f64>)],
    target: Option<f64>,
    label: fn(Option<f64>) -> String,
) -> Markup {
    let values: Vec<f64> = points
        .iter()
        .filter_map(|(_, v)| v.filter(|v| v.is_finite()))
        .chain(target)
        .collect();
    if values.is_empty() {
        return html! { p.muted { (title) ": " (format::NO_DATA) } };
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if (hi - lo).abs() < 1e-9 {
        lo -= 0.001;
        hi += 0.001;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let t0 = points.first().map_or(0, |p| p.0);
    let t1 = points.last().map_or(0, |p| p.0).max(t0 + 1);
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    for (t, v) in points {
        match v.filter(|v| v.is_finite()) {
            Some(v) => current.push_str(&format!("{:.1},{:.1} ", x(*t), y(v))),
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) }
            line.axis x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) {}
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) {}
            text x="2" y=(TOP + 8.0) { (label(Some(hi))) }
            text x="2" y=(H - BOTTOM) { (label(Some(lo))) }
            text x=(LEFT) y=(H - 6.0) { (format::time_ms(t0)) }
            text x=(W - RIGHT) y=(H - 6.0) text-anchor="end" { (format::time_ms(t1)) }
            @if let Some(target) = target {
                line.target x1=(LEFT) y1=(format!("{:.1}", y(target))) x2=(W - RIGHT) y2=(format!("{:.1}", y(target))) {}
            }
            @for segment in &segments {
                polyline.line points=(segment.trim_end()) {}
            }
            @for (t, v) in points {
                @if let Some(v) = v.filter(|v| v.is_finite()) {
                    circle.pt cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(v))) r="2" {
                        title { (format::time_ms(*t)) ": " (label(Some(v))) }
                    }
                }
            }
        }
    }
}

/// Series a stacked chart colours apart (`series-0` to `series-7` in the
/// stylesheet); the rest are summed into one "other" series.
pub const SERIES_COLOURS: usize = 8;

/// A stacked bar chart: one bar per step starting at `starts_ms[i]`, of
/// `step_ms` each; one layer per series (`(name, value per step)`),
/// coloured `series-{index}` and listed in the legend under the chart
/// with its total. `label` formats values. `id` makes the title and
/// description addressable (`aria-labelledby`); unique on the page.
pub fn stacked_bars(
    id: &str,
    title: &str,
    desc: &str,
    starts_ms: &[i64],
    step_ms: i64,
    series: &[(String, Vec<f64>)],
    label: &dyn Fn(Option<f64>) -> String,
) -> Markup {
    let value = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let heights: Vec<f64> = (0..starts_ms.len())
        .map(|i| {
            series
                .iter()
                .map(|(_, vs)| value(vs.get(i).copied().unwrap_or(0.0)))
                .sum()
        })
        .collect();
    let top = heights.iter().copied().fold(0.0, f64::max);
    if starts_ms.is_empty() || top <= 0.0 {
        return html! { p.muted { (title) ": " (format::NO_DATA) } };
    }
    let left = 72.0;
    let plot = W - left - RIGHT;
    let slot = plot / starts_ms.len() as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: f64| TOP + (top - v) / top * (H - TOP - BOTTOM);
    let end_ms = starts_ms.last().map_or(0, |t| t + step_ms);
    let (title_id, desc_id) = (format!("{id}-title"), format!("{id}-desc"));
    let mut rects = Vec::new();
    for (i, start) in starts_ms.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bar) / 2.0;
        let mut base = 0.0;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = value(values.get(i).copied().unwrap_or(0.0));
            if v <= 0.0 {
                continue;
            }
            let (y0, y1) = (y(base), y(base + v));
            base += v;
            rects.push(Segment {
                class: format!("series-{}", k.min(SERIES_COLOURS - 1)),
                x,
                y: y1,
                // A crumb stays visible.
                height: (y0 - y1).max(0.5),
                tip: format!("{name}, {}: {}", format::time_ms(*start), label(Some(v))),
            });
        }
    }
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (title) }
            desc id=(desc_id) { (desc) }
            line.axis x1=(left) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) {}
            line.axis x1=(left) y1=(TOP) x2=(left) y2=(H - BOTTOM) {}
            line.grid x1=(left) y1=(format!("{:.1}", y(top / 2.0))) x2=(W - RIGHT) y2=(format!("{:.1}", y(top / 2.0))) {}
            text x="2" y=(TOP + 8.0) { (label(Some(top))) }
            text x="2" y=(format!("{:.1}", y(top / 2.0) + 4.0)) { (label(Some(top / 2.0))) }
            text x="2" y=(H - BOTTOM) { (label(Some(0.0))) }
            text x=(left) y=(H - 6.0) { (format::time_ms(starts_ms[0])) }
            text x=(W - RIGHT) y=(H - 6.0) text-anchor="end" { (format::time_ms(end_ms)) }
            @for r in &rects {
                rect class=(r.class) x=(format!("{:.1}", r.x)) y=(format!("{:.1}", r.y)) width=(format!("{bar:.1}")) height=(format!("{:.1}", r.height)) {
                    title { (r.tip) }
                }
            }
        }
        ul.legend {
            @for (k, (name, values)) in series.iter().enumerate() {
                li {
                    span class=(format!("swatch series-{}", k.min(SERIES_COLOURS - 1))) {}
                    " " (name) " " span.muted { (label(Some(values.iter().copied().map(value).sum()))) }
                }
            }
        }
    }
}

/// One layer of one bar.
struct Segment {
    class: String,
    x: f64,
    y: f64,
    height: f64,
    tip: String,
}

/// A spend bar against a monthly budget: the projected month as a bar
/// (`over` in the alert colour), the budget as a mark; the scale is the
/// larger of the two, so a key far over budget still fits.
pub fn budget_bar(
    projected: f64,
    budget: f64,
    over: bool,
    label: &dyn Fn(Option<f64>) -> String,
) -> Markup {
    const BW: f64 = 240.0;
    const BH: f64 = 16.0;
    let projected = if projected.is_finite() {
        projected.max(0.0)
    } else {
        0.0
    };
    let budget = if budget.is_finite() {
        budget.max(0.0)
    } else {
        0.0
    };
    let scale = projected.max(budget);
    let x = |v: f64| if scale > 0.0 { v / scale * BW } else { 0.0 };
    // The mark stays whole at either end.
    let mark = x(budget).clamp(1.0, BW - 1.0);
    let text = format!(
        "projected month {} of a {} budget",
        label(Some(projected)),
        label(Some(budget))
    );
    html! {
        svg.budget viewBox=(format!("0 0 {BW} {BH}")) role="img" aria-label=(text) {
            title { (text) }
            rect.budget-track x="0" y="2" width=(BW) height=(BH - 4.0) rx="3" {}
            rect class=(if over { "spend over" } else { "spend" }) x="0" y="2" width=(format!("{:.1}", x(projected))) height=(BH - 4.0) rx="3" {}
            line.budget-mark x1=(format!("{mark:.1}")) y1="0" x2=(format!("{mark:.1}")) y2=(BH) {}
        }
    }
}

const NODE_W: f64 = 130.0;
const NODE_H: f64 = 30.0;
const COL: f64 = 190.0;
const ROW: f64 = 56.0;

/// The service graph in columns: clients, then modules by their distance
/// from the clients over calls and events, then dependencies; edges are
/// labelled with their rate, events dashed, failing edges red.
pub fn service_graph(graph: &ServiceGraph) -> Markup {
    if graph.nodes.is_empty() {
        return html! { p.muted { "No service graph yet." } };
    }
    let kinds: HashMap<&str, NodeKind> = graph
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.kind))
        .collect();
    let mut layer: HashMap<&str, usize> = HashMap::new();
    for n in &graph.nodes {
        if n.kind == NodeKind::Client {
            layer.insert(&n.id, 0);
        }
    }
    // Longest-path layering, bounded by the node count (cycles stop it).
    for _ in 0..graph.nodes.len() {
        let mut changed = false;
        for e in graph
            .edges
            .iter()
            .filter(|e| e.kind != EdgeKind::Dependency)
        {
            let from = layer.get(e.from.as_str()).copied();
            if kinds.get(e.to.as_str()) != Some(&NodeKind::Module) {
                continue;
            }
            if let Some(from) = from {
                let to = layer.entry(&e.to).or_insert(0);
                if *to < from + 1 && from + 1 < graph.nodes.len() {
                    *to = from + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let module_max = graph
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Module)
        .map(|n| *layer.entry(&n.id).or_insert(1))
        .max()
        .unwrap_or(0);
    for n in graph
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dependency)
    {
        layer.insert(&n.id, module_max + 1);
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut at: HashMap<&str, (f64, f64)> = HashMap::new();
    for n in &graph.nodes {
        let col = layer.get(n.id.as_str()).copied().unwrap_or(1);
        let row = rows.entry(col).or_insert(0);
        at.insert(&n.id, (10.0 + col as f64 * COL, 10.0 + *row as f64 * ROW));
        *row += 1;
    }
    let width = 10.0 + (module_max + 2) as f64 * COL;
    let height = 20.0 + rows.values().copied().max().unwrap_or(1) as f64 * ROW;
    html! {
        svg viewBox=(format!("0 0 {width} {height}")) role="img" aria-label="service graph" {
            title { "Service graph" }
            @for e in &graph.edges {
                @if let (Some((x1, y1)), Some((x2, y2))) = (at.get(e.from.as_str()), at.get(e.to.as_str())) {
                    @let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2.0, *x2, y2 + NODE_H / 2.0);
                    @let class = edge_class(e.kind, e.error_ratio);
                    g {
                        line class=(class) x1=(x1) y1=(y1) x2=(x2) y2=(y2) {
                            title { (e.from) " → " (e.to) ": " (format::rate(e.rate)) ", errors " (format::percent(e.error_ratio)) }
                        }
                        @if e.rate.is_some() {
                            text x=(format!("{:.1}", (x1 + x2) / 2.0)) y=(format!("{:.1}", (y1 + y2) / 2.0 - 3.0)) text-anchor="middle" { (format::rate(e.rate)) }
                        }
                    }
                }
            }
            @for n in &graph.nodes {
                @if let Some((x, y)) = at.get(n.id.as_str()) {
                    g class=(format!("node {}", node_class(n.kind))) {
                        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="5" {}
                        text x=(x + NODE_W / 2.0) y=(y + 19.0) text-anchor="middle" { (n.id) }
                    }
                }
            }
        }
    }
}

fn edge_class(kind: EdgeKind, error_ratio: Option<f64>) -> &'static str {
    let failing = error_ratio.is_some_and(|r| r > 0.01);
    match (kind, failing) {
        (_, true) => "edge failing",
        (EdgeKind::Event, false) => "edge event",
        _ => "edge",
    }
}

fn node_class(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Client => "client",
        NodeKind::Module => "module",
        NodeKind::Dependency => "dependency",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dollars(v: Option<f64>) -> String {
        format::money(v, "USD")
    }

    #[test]
    fn a_chart_with_nothing_to_stack_says_no_data() {
        let zero = vec![("a".to_string(), vec![0.0, f64::NAN, -1.0])];
        let html = stacked_bars("c", "Cost", "d", &[0, 1, 2], 1, &zero, &dollars).into_string();
        assert_eq!(html, r#"<p class="muted">Cost: no data</p>"#);
        let html = stacked_bars("c", "Cost", "d", &[], 1, &[], &dollars).into_string();
        assert!(html.contains("no data"));
    }

    #[test]
    fn bars_scale_to_the_tallest_stack() {
        let series = vec![
            ("a".to_string(), vec![1.0, 3.0]),
            ("b".to_string(), vec![1.0, 0.0]),
        ];
        let html =
            stacked_bars("c", "Cost", "d", &[0, 60_000], 60_000, &series, &dollars).into_string();
        // Three segments (b spent nothing in the second step); the axis
        // tops at the tallest stack, $3.
        assert_eq!(html.matches("<rect").count(), 3);
        assert!(html.contains(">$3.00</text>"));
        assert!(html.contains(">$1.50</text>"));
        assert!(html.contains(r#"<title id="c-title">Cost</title><desc id="c-desc">d</desc>"#));
    }

    #[test]
    fn a_budget_bar_scales_to_the_larger_of_budget_and_spend() {
        let over = budget_bar(30.0, 10.0, true, &dollars).into_string();
        assert!(
            over.contains(r#"class="spend over" x="0" y="2" width="240.0""#),
            "{over}"
        );
        assert!(over.contains(r#"x1="80.0""#), "{over}");
        let under = budget_bar(5.0, 10.0, false, &dollars).into_string();
        assert!(
            under.contains(r#"class="spend" x="0" y="2" width="120.0""#),
            "{under}"
        );
        // The budget mark at the end stays whole.
        assert!(under.contains(r#"x1="239.0""#), "{under}");
        let nothing = budget_bar(0.0, 0.0, false, &dollars).into_string();
        assert!(!nothing.contains("NaN"));
    }
}
