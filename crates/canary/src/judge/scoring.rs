//! Kayenta-style scoring: metric verdicts become one verdict.
//!
//! `score = 100 × (weight of passing metrics) / (weight of judged
//! metrics)`; at or above `pass` the canary passes, below `marginal` it
//! fails, in between it is marginal (inconclusive). Before the score:
//! - a failing **critical** metric fails the canary outright;
//! - while any metric is **inconclusive** (too few samples) there is no
//!   score yet, unless even counting those metrics as passing the score
//!   would stay below `marginal`: then the outcome is already decided and
//!   the canary fails now rather than at the next look.

use super::config::{MetricWeight, ScoringConfig};
use super::verdict::{JudgeError, MetricVerdict, Verdict};
use serde::Serialize;

/// A metric's verdict with its weight in the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredMetric {
    /// The metric's own judgement.
    #[serde(flatten)]
    pub metric: MetricVerdict,
    /// Its weight and whether it is critical.
    #[serde(flatten)]
    pub weight: MetricWeight,
}

/// The overall judgement of one look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// 0 to 100; `None` while metrics still lack samples (not scored yet).
    pub score: Option<f64>,
    /// Every metric, in the order given.
    pub metrics: Vec<ScoredMetric>,
    /// One line for people: why this verdict.
    pub evidence: String,
}

/// Combines metric verdicts under `config` (assumed valid).
pub fn score(metrics: Vec<ScoredMetric>, config: &ScoringConfig) -> Result<Judgement, JudgeError> {
    if metrics.is_empty() {
        return Err(JudgeError::NoMetrics);
    }
    for m in &metrics {
        m.weight.validate().map_err(|source| JudgeError::Weight {
            name: m.metric.name.clone(),
            source,
        })?;
    }
    let weight_of = |v: Verdict| -> f64 {
        metrics
            .iter()
            .filter(|m| m.metric.verdict == v)
            .map(|m| m.weight.weight)
            .sum()
    };
    let names_of = |v: Verdict| -> String {
        let names: Vec<&str> = metrics
            .iter()
            .filter(|m| m.metric.verdict == v)
            .map(|m| m.metric.name.as_str())
            .collect();
        names.join(", ")
    };
    let (pass_w, fail_w, open_w) = (
        weight_of(Verdict::Pass),
        weight_of(Verdict::Fail),
        weight_of(Verdict::Inconclusive),
    );

    let critical: Vec<&str> = metrics
        .iter()
        .filter(|m| m.weight.critical && m.metric.verdict == Verdict::Fail)
        .map(|m| m.metric.name.as_str())
        .collect();
    let (verdict, score, evidence) = if !critical.is_empty() {
        (
            Verdict::Fail,
            None,
            format!("critical metric failed: {}", critical.join(", ")),
        )
    } else if open_w > 0.0 {
        let best = 100.0 * (pass_w + open_w) / (pass_w + fail_w + open_w);
        if best < config.marginal {
            let why = format!(
                "score at most {best:.0} < {:.0} marginal even if {} pass; failed: {}",
                config.marginal,
                names_of(Verdict::Inconclusive),
                names_of(Verdict::Fail)
            );
            (Verdict::Fail, Some(best), why)
        } else {
            (
                Verdict::Inconclusive,
                None,
                format!(
                    "not scored yet, too few samples: {}",
                    names_of(Verdict::Inconclusive)
                ),
            )
        }
    } else {
        let score = 100.0 * pass_w / (pass_w + fail_w);
        let failed = if fail_w > 0.0 {
            format!("; failed: {}", names_of(Verdict::Fail))
        } else {
            String::new()
        };
        if score >= config.pass {
            (
                Verdict::Pass,
                Some(score),
                format!("score {score:.0} ≥ {:.0} pass{failed}", config.pass),
            )
        } else if score < config.marginal {
            (
                Verdict::Fail,
                Some(score),
                format!("score {score:.0} < {:.0} marginal{failed}", config.marginal),
            )
        } else {
            let why = format!(
                "score {score:.0} is marginal ({:.0} to {:.0}){failed}",
                config.marginal, config.pass
            );
            (Verdict::Inconclusive, Some(score), why)
        }
    };
    Ok(Judgement {
        verdict,
        score,
        metrics,
        evidence,
    })
}
