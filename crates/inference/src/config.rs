//! Options of the inference module (the `[inference]` table of the config
//! file, `RELIABLE_INFERENCE_*` in the environment).

use crate::policy::ServingPolicy;
use kit::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// The model repository: a directory laid out as
    /// `{name}/{version}/model.onnx` (+ `model.toml`, `reference.json`).
    /// Relative paths are from the working directory.
    pub repository: PathBuf,
    /// Models loaded at start; empty loads every model in the repository.
    /// Others can be loaded later with the repository API.
    pub models: Vec<String>,
    /// Threads that run models (0: one per CPU). Requests beyond them
    /// queue; the HTTP server never runs a model itself.
    pub workers: usize,
    /// Requests each model version may hold waiting for a batch; beyond it
    /// the answer is 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// Rows per batch when `model.toml` does not say.
    pub default_max_batch_size: usize,
    /// Longest wait for a batch to fill when `model.toml` does not say;
    /// `0s` batches only what is already queued.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub default_max_batch_delay: Duration,
    /// Largest model file read from the repository.
    pub max_model_bytes: u64,
    /// Recent predictions remembered for feedback (`POST
    /// /v2/models/{name}/feedback`), oldest forgotten first.
    pub prediction_memory: usize,
    /// Rows of live traffic compared with each version's drift reference
    /// (a sliding window).
    pub drift_window: usize,
    /// How often drift scores are recomputed and exported.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub drift_interval: Duration,
    /// Serving policies at start, by model name (`[inference.policies.digits]`):
    /// default version, canary split, sticky header, shadow. Changed at
    /// runtime with `PUT /v2/repository/models/{name}/policy`.
    pub policies: BTreeMap<String, ServingPolicy>,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            repository: PathBuf::from("models"),
            models: Vec::new(),
            workers: 0,
            queue_capacity: 1024,
            default_max_batch_size: 32,
            default_max_batch_delay: Duration::ZERO,
            max_model_bytes: 256 * 1024 * 1024,
            prediction_memory: 100_000,
            drift_window: 1000,
            drift_interval: Duration::from_secs(5),
            policies: BTreeMap::new(),
        }
    }
}

impl InferenceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for name in &self.models {
            crate::names::ModelName::parse(name)
                .map_err(|e| ConfigError::invalid("inference.models", format!("{name:?}: {e}")))?;
        }
        for name in self.policies.keys() {
            crate::names::ModelName::parse(name).map_err(|e| {
                ConfigError::invalid("inference.policies", format!("{name:?}: {e}"))
            })?;
        }
        let positive = [
            ("inference.queue_capacity", self.queue_capacity),
            (
                "inference.default_max_batch_size",
                self.default_max_batch_size,
            ),
            ("inference.prediction_memory", self.prediction_memory),
            ("inference.drift_window", self.drift_window),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be above zero"));
            }
        }
        if self.drift_interval.is_zero() {
            return Err(ConfigError::invalid(
                "inference.drift_interval",
                "must be above zero",
            ));
        }
        if self.max_model_bytes == 0 {
            return Err(ConfigError::invalid(
                "inference.max_model_bytes",
                "must be above zero",
            ));
        }
        Ok(())
    }

    /// Compute threads: `workers`, or one per CPU.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}
