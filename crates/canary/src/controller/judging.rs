//! From readings to a [`Judgement`]: each metric's two sides through the
//! judge's test for its kind, the SLO guard on the canary side alone, and
//! the Kayenta-style score over all metrics.

use super::ControllerError;
use crate::judge::{self, Counts, Histogram, Verdict};
use crate::metrics::{Query, Reading};
use crate::spec::{CanaryPlan, MetricKind, MetricPlan};
use crate::target::{self, Side, Split};
use serde::{Deserialize, Serialize};

/// Both sides' queries, per metric of the plan (in its order).
#[derive(Debug, Clone)]
pub struct SideQueries {
    per_metric: Vec<(Option<Query>, Query)>,
}

impl SideQueries {
    /// Every query, baseline then canary per metric (baseline skipped
    /// where a metric has none): what one look reads.
    pub fn flat(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for (baseline, canary) in &self.per_metric {
            out.extend(baseline.iter().cloned());
            out.push(canary.clone());
        }
        out
    }
}

/// The queries of every metric of `plan` for the sides `split` names;
/// refuses a metric the target cannot measure (accuracy of a route).
pub fn queries(plan: &CanaryPlan, split: &Split) -> Result<SideQueries, ControllerError> {
    queries_for(
        target::Measured::of(&plan.target),
        &plan.target_key(),
        &plan.metrics,
        split,
    )
}

/// The queries of `metrics` on the sides of `measured` that `split` names.
pub fn queries_for(
    measured: target::Measured<'_>,
    key: &str,
    metrics: &[MetricPlan],
    split: &Split,
) -> Result<SideQueries, ControllerError> {
    let mut per_metric = Vec::new();
    for metric in metrics {
        let of = |side| target::queries(measured, split, metric.kind, side);
        let Some(canary) = of(Side::Canary) else {
            return Err(ControllerError::Target(
                crate::target::TargetError::Refused {
                    target: key.to_string(),
                    reason: format!(
                        "metric {} ({}) cannot be measured on this kind of target",
                        metric.slo,
                        metric.kind.as_str()
                    ),
                },
            ));
        };
        per_metric.push((of(Side::Baseline), canary));
    }
    Ok(SideQueries { per_metric })
}

/// One metric's verdict and evidence, as stored and printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEvidence {
    pub slo: String,
    pub kind: MetricKind,
    pub verdict: Verdict,
    pub p_value: Option<f64>,
    pub effect: Option<f64>,
    pub n_baseline: u64,
    pub n_canary: u64,
    pub evidence: String,
}

/// The score over all metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub verdict: Verdict,
    /// 0 to 100; none while a metric still lacks samples.
    pub score: Option<f64>,
}

/// What one look found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub metrics: Vec<MetricEvidence>,
    pub overall: Overall,
    /// Set when the canary alone burns an SLO fast enough to page.
    pub guard: Option<String>,
}

fn counts(reading: &Reading) -> Result<Counts, String> {
    match reading {
        Reading::Proportion(c) => Ok(*c),
        Reading::Histogram(_) => Err("expected counters, read a histogram".to_string()),
    }
}

fn histogram(reading: &Reading) -> Result<&Histogram, String> {
    match reading {
        Reading::Histogram(h) => Ok(h),
        Reading::Proportion(_) => Err("expected a histogram, read counters".to_string()),
    }
}

/// The two sides with the same buckets: a side that saw nothing yet has
/// no buckets of its own (the registry has not seen a series), so it
/// takes the other side's, empty.
fn aligned(canary: &Histogram, baseline: &Histogram) -> Result<(Histogram, Histogram), String> {
    let empty_like =
        |other: &Histogram| Histogram::empty(other.bounds().to_vec()).map_err(|e| e.to_string());
    Ok(match (canary.count(), baseline.count()) {
        (0, n) if n > 0 => (empty_like(baseline)?, baseline.clone()),
        (n, 0) if n > 0 => (canary.clone(), empty_like(canary)?),
        _ => (canary.clone(), baseline.clone()),
    })
}

/// The canary side's bad events against the SLO (for a latency SLO:
/// requests over its threshold).
fn slo_counts(metric: &MetricPlan, canary: &Reading) -> Result<Counts, String> {
    match (metric.kind, canary) {
        // Nothing observed yet: nothing over the threshold either.
        (MetricKind::Latency, Reading::Histogram(h)) if h.count() == 0 => {
            Ok(Counts { bad: 0, total: 0 })
        }
        (MetricKind::Latency, Reading::Histogram(h)) => {
            let threshold = metric.latency_threshold.unwrap_or(f64::INFINITY);
            let bad = h.count_above(threshold).map_err(|e| e.to_string())?;
            Ok(Counts {
                bad,
                total: h.count(),
            })
        }
        (_, reading) => counts(reading),
    }
}

/// Judges one look (each at the per-look significance the plan's
/// number of looks allows).
pub fn judge(
    plan: &CanaryPlan,
    queries: &SideQueries,
    readings: &[Reading],
) -> Result<Judgement, String> {
    let planned = u32::try_from(plan.planned_looks()).unwrap_or(u32::MAX);
    let metric_count = u32::try_from(plan.metrics.len()).unwrap_or(u32::MAX);
    let alpha = judge::per_look_significance(plan.judge.significance, planned, metric_count)
        .map_err(|e| e.to_string())?;
    let mut at = 0;
    let mut scored = Vec::new();
    let mut guard = None;
    for (metric, (baseline_query, _)) in plan.metrics.iter().zip(&queries.per_metric) {
        let baseline = if baseline_query.is_some() {
            at += 1;
            Some(readings.get(at - 1).ok_or("missing reading")?)
        } else {
            None
        };
        at += 1;
        let canary = readings.get(at - 1).ok_or("missing reading")?;
        let against_slo = slo_counts(metric, canary)?;
        if guard.is_none() {
            let trip = judge::slo_guard(
                &against_slo,
                metric.objective,
                plan.judge.page_burn_rate,
                plan.judge.min_samples,
            )
            .map_err(|e| e.to_string())?;
            if let Some(trip) = trip {
                guard = Some(format!("{}: {}", metric.slo, trip.evidence));
            }
        }
        let proportion = judge::ProportionConfig {
            min_effect: metric.min_effect,
            min_samples: plan.judge.min_samples,
            ..judge::ProportionConfig::default()
        };
        let verdict = match (metric.kind, baseline) {
            (MetricKind::Latency, Some(b)) => {
                let (canary, baseline) = aligned(histogram(canary)?, histogram(b)?)?;
                judge::judge_latency_histograms(
                    &metric.slo,
                    &canary,
                    &baseline,
                    alpha,
                    &judge::LatencyConfig {
                        min_effect: metric.min_effect,
                        min_samples: plan.judge.min_samples,
                    },
                )
            }
            (_, Some(b)) => judge::judge_proportion(
                &metric.slo,
                &counts(canary)?,
                &counts(b)?,
                alpha,
                &proportion,
            ),
            // No baseline (shadow agreement): the canary against its SLO
            // alone, as if the baseline met the objective exactly.
            (_, None) => {
                let total = against_slo.total;
                let objective_bad = ((1.0 - metric.objective) * total as f64).round() as u64;
                let baseline = Counts {
                    bad: objective_bad.min(total),
                    total,
                };
                judge::judge_proportion(&metric.slo, &against_slo, &baseline, alpha, &proportion)
            }
        }
        .map_err(|e| e.to_string())?;
        scored.push(judge::ScoredMetric {
            metric: verdict,
            weight: judge::MetricWeight {
                weight: metric.weight,
                critical: metric.critical,
            },
        });
    }
    let scoring = judge::ScoringConfig {
        pass: plan.judge.pass_score,
        marginal: plan.judge.marginal_score,
    };
    let result = judge::score(scored, &scoring).map_err(|e| e.to_string())?;
    let metrics = result
        .metrics
        .iter()
        .zip(&plan.metrics)
        .map(|(m, plan)| MetricEvidence {
            slo: plan.slo.clone(),
            kind: plan.kind,
            verdict: m.metric.verdict,
            p_value: m.metric.p_value,
            effect: m.metric.effect,
            n_baseline: m.metric.n_baseline,
            n_canary: m.metric.n_canary,
            evidence: m.metric.evidence.clone(),
        })
        .collect();
    Ok(Judgement {
        metrics,
        overall: Overall {
            verdict: result.verdict,
            score: result.score,
        },
        guard,
    })
}
