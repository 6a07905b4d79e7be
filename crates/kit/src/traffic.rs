//! The traffic-split port: something whose traffic is divided between a
//! baseline and a canary, with the canary's share changeable at runtime.
//!
//! Why here: the canary controller steps a split (5 → 10 → 30 ...) and
//! rolls it back to 0, and the things it steps live in other crates (the
//! gateway's routes, later the inference module's model versions). Module
//! crates never depend on each other, so they meet through this trait:
//! the binary puts one [`SplitRegistry`] into [`crate::module::Ports`] for
//! every process, each module that can split registers itself under its
//! kind when it starts (`"gateway"`), and the controller running in the
//! same process (`reliable up`) looks the kind up. A controller in another
//! process uses the module's HTTP admin API, which answers the same
//! [`SplitState`] JSON.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// One split as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitState {
    /// What is split (for the gateway: the route's name).
    pub name: String,
    /// Where the rest of the traffic goes (a pool or a version label).
    pub baseline: String,
    /// Where `percent` of the traffic goes.
    pub canary: String,
    /// The canary's share, 0 to 100 (to two decimals).
    pub percent: f64,
    /// When it was last changed at runtime; none while the configured
    /// share holds.
    pub updated_at: Option<DateTime<Utc>>,
    /// Who changed it and why (an API key's name, the controller's run);
    /// none while the configured share holds.
    pub updated_by: Option<String>,
}

/// Why a split cannot be read or changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// Nothing of that name exists.
    #[error("no split target named `{0}`")]
    UnknownName(String),
    /// It exists but has no canary to send traffic to.
    #[error("`{0}` has no canary to split traffic with")]
    NoCanary(String),
    /// A share outside 0..=100 (or not a number).
    #[error("a canary share is 0 to 100 percent, got {0}")]
    OutOfRange(f64),
    /// Where splits are kept cannot be reached; nothing was changed.
    #[error("the split store is unavailable: {0}")]
    Unavailable(String),
}

/// The canary's share in hundredths of a percent (0..=10000), the
/// resolution every adapter keeps; [`SplitError::OutOfRange`] outside
/// 0..=100 or for NaN.
pub fn basis_points(percent: f64) -> Result<u32, SplitError> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(SplitError::OutOfRange(percent));
    }
    // In range and finite: the cast cannot truncate.
    Ok((percent * 100.0).round() as u32)
}

/// Something whose traffic is split between a baseline and a canary.
#[async_trait]
pub trait TrafficSplits: Send + Sync {
    /// The names that can be split (gateway: routes with a canary pool).
    async fn list(&self) -> Result<Vec<SplitState>, SplitError>;
    /// One split.
    async fn get(&self, name: &str) -> Result<SplitState, SplitError>;
    /// Sets the canary's share in percent (0..=100); `reason` says who and
    /// why, and is logged and kept with the split. Returns the split now in
    /// force.
    async fn set(&self, name: &str, percent: f64, reason: &str) -> Result<SplitState, SplitError>;

    /// Chooses the two sides a split is between, where they are not
    /// configuration: a model's baseline and canary versions. Keeps the
    /// canary's share when the sides are already these, else starts it at
    /// 0. The default (sides fixed by configuration, as a route's pools)
    /// only checks that they are the ones asked for.
    async fn set_sides(
        &self,
        name: &str,
        baseline: &str,
        canary: &str,
    ) -> Result<SplitState, SplitError> {
        let state = self.get(name).await?;
        if state.baseline == baseline && state.canary == canary {
            Ok(state)
        } else {
            Err(SplitError::NoCanary(format!(
                "{name} splits {} and {}, not {baseline} and {canary}",
                state.baseline, state.canary
            )))
        }
    }

    /// Makes the canary the baseline. The default sends all traffic to
    /// the canary side (a route's canary pool); a model makes its canary
    /// version the default one.
    async fn promote(&self, name: &str, reason: &str) -> Result<SplitState, SplitError> {
        self.set(name, 100.0, reason).await
    }
}

/// The splittable things of this process, by kind (`"gateway"`, later
/// `"inference"`). Cloning shares the registry.
#[derive(Clone, Default)]
pub struct SplitRegistry {
    kinds: Arc<RwLock<BTreeMap<&'static str, Arc<dyn TrafficSplits>>>>,
    registered: Arc<tokio::sync::Notify>,
}

impl SplitRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the splits of `kind`.
    pub fn register(&self, kind: &'static str, splits: Arc<dyn TrafficSplits>) {
        self.kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, splits);
        self.registered.notify_waiters();
    }

    /// Returns once at least one kind is registered (a controller that
    /// starts before the modules it steps waits for them with this).
    pub async fn wait_for_any(&self) {
        loop {
            let registered = self.registered.notified();
            if !self.kinds().is_empty() {
                return;
            }
            registered.await;
        }
    }

    /// Removes `kind` (its module stopped).
    pub fn remove(&self, kind: &str) {
        self.kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(kind);
    }

    /// The splits of `kind`, if a module registered them.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn TrafficSplits>> {
        self.kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .cloned()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// One split kept in memory.
    struct One(Mutex<SplitState>);

    #[async_trait]
    impl TrafficSplits for One {
        async fn list(&self) -> Result<Vec<SplitState>, SplitError> {
            Ok(vec![self.0.lock().unwrap().clone()])
        }
        async fn get(&self, name: &str) -> Result<SplitState, SplitError> {
            let state = self.0.lock().unwrap().clone();
            (state.name == name)
                .then_some(state)
                .ok_or_else(|| SplitError::UnknownName(name.to_string()))
        }
        async fn set(
            &self,
            name: &str,
            percent: f64,
            reason: &str,
        ) -> Result<SplitState, SplitError> {
            let points = basis_points(percent)?;
            self.get(name).await?;
            let mut state = self.0.lock().unwrap();
            state.percent = f64::from(points) / 100.0;
            state.updated_by = Some(reason.to_string());
            Ok(state.clone())
        }
    }

    #[tokio::test]
    async fn a_registered_kind_is_shared_by_every_clone() {
        let registry = SplitRegistry::new();
        let seen_by_controller = registry.clone();
        assert!(seen_by_controller.get("gateway").is_none());
        registry.register(
            "gateway",
            Arc::new(One(Mutex::new(SplitState {
                name: "links".into(),
                baseline: "stable".into(),
                canary: "next".into(),
                percent: 0.0,
                updated_at: None,
                updated_by: None,
            }))),
        );
        let splits = seen_by_controller.get("gateway").expect("registered");
        let state = splits.set("links", 12.345, "test").await.expect("set");
        assert_eq!(state.percent, 12.35);
        assert_eq!(
            splits.get("other").await,
            Err(SplitError::UnknownName("other".into()))
        );
        assert_eq!(seen_by_controller.kinds(), ["gateway"]);
        registry.remove("gateway");
        assert!(seen_by_controller.get("gateway").is_none());
    }

    #[test]
    fn shares_outside_0_to_100_are_refused_naming_the_value() {
        assert_eq!(basis_points(0.0), Ok(0));
        assert_eq!(basis_points(100.0), Ok(10_000));
        assert_eq!(basis_points(0.004), Ok(0));
        assert_eq!(basis_points(30.0), Ok(3_000));
        for bad in [-0.5, 100.01, f64::NAN, f64::INFINITY] {
            let e = basis_points(bad).unwrap_err();
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
    }
}
