//! The loaded models: what serves now, and how versions come and go.
//!
//! The set of loaded versions is one immutable map swapped atomically
//! (`ArcSwap`): a request takes the version it is routed to (an `Arc`) and
//! keeps it to the end, so loading, reloading or unloading never fails a
//! request in flight; the replaced version's batcher drains its queue and
//! ends when the last request holding it is answered. A version that fails
//! to load is recorded with its reason (the repository index shows it) and
//! leaves the other versions and models serving.

use crate::batch::{BatchQueue, Limits};
use crate::drift::{DriftMonitor, Reference};
use crate::manifest::Manifest;
use crate::metrics;
use crate::names::{ModelName, Version};
use crate::pool::ComputePool;
use crate::runtime::Runtime;
use crate::store::{ModelStore, RepositoryError};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use kit::changes::{ChangeEvent, ChangeKind, ChangeRecorder};
use oip::{Datatype, RepositoryModel};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// One loaded model version.
pub struct LoadedVersion {
    pub name: ModelName,
    pub version: Version,
    pub runtime: Arc<Runtime>,
    pub manifest: Manifest,
    /// sha256 of `model.onnx`, hex.
    pub sha256: String,
    pub loaded_at: DateTime<Utc>,
    pub max_batch_size: usize,
    pub max_batch_delay: Duration,
    pub queue: BatchQueue,
    /// The output that holds each row's predicted class, if any: the first
    /// integer or BYTES output of shape `[-1]`.
    pub class_output: Option<usize>,
    pub drift: Option<Arc<DriftMonitor>>,
    /// `version` as a metric label and a protocol string.
    pub version_label: String,
    /// `NAME:VERSION`: the `model` label of its CPU cost.
    pub cost_label: Arc<str>,
    /// Bytes of the plan's constant tensors (the weights as loaded).
    pub weight_bytes: u64,
}

impl LoadedVersion {
    /// Where a request's share of a batch's CPU goes.
    pub fn charge_to(&self, route: Arc<str>) -> kit::cpu_cost::ChargeTo {
        kit::cpu_cost::ChargeTo {
            module: crate::SERVICE,
            route,
            model: Some(self.cost_label.clone()),
        }
    }

    /// The predicted class of each row, from the class output of `outputs`
    /// (as a label when `labels` names it), and its index when numeric.
    pub fn classes(
        &self,
        outputs: &[(Vec<usize>, oip::TensorData)],
    ) -> Vec<(String, Option<usize>)> {
        let Some((_, data)) = self.class_output.and_then(|i| outputs.get(i)) else {
            return Vec::new();
        };
        let labels = &self.manifest.labels;
        let by_index = |i: i64| {
            let index = usize::try_from(i).ok();
            let label = index
                .and_then(|i| labels.get(i).cloned())
                .unwrap_or_else(|| i.to_string());
            (label, index)
        };
        match data {
            oip::TensorData::Int64(v) => v.iter().map(|&i| by_index(i)).collect(),
            oip::TensorData::Int32(v) => v.iter().map(|&i| by_index(i.into())).collect(),
            oip::TensorData::Bytes(v) => v
                .iter()
                .map(|s| (s.clone(), labels.iter().position(|l| l == s)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The loaded versions of one model.
pub struct Model {
    pub name: ModelName,
    pub versions: BTreeMap<Version, Arc<LoadedVersion>>,
}

impl Model {
    pub fn version_numbers(&self) -> Vec<u64> {
        self.versions.keys().map(|v| v.get()).collect()
    }
}

/// Defaults for what `model.toml` does not say.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    pub default_max_batch_size: usize,
    pub default_max_batch_delay: Duration,
    pub queue_capacity: usize,
    pub drift_window: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] RepositoryError),
    #[error("no version of model {name} could be loaded: {reasons}")]
    Failed { name: String, reasons: String },
}

#[derive(Debug, thiserror::Error)]
#[error("model {0} is not loaded")]
pub struct NotLoaded(pub String);

/// The loaded models and the repository they come from.
pub struct Models {
    store: Arc<dyn ModelStore>,
    loaded: ArcSwap<BTreeMap<String, Arc<Model>>>,
    failures: Mutex<BTreeMap<(String, u64), String>>,
    pool: Arc<ComputePool>,
    tasks: TaskTracker,
    settings: LoadSettings,
    /// Loads and unloads one at a time.
    changing: tokio::sync::Mutex<()>,
    /// The platform's change timeline: versions loaded and unloaded.
    changes: std::sync::RwLock<ChangeRecorder>,
    /// `reliable_memory_bytes{component="model_weights"}`: the loaded
    /// versions' weights, set on every load and unload.
    weights: kit::memory::MemoryGauge,
}

impl Models {
    pub fn new(
        store: Arc<dyn ModelStore>,
        pool: Arc<ComputePool>,
        tasks: TaskTracker,
        settings: LoadSettings,
    ) -> Self {
        Self {
            store,
            loaded: ArcSwap::from_pointee(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            pool,
            tasks,
            settings,
            changing: tokio::sync::Mutex::new(()),
            changes: std::sync::RwLock::new(ChangeRecorder::discard()),
            weights: kit::memory::gauge(crate::SERVICE, "model_weights"),
        }
    }

    /// Swaps in the loaded set and sets the weights' memory figure.
    fn publish(&self, map: BTreeMap<String, Arc<Model>>) {
        let bytes = map
            .values()
            .flat_map(|m| m.versions.values())
            .map(|v| v.weight_bytes)
            .sum();
        self.loaded.store(Arc::new(map));
        self.weights.set(bytes);
    }

    /// Records versions loaded and unloaded on the platform's change
    /// timeline from now on (`ChangeRecorder::from_ports` in the module).
    pub fn record_changes(&self, recorder: ChangeRecorder) {
        *self.changes.write().unwrap_or_else(|e| e.into_inner()) = recorder;
    }

    fn note(&self, kind: ChangeKind, actor: &str, version: &LoadedVersion, summary: String) {
        let recorder = self
            .changes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        recorder.record(ChangeEvent::new(
            Utc::now(),
            kind,
            crate::SERVICE,
            actor,
            format!("{}/{}", version.name, version.version_label),
            summary,
        ));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.loaded.load().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Model>> {
        self.loaded.load().values().cloned().collect()
    }

    /// Loads (or reloads) every version of `name` found in the store.
    /// Versions whose file did not change stay as they are. Returns the
    /// versions now loaded. Each version loaded, reloaded (new file) or
    /// gone from the store is recorded on the change timeline, by `actor`.
    pub async fn load(&self, name: &ModelName, actor: &str) -> Result<Vec<u64>, LoadError> {
        let _one_at_a_time = self.changing.lock().await;
        let on_disk = self.store.versions(name).await?;
        let current = self.get(name.as_str());
        let mut versions = BTreeMap::new();
        let mut reasons = Vec::new();
        for version in on_disk {
            let kept = current
                .as_ref()
                .and_then(|m| m.versions.get(&version))
                .cloned();
            match self.load_version(name, version, kept).await {
                Ok(loaded) => {
                    self.failures_mut()
                        .remove(&(name.to_string(), version.get()));
                    versions.insert(version, loaded);
                }
                Err(reason) => {
                    tracing::error!(model = %name, version = version.get(), error = %reason, "model version failed to load");
                    ::metrics::counter!(metrics::MODEL_LOADS, "model" => name.to_string(), "outcome" => "failed").increment(1);
                    reasons.push(format!("version {version}: {reason}"));
                    self.failures_mut()
                        .insert((name.to_string(), version.get()), reason);
                }
            }
        }
        if versions.is_empty() {
            return Err(LoadError::Failed {
                name: name.to_string(),
                reasons: if reasons.is_empty() {
                    "it has no version directories".to_string()
                } else {
                    reasons.join("; ")
                },
            });
        }
        let numbers = versions.keys().map(|v| v.get()).collect();
        let model = Arc::new(Model {
            name: name.clone(),
            versions,
        });
        let mut map = BTreeMap::clone(&self.loaded.load());
        map.insert(name.to_string(), model.clone());
        self.publish(map);
        let before = current.as_ref().map(|m| &m.versions);
        for (number, version) in &model.versions {
            let previous = before.and_then(|v| v.get(number));
            if previous.is_some_and(|p| Arc::ptr_eq(p, version)) {
                continue;
            }
            let verb = if previous.is_some() {
                "reloaded"
            } else {
                "loaded"
            };
            let sha = version.sha256.get(..12).unwrap_or(&version.sha256);
            self.note(
                ChangeKind::ModelLoaded,
                actor,
                version,
                format!("model {name} version {number} {verb} (sha256 {sha}…)"),
            );
        }
        for (number, version) in before.into_iter().flatten() {
            if !model.versions.contains_key(number) {
                self.note(
                    ChangeKind::ModelUnloaded,
                    actor,
                    version,
                    format!("model {name} version {number} unloaded: gone from the repository"),
                );
            }
        }
        Ok(numbers)
    }

    /// Stops serving `name`; requests in flight finish. Recorded on the
    /// change timeline, by `actor`.
    pub async fn unload(&self, name: &ModelName, actor: &str) -> Result<(), NotLoaded> {
        let _one_at_a_time = self.changing.lock().await;
        let mut map = BTreeMap::clone(&self.loaded.load());
        let Some(model) = map.remove(name.as_str()) else {
            return Err(NotLoaded(name.to_string()));
        };
        self.publish(map);
        tracing::info!(model = %name, "model unloaded");
        for (number, version) in &model.versions {
            self.note(
                ChangeKind::ModelUnloaded,
                actor,
                version,
                format!("model {name} version {number} unloaded"),
            );
        }
        Ok(())
    }

    /// Drops every model (at shutdown), so their batchers can end.
    pub fn unload_all(&self) {
        self.publish(BTreeMap::new());
    }

    /// Every version in the store with its state: `READY`, `UNAVAILABLE`
    /// (not loaded) or `FAILED` (with the load error).
    pub async fn index(&self) -> Result<Vec<RepositoryModel>, RepositoryError> {
        let listed = self.store.list().await?;
        let loaded = self.loaded.load();
        let failures = self.failures_mut().clone();
        let mut index = Vec::new();
        for (name, versions) in listed {
            for version in versions {
                let ready = loaded
                    .get(name.as_str())
                    .is_some_and(|m| m.versions.contains_key(&version));
                let failure = failures.get(&(name.to_string(), version.get()));
                let (state, reason) = match (ready, failure) {
                    (true, _) => ("READY", String::new()),
                    (false, Some(reason)) => ("FAILED", reason.clone()),
                    (false, None) => ("UNAVAILABLE", "not loaded".to_string()),
                };
                index.push(RepositoryModel {
                    name: name.to_string(),
                    version: version.to_string(),
                    state: state.to_string(),
                    reason,
                });
            }
        }
        Ok(index)
    }

    fn failures_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), String>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn load_version(
        &self,
        name: &ModelName,
        version: Version,
        current: Option<Arc<LoadedVersion>>,
    ) -> Result<Arc<LoadedVersion>, String> {
        let files = self
            .store
            .read(name, version)
            .await
            .map_err(|e| e.to_string())?;
        let sha256 = hex::encode(Sha256::digest(&files.onnx));
        if let Some(current) = current.filter(|c| c.sha256 == sha256) {
            return Ok(current);
        }
        let manifest = match &files.manifest {
            Some(text) => Manifest::parse(text).map_err(|e| e.to_string())?,
            None => Manifest::default(),
        };
        let reference = match &files.reference {
            Some(text) => {
                let reference: Reference =
                    serde_json::from_str(text).map_err(|e| format!("reference.json: {e}"))?;
                Some(reference)
            }
            None => None,
        };
        let onnx = files.onnx;
        let signature = manifest.clone();
        let runtime = tokio::task::spawn_blocking(move || Runtime::load(&onnx, &signature))
            .await
            .map_err(|e| format!("loading panicked: {e}"))?
            .map_err(|e| e.to_string())?;
        let runtime = Arc::new(runtime);
        let version_label = version.to_string();
        let drift = match reference {
            Some(reference) => Some(Arc::new(
                DriftMonitor::new(
                    name.as_str(),
                    version.get(),
                    reference,
                    self.settings.drift_window,
                )
                .map_err(|e| format!("reference.json: {e}"))?,
            )),
            None => None,
        };
        let class_output = runtime.outputs.iter().position(|o| {
            o.shape == [-1]
                && matches!(
                    o.datatype,
                    Datatype::Int64 | Datatype::Int32 | Datatype::Bytes
                )
        });
        let max_batch_size = manifest
            .max_batch_size
            .unwrap_or(self.settings.default_max_batch_size);
        let max_batch_delay = manifest
            .max_batch_delay
            .unwrap_or(self.settings.default_max_batch_delay);
        let limits = Limits {
            max_batch_size,
            max_batch_delay,
            queue_capacity: self.settings.queue_capacity,
        };
        let batch_histogram = ::metrics::histogram!(
            metrics::BATCH_SIZE,
            "model" => name.to_string(),
            "version" => version_label.clone()
        );
        let observe = Arc::new(move |rows: usize| batch_histogram.record(rows as f64));
        let (queue, batcher) =
            BatchQueue::start(runtime.clone(), self.pool.clone(), limits, observe);
        self.tasks.spawn(batcher);
        ::metrics::counter!(metrics::MODEL_LOADS, "model" => name.to_string(), "outcome" => "loaded").increment(1);
        tracing::info!(model = %name, version = version.get(), sha256 = %sha256, "model version loaded");
        let weight_bytes = runtime.weight_bytes();
        Ok(Arc::new(LoadedVersion {
            name: name.clone(),
            version,
            runtime,
            manifest,
            sha256,
            loaded_at: Utc::now(),
            max_batch_size,
            max_batch_delay,
            queue,
            class_output,
            drift,
            cost_label: format!("{name}:{version_label}").into(),
            weight_bytes,
            version_label,
        }))
    }
}
