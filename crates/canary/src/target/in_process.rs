//! Targets in this process (`reliable up`, the drill): the module's own
//! [`TrafficSplits`], found in the registry the binary shares.

use super::{Split, Target, TargetError};
use crate::spec::TargetSection;
use async_trait::async_trait;
use kit::traffic::{SplitError, SplitRegistry, SplitState, TrafficSplits};
use std::sync::Arc;

/// A target whose module runs in this process.
pub struct InProcessTarget {
    kind: &'static str,
    name: String,
    /// A model canary pins both versions; a route's pools are config.
    sides: Option<(String, String)>,
    splits: Arc<dyn TrafficSplits>,
}

impl InProcessTarget {
    /// The target `section` names, if its module has registered in
    /// `registry` (it starts with the module, so a missing kind means the
    /// module does not run here).
    pub fn find(registry: &SplitRegistry, section: &TargetSection) -> Result<Self, TargetError> {
        let (kind, name, sides) = match section {
            TargetSection::Gateway { route, .. } => ("gateway", route.clone(), None),
            TargetSection::Inference {
                model,
                baseline_version,
                canary_version,
                ..
            } => (
                "inference",
                model.clone(),
                Some((baseline_version.to_string(), canary_version.to_string())),
            ),
        };
        let splits = registry.get(kind).ok_or_else(|| TargetError::Unknown {
            target: format!("{kind}/{name}"),
            reason: format!("no {kind} module runs in this process"),
        })?;
        Ok(Self {
            kind,
            name,
            sides,
            splits,
        })
    }

    fn error(&self, e: SplitError) -> TargetError {
        let target = self.key();
        match e {
            SplitError::Unavailable(reason) => TargetError::Unreachable { target, reason },
            SplitError::UnknownName(_) | SplitError::NoCanary(_) => TargetError::Unknown {
                target,
                reason: e.to_string(),
            },
            other => TargetError::Refused {
                target,
                reason: other.to_string(),
            },
        }
    }

    fn split_of(state: SplitState) -> Split {
        Split {
            baseline: state.baseline,
            canary: state.canary,
            percent: state.percent,
        }
    }
}

#[async_trait]
impl Target for InProcessTarget {
    fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    async fn split(&self) -> Result<Split, TargetError> {
        let state = match &self.sides {
            Some((baseline, canary)) => self.splits.set_sides(&self.name, baseline, canary).await,
            None => self.splits.get(&self.name).await,
        };
        state.map(Self::split_of).map_err(|e| self.error(e))
    }

    async fn set_weight(&self, percent: f64, reason: &str) -> Result<Split, TargetError> {
        self.splits
            .set(&self.name, percent, reason)
            .await
            .map(Self::split_of)
            .map_err(|e| self.error(e))
    }

    async fn promote(&self, reason: &str) -> Result<Split, TargetError> {
        self.splits
            .promote(&self.name, reason)
            .await
            .map(Self::split_of)
            .map_err(|e| self.error(e))
    }
}
