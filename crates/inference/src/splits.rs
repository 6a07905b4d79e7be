//! The serving policy as a [`TrafficSplits`]: what the canary controller
//! in the same process steps. A split's name is the model's; its baseline
//! is the default version and its canary the policy's canary version.
//! Every change goes through [`Policies::set`], so it is validated against
//! the loaded versions, logged and counted like one made through
//! `PUT /v2/repository/models/{name}/policy`.

use crate::policy::{PolicyError, ServingPolicy, Split};
use crate::service::Service;
use async_trait::async_trait;
use kit::traffic::{basis_points, SplitError, SplitState, TrafficSplits};
use std::sync::Arc;

/// The inference module's serving policies, as splits.
pub struct ModelSplits(pub Arc<Service>);

impl ModelSplits {
    fn loaded(&self, name: &str) -> Result<Vec<u64>, SplitError> {
        let model = self
            .0
            .model(name)
            .map_err(|_| SplitError::UnknownName(name.to_string()))?;
        Ok(model.version_numbers())
    }

    fn state(name: &str, policy: &ServingPolicy, loaded: &[u64]) -> Result<SplitState, SplitError> {
        let canary = policy
            .canary
            .ok_or_else(|| SplitError::NoCanary(name.to_string()))?;
        let baseline = policy
            .resolve_default(loaded)
            .map_or_else(String::new, |v| v.to_string());
        Ok(SplitState {
            name: name.to_string(),
            baseline,
            canary: canary.version.to_string(),
            percent: canary.percent,
            updated_at: None,
            updated_by: None,
        })
    }

    fn apply(
        &self,
        name: &str,
        policy: ServingPolicy,
        loaded: &[u64],
        reason: &str,
    ) -> Result<(), SplitError> {
        tracing::info!(model = name, reason, "serving policy changed by a canary");
        self.0
            .policies
            .set(name, policy, loaded)
            .map(|_| ())
            .map_err(|e| match e {
                PolicyError::PercentOutOfRange { value, .. } => SplitError::OutOfRange(value),
                other => SplitError::NoCanary(format!("{name}: {other}")),
            })
    }
}

fn version(name: &str, text: &str) -> Result<u64, SplitError> {
    text.parse()
        .map_err(|_| SplitError::NoCanary(format!("{name}: `{text}` is not a version number")))
}

#[async_trait]
impl TrafficSplits for ModelSplits {
    async fn list(&self) -> Result<Vec<SplitState>, SplitError> {
        let mut out = Vec::new();
        for (name, policy) in self.0.policies.all() {
            if let Ok(loaded) = self.loaded(&name) {
                if let Ok(state) = Self::state(&name, &policy, &loaded) {
                    out.push(state);
                }
            }
        }
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<SplitState, SplitError> {
        let loaded = self.loaded(name)?;
        Self::state(name, &self.0.policies.get(name), &loaded)
    }

    async fn set(&self, name: &str, percent: f64, reason: &str) -> Result<SplitState, SplitError> {
        let points = basis_points(percent)?;
        let loaded = self.loaded(name)?;
        let mut policy = (*self.0.policies.get(name)).clone();
        let canary = policy
            .canary
            .as_mut()
            .ok_or_else(|| SplitError::NoCanary(name.to_string()))?;
        canary.percent = f64::from(points) / 100.0;
        self.apply(name, policy.clone(), &loaded, reason)?;
        Self::state(name, &policy, &loaded)
    }

    async fn set_sides(
        &self,
        name: &str,
        baseline: &str,
        canary: &str,
    ) -> Result<SplitState, SplitError> {
        let (baseline, canary) = (version(name, baseline)?, version(name, canary)?);
        let loaded = self.loaded(name)?;
        let mut policy = (*self.0.policies.get(name)).clone();
        let percent = policy
            .canary
            .filter(|c| c.version == canary && policy.default_version == Some(baseline))
            .map_or(0.0, |c| c.percent);
        policy.default_version = Some(baseline);
        policy.canary = Some(Split {
            version: canary,
            percent,
        });
        self.apply(name, policy.clone(), &loaded, "canary sides pinned")?;
        Self::state(name, &policy, &loaded)
    }

    async fn promote(&self, name: &str, reason: &str) -> Result<SplitState, SplitError> {
        let loaded = self.loaded(name)?;
        let mut policy = (*self.0.policies.get(name)).clone();
        let canary = policy
            .canary
            .take()
            .ok_or_else(|| SplitError::NoCanary(name.to_string()))?;
        policy.default_version = Some(canary.version);
        self.apply(name, policy, &loaded, reason)?;
        Ok(SplitState {
            name: name.to_string(),
            baseline: canary.version.to_string(),
            canary: canary.version.to_string(),
            percent: 100.0,
            updated_at: None,
            updated_by: Some(reason.to_string()),
        })
    }
}
