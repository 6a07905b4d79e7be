//! Grafana panel JSON: targets, thresholds, the grid, and the two panel
//! types the dashboards use (time series and stat). Every panel and every
//! target reads through the `$datasource` variable, never a fixed uid, so
//! a dashboard works against whichever Prometheus Grafana calls it.

use super::DATASOURCE_VARIABLE;
use crate::number;
use serde_json::{json, Value};

/// Grid: Grafana's 24 columns; every panel row is this high.
pub(super) const WIDTH: u64 = 24;
pub(super) const HEIGHT: u64 = 8;

/// What a panel shows; titles start with [`PanelKind::title`], which is
/// how tests (and readers) find them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    Sli,
    BudgetRemaining,
    BudgetHistory,
    BurnRate,
    Latency,
}

impl PanelKind {
    pub fn title(self) -> &'static str {
        match self {
            Self::Sli => "SLI",
            Self::BudgetRemaining => "Error budget remaining",
            Self::BudgetHistory => "Error budget remaining over time",
            Self::BurnRate => "Burn rate",
            Self::Latency => "Latency quantiles",
        }
    }
}

/// A number as the rules print it (`14.4`, not `14.400000000000002`).
fn rounded(x: f64) -> f64 {
    number(x).parse().unwrap_or(x)
}

pub(super) fn datasource() -> Value {
    json!({"type": "prometheus", "uid": format!("${{{DATASOURCE_VARIABLE}}}")})
}

fn target(ref_id: char, expr: String, legend: &str) -> Value {
    json!({
        "refId": ref_id.to_string(),
        "datasource": datasource(),
        "expr": expr,
        "legendFormat": legend,
        "range": true,
    })
}

fn targets(queries: Vec<(String, String)>) -> Vec<Value> {
    queries
        .into_iter()
        .zip('A'..='Z')
        .map(|((expr, legend), ref_id)| target(ref_id, expr, &legend))
        .collect()
}

/// Threshold steps: `base` below the first value, then each colour from its value.
pub(super) fn thresholds(base: &str, steps: &[(f64, &str)]) -> Value {
    let mut list = vec![json!({"color": base, "value": null})];
    list.extend(
        steps
            .iter()
            .map(|(value, color)| json!({"color": color, "value": rounded(*value)})),
    );
    json!({"mode": "absolute", "steps": list})
}

pub(super) struct Grid {
    pub(super) next_id: u64,
    /// The top of the next panel row.
    pub(super) y: u64,
}

impl Grid {
    pub(super) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn pos(&self, x: u64, w: u64, h: u64) -> Value {
        json!({"h": h, "w": w, "x": x, "y": self.y})
    }
}

pub(super) struct Panel {
    pub(super) kind: PanelKind,
    /// Appended to the kind's title.
    pub(super) title_suffix: String,
    pub(super) description: String,
    pub(super) unit: &'static str,
    pub(super) thresholds: Value,
    /// (expression, legend), one target each.
    pub(super) queries: Vec<(String, String)>,
}

impl Panel {
    pub(super) fn timeseries(self, grid: &mut Grid, x: u64, w: u64) -> Value {
        json!({
            "id": grid.id(),
            "type": "timeseries",
            "title": format!("{}{}", self.kind.title(), self.title_suffix),
            "description": self.description,
            "datasource": datasource(),
            "gridPos": grid.pos(x, w, HEIGHT),
            "fieldConfig": {
                "defaults": {
                    "unit": self.unit,
                    "color": {"mode": "palette-classic"},
                    "thresholds": self.thresholds,
                    "custom": {"thresholdsStyle": {"mode": "dashed"}},
                },
                "overrides": [],
            },
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "none"},
            },
            "targets": targets(self.queries),
        })
    }

    pub(super) fn stat(self, grid: &mut Grid, x: u64, w: u64) -> Value {
        json!({
            "id": grid.id(),
            "type": "stat",
            "title": format!("{}{}", self.kind.title(), self.title_suffix),
            "description": self.description,
            "datasource": datasource(),
            "gridPos": grid.pos(x, w, HEIGHT),
            "fieldConfig": {
                "defaults": {"unit": self.unit, "decimals": 1, "thresholds": self.thresholds},
                "overrides": [],
            },
            "options": {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                "colorMode": "background",
                "graphMode": "area",
                "textMode": "value",
                "justifyMode": "auto",
                "orientation": "auto",
            },
            "targets": targets(self.queries),
        })
    }
}
