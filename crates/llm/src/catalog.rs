//! The catalog: public model names (and aliases) and the deployments that
//! serve each, as the request path reads them.
//!
//! A model's deployments are grouped by priority; each priority is a
//! [`resilience::Pool`] that picks by least outstanding requests relative
//! to weight (power of two choices), skipping deployments whose breaker is
//! open or whose backend failed its health check. LLM calls differ a
//! thousandfold in cost, so counting calls in flight beats round-robin.
//! Discovered models (a backend's own `/v1/models`) are swapped in
//! whole with `ArcSwap`, so a refresh never disturbs a request in flight;
//! a model that stays listed keeps its deployments (and their breakers).

use crate::backend::Backend;
use crate::config::{LlmConfig, Timeouts};
use arc_swap::ArcSwap;
use kit::Clock;
use resilience::{Breaker, Endpoint, InFlight, Pool, PoolMetrics};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// Metric names of the deployments' breakers and health.
pub const POOL_METRICS: PoolMetrics = PoolMetrics {
    breaker_state: "llm_circuit_breaker_state",
    endpoint_healthy: "llm_backend_healthy",
    pool_label: "gen_ai_request_model",
};

/// Most models one backend may contribute by discovery (names become
/// metric labels, so they must stay bounded).
pub const MAX_DISCOVERED: usize = 256;

/// A name as a `&'static str` (metric labels live as long as the
/// process), leaked once per distinct name.
pub fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// One backend serving one model.
pub struct Deployment {
    pub backend: Arc<Backend>,
    /// The model's name on the backend.
    pub model: String,
}

/// A public model.
pub struct ServedModel {
    pub name: &'static str,
    /// By priority, lowest first.
    tiers: Vec<Pool<Deployment>>,
    /// Largest `max_tokens`, and what a request that asks none gets.
    pub max_tokens: u64,
    pub timeouts: Timeouts,
    pub fallbacks: Vec<String>,
    pub aliases: Vec<String>,
}

impl ServedModel {
    /// A deployment to call: the lowest priority that has one available,
    /// avoiding `avoid` (the one that just failed) where there is another.
    pub fn pick(&self, avoid: Option<&Arc<Endpoint<Deployment>>>) -> Option<InFlight<Deployment>> {
        self.tiers.iter().find_map(|tier| tier.pick(avoid))
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Endpoint<Deployment>>> {
        self.tiers.iter().flat_map(|t| t.endpoints.iter())
    }
}

/// What builds pools: the clock and the breaker settings.
#[derive(Clone)]
pub struct PoolFactory {
    pub clock: Arc<dyn Clock>,
    pub failures_to_open: u32,
    pub open_for: std::time::Duration,
}

impl PoolFactory {
    fn model(
        &self,
        name: &'static str,
        deployments: Vec<(Deployment, u32, u32)>,
        max_tokens: u64,
        timeouts: Timeouts,
        fallbacks: Vec<String>,
        aliases: Vec<String>,
    ) -> ServedModel {
        let mut by_priority: BTreeMap<u32, Vec<(Deployment, &'static str, u32)>> = BTreeMap::new();
        for (deployment, weight, priority) in deployments {
            let label = deployment.backend.name;
            by_priority
                .entry(priority)
                .or_default()
                .push((deployment, label, weight));
        }
        let (failures, open_for) = (self.failures_to_open, self.open_for);
        let tiers = by_priority
            .into_values()
            .map(|endpoints| {
                Pool::new_weighted(
                    name,
                    endpoints,
                    self.clock.clone(),
                    || Breaker::new(failures, open_for),
                    POOL_METRICS,
                )
            })
            .collect();
        ServedModel {
            name,
            tiers,
            max_tokens,
            timeouts,
            fallbacks,
            aliases,
        }
    }
}

/// Every model served, by public name and alias.
pub struct Catalog {
    configured: HashMap<String, Arc<ServedModel>>,
    /// Configured models in name order (what `/v1/models` lists first).
    configured_order: Vec<Arc<ServedModel>>,
    /// Models discovered per backend.
    discovered: ArcSwap<BTreeMap<&'static str, Vec<Arc<ServedModel>>>>,
    factory: PoolFactory,
    defaults: (u64, Timeouts),
}

impl Catalog {
    /// The configured models over `backends` (by name).
    pub fn new(
        config: &LlmConfig,
        backends: &BTreeMap<&'static str, Arc<Backend>>,
        factory: PoolFactory,
    ) -> Self {
        let mut configured = HashMap::new();
        let mut configured_order = Vec::new();
        for (name, model) in &config.models {
            let deployments = model
                .deployments
                .iter()
                .filter_map(|d| {
                    let backend = backends.get(d.backend.as_str())?.clone();
                    let deployment = Deployment {
                        backend,
                        model: d.model.clone().unwrap_or_else(|| name.clone()),
                    };
                    Some((deployment, d.weight, d.priority))
                })
                .collect();
            let served = Arc::new(factory.model(
                intern(name),
                deployments,
                model.max_tokens.unwrap_or(config.max_tokens),
                config.timeouts.with(model.timeouts),
                model.fallbacks.clone(),
                model.aliases.clone(),
            ));
            for alias in std::iter::once(name).chain(&model.aliases) {
                configured.insert(alias.clone(), served.clone());
            }
            configured_order.push(served);
        }
        Self {
            configured,
            configured_order,
            discovered: ArcSwap::from_pointee(BTreeMap::new()),
            factory,
            defaults: (config.max_tokens, config.timeouts),
        }
    }

    /// The model a request names, configured names first.
    pub fn find(&self, name: &str) -> Option<Arc<ServedModel>> {
        if let Some(model) = self.configured.get(name) {
            return Some(model.clone());
        }
        self.discovered
            .load()
            .values()
            .flatten()
            .find(|m| m.name == name)
            .cloned()
    }

    /// Every model served, as `/v1/models` lists them: configured ones,
    /// then discovered ones not shadowed by a configured name.
    pub fn list(&self) -> Vec<Arc<ServedModel>> {
        let mut seen: HashSet<&'static str> = HashSet::new();
        let mut out = Vec::new();
        for model in &self.configured_order {
            seen.insert(model.name);
            out.push(model.clone());
        }
        for model in self.discovered.load().values().flatten() {
            if !self.configured.contains_key(model.name) && seen.insert(model.name) {
                out.push(model.clone());
            }
        }
        out
    }

    /// Replaces what `backend` serves by discovery with `ids` (bounded by
    /// [`MAX_DISCOVERED`]); models still listed keep their state.
    pub fn set_discovered(&self, backend: &Arc<Backend>, ids: &[String]) {
        let current = self.discovered.load();
        let previous: HashMap<&str, &Arc<ServedModel>> = current
            .get(backend.name)
            .map(|models| models.iter().map(|m| (m.name, m)).collect())
            .unwrap_or_default();
        let (max_tokens, timeouts) = self.defaults;
        let models: Vec<Arc<ServedModel>> = ids
            .iter()
            .take(MAX_DISCOVERED)
            .map(|id| match previous.get(id.as_str()) {
                Some(kept) => Arc::clone(kept),
                None => Arc::new(self.factory.model(
                    intern(id),
                    vec![(
                        Deployment {
                            backend: backend.clone(),
                            model: id.clone(),
                        },
                        1,
                        0,
                    )],
                    max_tokens,
                    timeouts,
                    Vec::new(),
                    Vec::new(),
                )),
            })
            .collect();
        let mut next = (**current).clone();
        next.insert(backend.name, models);
        self.discovered.store(Arc::new(next));
    }

    /// Marks every deployment on `backend` healthy or not.
    pub fn set_backend_health(&self, backend: &str, healthy: bool) {
        let discovered = self.discovered.load();
        let models = self
            .configured_order
            .iter()
            .chain(discovered.values().flatten());
        for model in models {
            for endpoint in model.deployments() {
                if endpoint.target.backend.name == backend {
                    endpoint.set_healthy(healthy);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendUrl;
    use crate::config::{BackendConfig, DeploymentConfig, ModelConfig};
    use std::time::Duration;

    fn backend(name: &'static str) -> Arc<Backend> {
        Arc::new(
            Backend::new(
                name,
                BackendUrl::parse("http://127.0.0.1:9/v1").expect("url"),
                None,
                vec![],
                None,
            )
            .expect("backend"),
        )
    }

    fn factory() -> PoolFactory {
        PoolFactory {
            clock: Arc::new(kit::SystemClock),
            failures_to_open: 1,
            open_for: Duration::from_secs(60),
        }
    }

    fn config() -> LlmConfig {
        let mut config = LlmConfig::default();
        for name in ["a", "b"] {
            config.backends.insert(
                name.into(),
                BackendConfig {
                    url: "http://127.0.0.1:9/v1".into(),
                    api_key_env: None,
                    api_key_file: None,
                    headers: Default::default(),
                    ca_file: None,
                    discover: false,
                },
            );
        }
        let deployment = |backend: &str, priority| DeploymentConfig {
            backend: backend.into(),
            model: Some(format!("{backend}-model")),
            weight: 1,
            priority,
        };
        config.models.insert(
            "chat".into(),
            ModelConfig {
                deployments: vec![deployment("a", 0), deployment("b", 1)],
                aliases: vec!["chat-alias".into()],
                ..ModelConfig::default()
            },
        );
        config
    }

    fn catalog() -> Catalog {
        let backends: BTreeMap<&'static str, Arc<Backend>> =
            [("a", backend("a")), ("b", backend("b"))]
                .into_iter()
                .collect();
        Catalog::new(&config(), &backends, factory())
    }

    #[test]
    fn names_and_aliases_find_the_model() {
        let catalog = catalog();
        assert_eq!(catalog.find("chat").map(|m| m.name), Some("chat"));
        assert_eq!(catalog.find("chat-alias").map(|m| m.name), Some("chat"));
        assert!(catalog.find("nope").is_none());
        assert_eq!(catalog.list().len(), 1);
    }

    #[test]
    fn a_lower_priority_serves_only_when_the_first_is_unavailable() {
        let catalog = catalog();
        let model = catalog.find("chat").expect("chat");
        for _ in 0..10 {
            let slot = model.pick(None).expect("a deployment");
            assert_eq!(slot.endpoint().target.model, "a-model");
        }
        catalog.set_backend_health("a", false);
        let slot = model.pick(None).expect("the backup");
        assert_eq!(slot.endpoint().target.model, "b-model");
        catalog.set_backend_health("b", false);
        assert!(model.pick(None).is_none());
        catalog.set_backend_health("a", true);
        assert!(model.pick(None).is_some());
    }

    #[test]
    fn discovery_adds_keeps_and_drops_models() {
        let catalog = catalog();
        let d = backend("d");
        catalog.set_discovered(&d, &["m1".into(), "m2".into(), "chat".into()]);
        let m1 = catalog.find("m1").expect("discovered");
        assert_eq!(m1.pick(None).expect("slot").endpoint().target.model, "m1");
        // A configured name shadows a discovered one.
        let names: Vec<_> = catalog.list().iter().map(|m| m.name).collect();
        assert_eq!(names, ["chat", "m1", "m2"]);
        catalog.set_discovered(&d, &["m1".into()]);
        assert!(Arc::ptr_eq(&m1, &catalog.find("m1").expect("kept")));
        assert!(catalog.find("m2").is_none());
        let many: Vec<String> = (0..MAX_DISCOVERED + 10).map(|i| format!("x{i}")).collect();
        catalog.set_discovered(&d, &many);
        assert_eq!(catalog.list().len(), 1 + MAX_DISCOVERED);
    }

    #[test]
    fn interning_returns_one_copy_per_name() {
        let a = intern("same-name");
        let b = intern(&String::from("same-name"));
        assert!(std::ptr::eq(a, b));
    }
}
