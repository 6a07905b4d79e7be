//! The error-budget policy: how much budget is left decides what may ship.
//!
//! ```yaml
//! version: reliable/v1
//! kind: ErrorBudgetPolicy
//! rules:
//!   - {below: 10%, decision: freeze, allow: [fix], reason: ...}
//!   - {below: 20%, decision: reliability-first, allow: [fix], reason: ...}
//!   - {below: 50%, decision: caution, reason: ...}
//! ```
//!
//! The rule with the lowest `below` that is still above the remaining
//! budget decides; above every rule, everything ships. `allow` lists the
//! release kinds still allowed (default: both, for rules that only warn;
//! [`Policy::default`] freezes features below 20%). An SLO without data
//! blocks releases unless the caller says otherwise: no data is not "all
//! good".

use crate::fields::{scalar, seq, At, Fields};
use crate::status::SloStatus;
use crate::{yaml, SpecError};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseKind {
    Feature,
    Fix,
}

impl ReleaseKind {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "feature" => Ok(Self::Feature),
            "fix" => Ok(Self::Fix),
            other => Err(format!("`{other}` is not a release kind (feature, fix)")),
        }
    }
}

impl fmt::Display for ReleaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Feature => "feature",
            Self::Fix => "fix",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// Applies when the remaining budget share is below this (0..=1).
    pub below: f64,
    pub decision: String,
    pub allow: Vec<ReleaseKind>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Sorted by `below`, lowest first.
    rules: Vec<PolicyRule>,
}

impl Default for Policy {
    fn default() -> Self {
        let rule = |below: f64, decision: &str, allow: &[ReleaseKind], reason: &str| PolicyRule {
            below,
            decision: decision.into(),
            allow: allow.to_vec(),
            reason: reason.into(),
        };
        Self {
            rules: vec![
                rule(
                    0.10,
                    "freeze",
                    &[ReleaseKind::Fix],
                    "error budget below 10% or exhausted: releases frozen except fixes",
                ),
                rule(
                    0.20,
                    "reliability-first",
                    &[ReleaseKind::Fix],
                    "error budget below 20%: reliability work first, features wait",
                ),
                rule(
                    0.50,
                    "caution",
                    &[ReleaseKind::Feature, ReleaseKind::Fix],
                    "error budget below 50%: ship with care",
                ),
            ],
        }
    }
}

/// The policy's answer for one release.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub decision: String,
    /// Why, naming the SLO that decided.
    pub reason: String,
}

impl Policy {
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, SpecError> {
        let docs = yaml::parse_documents(text)
            .map_err(|e| At::root(file).error(e.line, String::new(), e.message))?;
        let [doc] = docs.as_slice() else {
            return Err(At::root(file).here(0, "a policy file holds exactly one YAML document"));
        };
        let mut f = Fields::new(At::root(file), doc)?;
        let (version, line) = f.required_string("version")?;
        if version != "reliable/v1" {
            return Err(f.at.error(line, "version".into(), "expected `reliable/v1`"));
        }
        let (kind, line) = f.required_string("kind")?;
        if kind != "ErrorBudgetPolicy" {
            return Err(f
                .at
                .error(line, "kind".into(), "expected `ErrorBudgetPolicy`"));
        }
        let node = f.required("rules")?;
        let at = f.at.child("rules");
        let mut rules = Vec::new();
        for (i, item) in seq(&at, node)?.iter().enumerate() {
            let mut r = Fields::new(at.index(i), item)?;
            let (below_text, line) = r.required_string("below")?;
            let below =
                parse_share(&below_text).map_err(|m| r.at.error(line, r.at.field("below"), m))?;
            let (decision, _) = r.required_string("decision")?;
            let reason = r
                .string("reason")?
                .map_or_else(|| decision.clone(), |r| r.0);
            let allow = match r.take("allow") {
                None => vec![ReleaseKind::Feature, ReleaseKind::Fix],
                Some(list) => {
                    let at = r.at.child("allow");
                    seq(&at, list)?
                        .iter()
                        .map(|n| {
                            scalar(&at, n).and_then(|t| {
                                ReleaseKind::parse(&t).map_err(|m| at.here(n.line, m))
                            })
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            r.finish()?;
            if rules.iter().any(|x: &PolicyRule| x.below == below) {
                return Err(r.at.error(
                    line,
                    r.at.field("below"),
                    "two rules with the same threshold",
                ));
            }
            rules.push(PolicyRule {
                below,
                decision,
                allow,
                reason,
            });
        }
        f.finish()?;
        rules.sort_by(|a, b| a.below.total_cmp(&b.below));
        Ok(Self { rules })
    }

    /// The rule for one remaining budget share, if any applies.
    pub fn rule_for(&self, remaining: f64) -> Option<&PolicyRule> {
        self.rules.iter().find(|r| remaining < r.below)
    }

    /// The verdict over several SLOs: the most restrictive one wins.
    pub fn decide(&self, slos: &[SloStatus], kind: ReleaseKind, allow_missing: bool) -> Verdict {
        let mut worst: Option<(usize, &SloStatus, f64)> = None;
        for s in slos {
            let Some(remaining) = s.budget_remaining else {
                if !allow_missing {
                    return Verdict {
                        allowed: false,
                        decision: "no-data".into(),
                        reason: format!("{}: no SLI data, so the remaining budget is unknown (no data is not \"all good\")", s.id),
                    };
                }
                continue;
            };
            if let Some(i) = self.rules.iter().position(|r| remaining < r.below) {
                if worst.is_none_or(|(w, _, _)| i < w) {
                    worst = Some((i, s, remaining));
                }
            }
        }
        match worst {
            None => Verdict {
                allowed: true,
                decision: "ship".into(),
                reason: "every SLO has enough error budget left".into(),
            },
            Some((i, s, remaining)) => {
                let rule = &self.rules[i];
                Verdict {
                    allowed: rule.allow.contains(&kind),
                    decision: rule.decision.clone(),
                    reason: format!(
                        "{}: {:.1}% of the error budget left: {}",
                        s.id,
                        remaining * 100.0,
                        rule.reason
                    ),
                }
            }
        }
    }
}

/// `10%` or `0.1` to 0.1.
fn parse_share(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a share like `20%` or `0.2`"))?;
    if !(value > 0.0 && value <= 1.0) {
        return Err(format!("`{text}` must be above 0% and at most 100%"));
    }
    Ok(value)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
