//! A model's serving policy: which version answers an unversioned request
//! (`POST /v2/models/{name}/infer`), how a canary gets its share, and which
//! requests are mirrored to a shadow version.
//!
//! A request that names a version (`/v2/models/{name}/versions/{v}/infer`)
//! is *pinned* and never goes through a policy. For the others:
//!
//! 1. [`ServingPolicy::route`] picks the version that answers: the canary
//!    for `canary.percent` % of requests, the default version for the rest.
//!    With a `sticky_header`, the request's value of that header decides
//!    (same value, same version: a user sees one model, and an A/B test
//!    compares users, not requests); without one, a random roll does.
//! 2. [`ServingPolicy::shadow_target`] says whether the request is also sent
//!    to the shadow version, whose answer is recorded (metrics, drift,
//!    logs) and never returned: a candidate is tried on live traffic at no
//!    risk to the caller.
//!
//! Sticky assignment hashes the header value with SHA-256 and reads the
//! first 8 bytes as a point in `[0, 1)` ([`sticky_point`]): the same on every
//! replica, across restarts and Rust versions (std's `DefaultHasher` is
//! none of those). A value's point does not depend on the percentage, so
//! ramping a canary from 10 % to 20 % keeps the first 10 % of users on it.
//!
//! Policies change at run time (an admin endpoint calls [`Policies::set`]);
//! a policy is validated against the versions loaded at that moment. A
//! version unloaded later is handled at routing time: a missing default or
//! canary falls back to the highest loaded version, so a request is never
//! routed to a version that is not there.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Counter of accepted policy changes, labelled by `model`.
pub const POLICY_CHANGES_TOTAL: &str = "inference_policy_changes_total";

/// How unversioned requests to one model are served. Changed at runtime by an admin endpoint.
#[derive(
    Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct ServingPolicy {
    /// The version that answers when no split applies; None = the highest loaded version.
    pub default_version: Option<u64>,
    /// Weighted split: `percent` of unpinned requests go to `version` (the canary); the rest to the default.
    pub canary: Option<Split>,
    /// Request header whose value makes assignment sticky (e.g. "x-user-id"): the same value
    /// always lands on the same version. A request without the header gets a random roll.
    pub sticky_header: Option<String>,
    /// Mirror `percent` of requests to `version`; its answer is recorded, never returned.
    pub shadow: Option<Split>,
}

/// A share of requests sent to one version.
#[derive(
    Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The model version that receives the share.
    pub version: u64,
    /// The share, in percent: 0 to 100 inclusive.
    pub percent: f64,
}

/// Why a policy was refused. Every message names the offending field, so the
/// admin endpoint can return it as is (a 422).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// A percentage outside `0..=100`, or not a number.
    #[error("{field} must be between 0 and 100, got {value}")]
    PercentOutOfRange {
        /// The field, e.g. `canary.percent`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A version the model does not have loaded.
    #[error("{field} names version {version}, which is not loaded (loaded: {loaded:?})")]
    VersionNotLoaded {
        /// The field, e.g. `canary.version`.
        field: &'static str,
        /// The version given.
        version: u64,
        /// The versions that are loaded.
        loaded: Vec<u64>,
    },
    /// The canary is the version that already answers by default, so the
    /// split would change nothing: with `default_version` unset the default
    /// is the highest loaded version, which is usually the new one.
    #[error("canary.version {version} is also the default version; set default_version to the version the rest of the traffic should stay on")]
    CanaryIsDefault {
        /// The canary version.
        version: u64,
    },
    /// `sticky_header` is not a valid HTTP header name.
    #[error("sticky_header {0:?} is not a valid HTTP header name")]
    BadHeaderName(String),
    /// The shadow version is the only version that can answer, so nothing
    /// would ever be mirrored (a request is never mirrored to the version
    /// that answers it).
    #[error("shadow.version {version} is the only version that can answer; a shadow must differ from the primary")]
    ShadowIsPrimary {
        /// The shadow version.
        version: u64,
    },
}

impl ServingPolicy {
    /// Refuses a policy that cannot work with the loaded versions (percent outside 0..=100 or
    /// NaN, unknown versions, invalid header name, shadow equal to the only possible primary).
    ///
    /// A canary equal to the default version is refused: it would change
    /// nothing, and it is the easy mistake of canarying the newest version
    /// without setting `default_version` (unset means the highest loaded).
    /// A 0 % split is accepted (a split kept configured but off).
    pub fn validate(&self, loaded: &[u64]) -> Result<(), PolicyError> {
        let check_version = |field: &'static str, version: u64| {
            if loaded.contains(&version) {
                Ok(())
            } else {
                let mut loaded = loaded.to_vec();
                loaded.sort_unstable();
                Err(PolicyError::VersionNotLoaded {
                    field,
                    version,
                    loaded,
                })
            }
        };
        let check_percent = |field: &'static str, value: f64| {
            if (0.0..=100.0).contains(&value) {
                Ok(())
            } else {
                Err(PolicyError::PercentOutOfRange { field, value })
            }
        };
        if let Some(version) = self.default_version {
            check_version("default_version", version)?;
        }
        if let Some(canary) = self.canary {
            check_version("canary.version", canary.version)?;
            check_percent("canary.percent", canary.percent)?;
            if self.resolve_default(loaded) == Some(canary.version) {
                return Err(PolicyError::CanaryIsDefault {
                    version: canary.version,
                });
            }
        }
        if let Some(shadow) = self.shadow {
            check_version("shadow.version", shadow.version)?;
            check_percent("shadow.percent", shadow.percent)?;
        }
        if let Some(header) = &self.sticky_header {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(PolicyError::BadHeaderName(header.clone()));
            }
        }
        if let Some(shadow) = self.shadow {
            let primaries = self.possible_primaries(loaded);
            if primaries == [shadow.version] {
                return Err(PolicyError::ShadowIsPrimary {
                    version: shadow.version,
                });
            }
        }
        Ok(())
    }

    /// The versions that can answer an unpinned request under this policy.
    fn possible_primaries(&self, loaded: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(2);
        let default = self.resolve_default(loaded);
        match self.active_canary(loaded) {
            Some(canary) if canary.percent >= 100.0 => out.push(canary.version),
            Some(canary) => {
                out.extend(default);
                if default != Some(canary.version) {
                    out.push(canary.version);
                }
            }
            None => out.extend(default),
        }
        out
    }

    /// The version that answers when no split applies: `default_version` if
    /// it is loaded, else the highest loaded version (None if none is).
    pub fn resolve_default(&self, loaded: &[u64]) -> Option<u64> {
        match self.default_version {
            Some(v) if loaded.contains(&v) => Some(v),
            _ => loaded.iter().copied().max(),
        }
    }

    /// The canary split if it can take requests: loaded and above 0 %.
    fn active_canary(&self, loaded: &[u64]) -> Option<Split> {
        self.canary
            .filter(|c| c.percent > 0.0 && loaded.contains(&c.version))
    }

    /// The version an unpinned request goes to. `loaded` is non-empty and sorted ascending;
    /// `sticky` is the sticky header's value if the policy names one and the request carries it;
    /// `roll` is a uniform random number in [0,1) used when there is no sticky value.
    ///
    /// A default or canary version that is no longer loaded is skipped (the
    /// default falls back to the highest loaded version). With nothing
    /// loaded, returns `default_version` or 0, which the caller's lookup
    /// then fails to find (a 404, not a panic).
    pub fn route(&self, loaded: &[u64], sticky: Option<&[u8]>, roll: f64) -> u64 {
        let default = self
            .resolve_default(loaded)
            .or(self.default_version)
            .unwrap_or(0);
        let Some(canary) = self.active_canary(loaded) else {
            return default;
        };
        let point = match sticky {
            Some(value) => sticky_point(value),
            None => roll,
        };
        if point * 100.0 < canary.percent {
            canary.version
        } else {
            default
        }
    }

    /// Whether (and to which version) this request is mirrored. `primary` is the version that
    /// answers; never returns `primary` itself; `roll` uniform in [0,1) (independent of route's roll).
    ///
    /// The caller skips a target that has been unloaded since the policy was set.
    pub fn shadow_target(&self, primary: u64, roll: f64) -> Option<u64> {
        let shadow = self.shadow?;
        (shadow.version != primary && roll * 100.0 < shadow.percent).then_some(shadow.version)
    }
}

/// A sticky value's point in `[0, 1)`: the first 8 bytes of its SHA-256,
/// big-endian, top 53 bits divided by 2^53 (every such point is an exact
/// `f64`). Stable across processes, machines and Rust versions.
pub fn sticky_point(value: &[u8]) -> f64 {
    let digest = Sha256::digest(value);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bits = u64::from_be_bytes(first) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// The serving policy of every model, read on each request and replaced by
/// the admin endpoint. Reads take a shared lock and clone an `Arc`; a model
/// without a policy gets the default one (highest version, no split).
#[derive(Debug, Default)]
pub struct Policies {
    by_model: RwLock<HashMap<String, Arc<ServingPolicy>>>,
    default: Arc<ServingPolicy>,
}

impl Policies {
    /// An empty registry: every model has the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy of `model` (the default one when none was set).
    pub fn get(&self, model: &str) -> Arc<ServingPolicy> {
        // A poisoned lock still holds a consistent map: writers only insert or remove.
        let map = self.by_model.read().unwrap_or_else(|e| e.into_inner());
        map.get(model)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.default))
    }

    /// Validates `policy` against the `loaded` versions of `model` and makes
    /// it current; returns the previous one. Logs the change and counts it in
    /// `inference_policy_changes_total{model}` (a policy equal to the current
    /// one is accepted but neither logged at info nor counted). The caller
    /// only passes models that exist, which keeps the label bounded.
    pub fn set(
        &self,
        model: &str,
        policy: ServingPolicy,
        loaded: &[u64],
    ) -> Result<Arc<ServingPolicy>, PolicyError> {
        policy.validate(loaded)?;
        let new = Arc::new(policy);
        let old = {
            let mut map = self.by_model.write().unwrap_or_else(|e| e.into_inner());
            map.insert(model.to_string(), Arc::clone(&new))
                .unwrap_or_else(|| Arc::clone(&self.default))
        };
        if old == new {
            tracing::debug!(model, policy = ?new, "serving policy set, unchanged");
        } else {
            tracing::info!(model, old = ?old, new = ?new, "serving policy changed");
            metrics::counter!(POLICY_CHANGES_TOTAL, "model" => model.to_string()).increment(1);
        }
        Ok(old)
    }

    /// Forgets the policy of `model` (e.g. when the model is unloaded);
    /// returns it if there was one.
    pub fn remove(&self, model: &str) -> Option<Arc<ServingPolicy>> {
        let mut map = self.by_model.write().unwrap_or_else(|e| e.into_inner());
        map.remove(model)
    }

    /// Every policy that was set, sorted by model name.
    pub fn all(&self) -> Vec<(String, Arc<ServingPolicy>)> {
        let map = self.by_model.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn canary(version: u64, percent: f64) -> ServingPolicy {
        ServingPolicy {
            canary: Some(Split { version, percent }),
            ..ServingPolicy::default()
        }
    }

    /// Version 1 stays the default, version 2 is the canary.
    fn ab(percent: f64) -> ServingPolicy {
        ServingPolicy {
            default_version: Some(1),
            ..canary(2, percent)
        }
    }

    fn changes(model: &str) -> Option<u64> {
        let needle = format!("{POLICY_CHANGES_TOTAL}{{model=\"{model}\"}} ");
        kit::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
    }

    #[test]
    fn the_sticky_point_is_pinned() {
        // Computed independently (Python's hashlib): SHA-256("user-42") starts 6d894aa3,
        // SHA-256("") starts e3b0c442. A change here would move users between versions.
        assert_eq!(sticky_point(b"user-42"), PINNED_USER_42);
        assert_eq!(sticky_point(b""), PINNED_EMPTY);
        assert!((0.0..1.0).contains(&sticky_point(b"anything")));
    }

    const PINNED_USER_42: f64 = 0.4278761530135857;
    const PINNED_EMPTY: f64 = 0.8894159948913373;

    #[test]
    fn a_half_canary_splits_sticky_keys_evenly_and_keeps_each_key() {
        let policy = ab(50.0);
        let loaded = [1, 2];
        assert_eq!(policy.validate(&loaded), Ok(()));
        let mut on_canary = 0;
        for i in 0..2000 {
            let key = format!("user-{i}");
            let first = policy.route(&loaded, Some(key.as_bytes()), 0.99);
            for roll in [0.0, 0.5, 0.999] {
                assert_eq!(policy.route(&loaded, Some(key.as_bytes()), roll), first);
            }
            if first == 2 {
                on_canary += 1;
            }
        }
        assert!((900..=1100).contains(&on_canary), "{on_canary} of 2000");
    }

    #[test]
    fn a_half_canary_splits_random_rolls_evenly() {
        let policy = ab(50.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let on_canary = (0..2000)
            .filter(|_| policy.route(&[1, 2], None, rng.random::<f64>()) == 2)
            .count();
        assert!((900..=1100).contains(&on_canary), "{on_canary} of 2000");
    }

    #[test]
    fn zero_and_hundred_percent_are_exact() {
        let loaded = [1, 2];
        let rolls = [0.0, 1e-12, 0.5, 0.999_999_999];
        for roll in rolls {
            assert_eq!(
                canary(2, 0.0).route(&loaded, None, roll),
                2 /* highest */
            );
            assert_eq!(canary(1, 0.0).route(&loaded, None, roll), 2);
            assert_eq!(canary(1, 100.0).route(&loaded, None, roll), 1);
        }
        for i in 0..500 {
            let key = format!("k{i}");
            assert_eq!(canary(1, 0.0).route(&loaded, Some(key.as_bytes()), 0.0), 2);
            assert_eq!(
                canary(1, 100.0).route(&loaded, Some(key.as_bytes()), 0.0),
                1
            );
        }
    }

    #[test]
    fn ramping_a_sticky_canary_keeps_its_users() {
        let (small, large) = (ab(10.0), ab(20.0));
        for i in 0..2000 {
            let key = format!("user-{i}");
            if small.route(&[1, 2], Some(key.as_bytes()), 0.0) == 2 {
                assert_eq!(large.route(&[1, 2], Some(key.as_bytes()), 0.0), 2, "{key}");
            }
        }
    }

    #[test]
    fn the_default_version_is_honoured() {
        let loaded = [1, 2, 3];
        assert_eq!(ServingPolicy::default().route(&loaded, None, 0.3), 3);
        let pinned = ServingPolicy {
            default_version: Some(1),
            ..ServingPolicy::default()
        };
        assert_eq!(pinned.route(&loaded, None, 0.3), 1);
        let with_canary = ServingPolicy {
            default_version: Some(1),
            canary: Some(Split {
                version: 3,
                percent: 25.0,
            }),
            ..ServingPolicy::default()
        };
        assert_eq!(with_canary.route(&loaded, None, 0.24), 3);
        assert_eq!(with_canary.route(&loaded, None, 0.25), 1);
        assert_eq!(with_canary.route(&loaded, None, 0.9), 1);
    }

    #[test]
    fn unloaded_versions_fall_back_to_the_highest_loaded() {
        let policy = ServingPolicy {
            default_version: Some(1),
            canary: Some(Split {
                version: 2,
                percent: 100.0,
            }),
            ..ServingPolicy::default()
        };
        assert_eq!(policy.route(&[3], None, 0.1), 3);
        assert_eq!(policy.route(&[1, 3], None, 0.1), 1);
        assert_eq!(policy.route(&[], None, 0.1), 1);
        assert_eq!(ServingPolicy::default().route(&[], None, 0.1), 0);
    }

    #[test]
    fn the_shadow_never_equals_the_primary() {
        let policy = ServingPolicy {
            shadow: Some(Split {
                version: 2,
                percent: 100.0,
            }),
            ..ServingPolicy::default()
        };
        assert_eq!(policy.shadow_target(1, 0.0), Some(2));
        assert_eq!(policy.shadow_target(1, 0.999), Some(2));
        for roll in [0.0, 0.5, 0.999] {
            assert_eq!(policy.shadow_target(2, roll), None);
        }
        let partial = ServingPolicy {
            shadow: Some(Split {
                version: 2,
                percent: 30.0,
            }),
            ..ServingPolicy::default()
        };
        assert_eq!(partial.shadow_target(1, 0.29), Some(2));
        assert_eq!(partial.shadow_target(1, 0.3), None);
        assert_eq!(ServingPolicy::default().shadow_target(1, 0.0), None);
        let off = ServingPolicy {
            shadow: Some(Split {
                version: 2,
                percent: 0.0,
            }),
            ..ServingPolicy::default()
        };
        assert_eq!(off.shadow_target(1, 0.0), None);
    }

    #[test]
    fn validation_refuses_what_cannot_work() {
        let loaded = [1, 2];
        assert_eq!(ServingPolicy::default().validate(&loaded), Ok(()));
        for bad in [-0.1, 100.1, f64::NAN, f64::INFINITY] {
            let err = canary(2, bad).validate(&loaded).unwrap_err();
            assert!(
                matches!(
                    err,
                    PolicyError::PercentOutOfRange {
                        field: "canary.percent",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("canary.percent"));
        }
        assert_eq!(
            canary(2, 10.0).validate(&loaded),
            Err(PolicyError::CanaryIsDefault { version: 2 })
        );
        assert_eq!(ab(10.0).validate(&loaded), Ok(()));
        assert_eq!(
            canary(3, 10.0).validate(&loaded),
            Err(PolicyError::VersionNotLoaded {
                field: "canary.version",
                version: 3,
                loaded: vec![1, 2]
            })
        );
        let default_missing = ServingPolicy {
            default_version: Some(9),
            ..ServingPolicy::default()
        };
        let err = default_missing.validate(&loaded).unwrap_err();
        assert!(err.to_string().contains("default_version"), "{err}");

        let bad_header = ServingPolicy {
            sticky_header: Some("x user id".into()),
            ..ServingPolicy::default()
        };
        assert_eq!(
            bad_header.validate(&loaded),
            Err(PolicyError::BadHeaderName("x user id".into()))
        );
        let empty_header = ServingPolicy {
            sticky_header: Some(String::new()),
            ..ServingPolicy::default()
        };
        assert!(empty_header.validate(&loaded).is_err());
        let good_header = ServingPolicy {
            sticky_header: Some("X-User-Id".into()),
            ..canary(1, 50.0)
        };
        assert_eq!(good_header.validate(&loaded), Ok(()));

        let shadow = |version, percent| Some(Split { version, percent });
        let shadow_bad_percent = ServingPolicy {
            shadow: shadow(1, 101.0),
            ..ServingPolicy::default()
        };
        let err = shadow_bad_percent.validate(&loaded).unwrap_err();
        assert!(err.to_string().contains("shadow.percent"), "{err}");
    }

    #[test]
    fn a_shadow_must_differ_from_the_only_primary() {
        let shadow = |version| {
            Some(Split {
                version,
                percent: 10.0,
            })
        };
        let loaded = [1, 2];
        // Highest loaded (2) is the only primary.
        let on_default = ServingPolicy {
            shadow: shadow(2),
            ..ServingPolicy::default()
        };
        assert_eq!(
            on_default.validate(&loaded),
            Err(PolicyError::ShadowIsPrimary { version: 2 })
        );
        // A 100 % canary is the only primary.
        let on_full_canary = ServingPolicy {
            shadow: shadow(1),
            ..canary(1, 100.0)
        };
        assert_eq!(
            on_full_canary.validate(&loaded),
            Err(PolicyError::ShadowIsPrimary { version: 1 })
        );
        // The shadow is one of two primaries: accepted (mirrored only when the other answers).
        let on_split = ServingPolicy {
            shadow: shadow(1),
            ..canary(1, 50.0)
        };
        assert_eq!(on_split.validate(&loaded), Ok(()));
        let good = ServingPolicy {
            default_version: Some(1),
            shadow: shadow(2),
            ..ServingPolicy::default()
        };
        assert_eq!(good.validate(&loaded), Ok(()));
    }

    #[test]
    fn the_json_form_is_strict_and_defaults_missing_fields() {
        let parsed: ServingPolicy =
            serde_json::from_str(r#"{"canary": {"version": 2, "percent": 5}}"#).unwrap();
        assert_eq!(parsed, canary(2, 5.0));
        let empty: ServingPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ServingPolicy::default());
        assert!(serde_json::from_str::<ServingPolicy>(r#"{"canary_percent": 5}"#).is_err());
        assert!(serde_json::from_str::<ServingPolicy>(r#"{"shadow": {"version": 2}}"#).is_err());
    }

    #[test]
    fn the_registry_validates_swaps_and_counts() {
        kit::metrics::install();
        let policies = Policies::new();
        let model = "policy-registry-test";
        assert_eq!(*policies.get(model), ServingPolicy::default());

        let err = policies.set(model, canary(7, 10.0), &[1, 2]).unwrap_err();
        assert!(matches!(err, PolicyError::VersionNotLoaded { .. }));
        assert_eq!(*policies.get(model), ServingPolicy::default());
        assert_eq!(changes(model), None);

        let previous = policies.set(model, canary(1, 10.0), &[1, 2]).unwrap();
        assert_eq!(*previous, ServingPolicy::default());
        assert_eq!(*policies.get(model), canary(1, 10.0));
        assert_eq!(changes(model), Some(1));

        // Setting the same policy again is not a change.
        let previous = policies.set(model, canary(1, 10.0), &[1, 2]).unwrap();
        assert_eq!(*previous, canary(1, 10.0));
        assert_eq!(changes(model), Some(1));

        policies.set(model, canary(1, 20.0), &[1, 2]).unwrap();
        assert_eq!(changes(model), Some(2));
        assert_eq!(policies.all().len(), 1);
        assert_eq!(*policies.get("other-model"), ServingPolicy::default());
        assert_eq!(policies.remove(model).as_deref(), Some(&canary(1, 20.0)));
        assert_eq!(*policies.get(model), ServingPolicy::default());
    }
}
