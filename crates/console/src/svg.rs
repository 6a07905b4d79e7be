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
