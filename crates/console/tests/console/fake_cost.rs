//! A cost source with fixed figures, recording what it was asked.

use async_trait::async_trait;
use console::sources::{
    CostLine, CostQuery, CostReport, CostSource, CostStep, KeySpend, SourceError,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::support::XSS;

/// What the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostData {
    /// The figures below.
    Measured,
    /// A source that has measured nothing yet.
    Empty,
    /// A source that cannot answer.
    Failing,
}

pub struct FakeCost {
    pub data: CostData,
    pub asked: Mutex<Vec<CostQuery>>,
}

impl FakeCost {
    pub fn new(data: CostData) -> Self {
        Self {
            data,
            asked: Mutex::new(Vec::new()),
        }
    }
}

fn line(name: &str, module: &str, cost: f64, requests: u64) -> CostLine {
    CostLine {
        name: name.into(),
        module: module.into(),
        cost,
        requests,
    }
}

/// Per module: (cost, requests). The shortener's redirects cost $0.0004
/// per 1,000; idle is $1.50; the total $10.02.
pub const MODULES: [(&str, f64, u64); 4] = [
    ("llm", 5.0, 300),
    ("inference", 3.0, 2_000),
    ("gateway", 0.5, 52_000),
    ("shortener", 0.02, 50_000),
];
pub const IDLE: f64 = 1.5;
pub const TOTAL: f64 = 10.02;
/// Routes the fake reports (the page lists the top 10).
pub const ROUTES: usize = 12;

fn measured(query: &CostQuery) -> CostReport {
    let step_ms = query.step.as_millis() as i64;
    let start_ms = query.start.timestamp_millis();
    let steps = ((query.end.timestamp_millis() - start_ms) / step_ms.max(1)) as usize;
    // Each module spends its total evenly over the steps; sent newest
    // first (the page sorts).
    let steps: Vec<CostStep> = (0..steps)
        .rev()
        .map(|i| CostStep {
            start_ms: start_ms + i as i64 * step_ms,
            modules: MODULES
                .iter()
                .map(|(m, cost, _)| (m.to_string(), cost / steps as f64))
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    let mut routes = vec![
        line("/{code}", "shortener", 0.015, 40_000),
        line("task:visit-writer", "shortener", 0.004, 0),
        line("/v2/models/{name}/infer", "inference", 2.9, 1_990),
        line("/v1/chat/completions", "llm", 4.9, 290),
        line(XSS, "gateway", 0.3, 10),
    ];
    for i in 0..ROUTES - routes.len() {
        routes.push(line(
            &format!("/cheap/{i}"),
            "gateway",
            0.0001 * i as f64,
            100,
        ));
    }
    CostReport {
        currency: "USD".into(),
        example_prices: true,
        steps,
        modules: MODULES
            .iter()
            .map(|(m, cost, requests)| line(m, m, *cost, *requests))
            .collect(),
        routes,
        models: vec![
            line("gpt-4o-mini", "llm", 4.0, 250),
            line("digits:1", "inference", 2.5, 1_800),
        ],
        keys: vec![
            KeySpend {
                key: "team-b".into(),
                budget: Some(100.0),
                spent: 0.1,
                projected_month: 3.0,
                over_budget: false,
            },
            KeySpend {
                key: "anonymous".into(),
                budget: None,
                spent: 0.05,
                projected_month: 1.5,
                over_budget: false,
            },
            KeySpend {
                key: "team-a".into(),
                budget: Some(1.0),
                spent: 0.9,
                projected_month: 27.0,
                over_budget: true,
            },
        ],
        idle: IDLE,
        total: TOTAL,
        projected_month: TOTAL * 30.0,
    }
}

#[async_trait]
impl CostSource for FakeCost {
    async fn cost(&self, query: &CostQuery) -> Result<CostReport, SourceError> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(query.clone());
        }
        match self.data {
            CostData::Measured => Ok(measured(query)),
            CostData::Empty => Ok(CostReport {
                currency: "EUR".into(),
                ..CostReport::default()
            }),
            CostData::Failing => Err(SourceError::Unavailable(
                "the cost sampler has stopped".into(),
            )),
        }
    }
}
