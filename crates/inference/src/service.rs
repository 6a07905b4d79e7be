//! What an infer request goes through, without HTTP: find the model, pick
//! the version (pinned, or by the serving policy), check the request
//! against that version's signature, queue it for a batch, then record
//! what it predicted (metrics, drift, the feedback memory) and mirror it to
//! a shadow version when the policy says so.

use crate::batch::BatchError;
use crate::feedback::PredictionMemory;
use crate::metrics;
use crate::models::{LoadedVersion, Model, Models};
use crate::names::{ModelName, Version};
use crate::policy::Policies;
use crate::request::{self, RequestError};
use oip::{InferRequest, InferResponse, ResponseOutput, TensorData};
use rand::Rng;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::task::TaskTracker;

/// Everything the endpoints share.
pub struct Service {
    pub models: Models,
    pub policies: Policies,
    pub memory: PredictionMemory,
    /// Shadow requests in flight, waited for at shutdown.
    pub shadows: TaskTracker,
    /// The models loaded at start: not ready while one is missing.
    pub expected: Vec<String>,
    pub stopping: std::sync::atomic::AtomicBool,
}

/// Why an infer request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{0}")]
    BadName(String),
    #[error("model {0} is not loaded")]
    UnknownModel(String),
    #[error("model {0} has no loaded version {1}")]
    UnknownVersion(String, String),
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    #[error("model {0} version {1} is busy: its queue is full")]
    QueueFull(String, u64),
    #[error("model {0} version {1} was unloaded")]
    NotReady(String, u64),
    #[error("model {0} version {1} failed: {2}")]
    Runtime(String, u64, String),
}

impl InferError {
    /// The `kind` label of `inference_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            InferError::BadName(_) | InferError::BadRequest(_) => "bad_input",
            InferError::UnknownModel(_) | InferError::UnknownVersion(..) => "not_found",
            InferError::QueueFull(..) => "queue_full",
            InferError::NotReady(..) => "unloaded",
            InferError::Runtime(..) => "runtime",
        }
    }
}

/// How the caller chose a version.
pub enum Pin<'a> {
    /// `/versions/{v}` in the path.
    Path(&'a str),
    /// The `X-Model-Version` header.
    Header(&'a str),
    /// Neither: the serving policy decides.
    Policy {
        /// The value of the policy's sticky header, if sent.
        sticky: Option<&'a [u8]>,
    },
}

impl Service {
    /// Models loaded at start that are not loaded now.
    pub fn missing_models(&self) -> Vec<String> {
        self.expected
            .iter()
            .filter(|n| self.models.get(n).is_none())
            .cloned()
            .collect()
    }

    /// The protocol's readiness: not stopping, every start model loaded.
    pub fn ready(&self) -> bool {
        !self.stopping.load(std::sync::atomic::Ordering::Relaxed)
            && self.missing_models().is_empty()
    }

    /// The model named `raw`, if loaded.
    pub fn model(&self, raw: &str) -> Result<Arc<Model>, InferError> {
        let name = ModelName::parse(raw).map_err(|e| InferError::BadName(e.to_string()))?;
        self.models
            .get(name.as_str())
            .ok_or_else(|| InferError::UnknownModel(name.to_string()))
    }

    /// The version a pinned or unpinned request goes to.
    pub fn pick(&self, model: &Model, pin: Pin<'_>) -> Result<Arc<LoadedVersion>, InferError> {
        let pinned = |raw: &str| -> Result<Arc<LoadedVersion>, InferError> {
            let unknown = || {
                InferError::UnknownVersion(model.name.to_string(), raw.chars().take(20).collect())
            };
            let version: Version = raw.parse().map_err(|_| {
                InferError::BadName(format!(
                    "version {:?} is not a positive integer",
                    raw.chars().take(20).collect::<String>()
                ))
            })?;
            model.versions.get(&version).cloned().ok_or_else(unknown)
        };
        match pin {
            Pin::Path(raw) | Pin::Header(raw) => pinned(raw),
            Pin::Policy { sticky } => {
                let loaded = model.version_numbers();
                let policy = self.policies.get(model.name.as_str());
                let roll: f64 = rand::rng().random();
                let chosen = policy.route(&loaded, sticky, roll);
                let version = Version::new(chosen)
                    .ok()
                    .and_then(|v| model.versions.get(&v))
                    .or_else(|| model.versions.values().next_back())
                    .cloned();
                version.ok_or_else(|| InferError::UnknownModel(model.name.to_string()))
            }
        }
    }

    /// Serves one infer request on `version`; its batch's CPU is charged
    /// to `route` (the request's route template) and the version.
    pub async fn infer(
        self: &Arc<Self>,
        model: &Model,
        version: Arc<LoadedVersion>,
        request: InferRequest,
        route: Option<Arc<str>>,
    ) -> Result<InferResponse, InferError> {
        let started = Instant::now();
        let labels = [
            ("model", model.name.to_string()),
            ("version", version.version_label.clone()),
        ];
        let result = self.infer_on(model, &version, request, route).await;
        match &result {
            Ok(_) => {
                ::metrics::histogram!(metrics::REQUEST_DURATION, &labels)
                    .record(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                let mut labels = labels.to_vec();
                labels.push(("kind", e.kind().to_string()));
                ::metrics::counter!(metrics::ERRORS, &labels).increment(1);
            }
        }
        result
    }

    async fn infer_on(
        self: &Arc<Self>,
        model: &Model,
        version: &Arc<LoadedVersion>,
        request: InferRequest,
        route: Option<Arc<str>>,
    ) -> Result<InferResponse, InferError> {
        let id = request
            .id
            .clone()
            .unwrap_or_else(|| hex::encode(rand::rng().random::<[u8; 12]>()));
        let parameters = request.parameters.clone();
        let runtime = &version.runtime;
        let prepared = request::prepare(
            request,
            &runtime.inputs,
            &runtime.outputs,
            runtime.batched(),
            version.max_batch_size,
        )?;
        let wanted = prepared.outputs.clone();
        let rows = prepared.rows;
        // The features the drift monitor compares: the first input, when
        // it is a float matrix.
        let features = match (&version.drift, prepared.inputs.first()) {
            (Some(_), Some(TensorData::Fp32(values))) => Some(values.clone()),
            _ => None,
        };
        let policy = self.policies.get(model.name.as_str());
        let shadow = policy
            .shadow_target(version.version.get(), rand::rng().random())
            .and_then(|v| Version::new(v).ok())
            .and_then(|v| model.versions.get(&v).cloned())
            .map(|shadow| (shadow, prepared.clone()));
        let charge = route.clone().map(|route| version.charge_to(route));
        let answer = version
            .queue
            .infer(prepared, charge)
            .await
            .map_err(|e| match e {
                BatchError::QueueFull => {
                    InferError::QueueFull(model.name.to_string(), version.version.get())
                }
                BatchError::Stopped => {
                    InferError::NotReady(model.name.to_string(), version.version.get())
                }
                BatchError::Run(reason) => {
                    InferError::Runtime(model.name.to_string(), version.version.get(), reason)
                }
            })?;
        let labels = [
            ("model", model.name.to_string()),
            ("version", version.version_label.clone()),
        ];
        ::metrics::histogram!(metrics::QUEUE_DURATION, &labels).record(answer.queued.as_secs_f64());
        ::metrics::histogram!(metrics::COMPUTE_DURATION, &labels)
            .record(answer.compute.as_secs_f64());
        let classes = version.classes(&answer.outputs);
        for (label, index) in &classes {
            let class = if index.is_some_and(|i| i < metrics::MAX_CLASS_LABELS) {
                label.clone()
            } else {
                "other".to_string()
            };
            ::metrics::counter!(
                metrics::PREDICTIONS,
                "model" => model.name.to_string(),
                "version" => version.version_label.clone(),
                "class" => class
            )
            .increment(1);
        }
        if let (Some(drift), Some(features)) = (&version.drift, features) {
            let indices: Vec<usize> = classes.iter().filter_map(|(_, i)| *i).collect();
            drift.observe(&features, &indices);
        }
        if let Some((label, _)) = classes.first() {
            self.memory
                .remember(&id, model.name.as_str(), version.version.get(), label);
        }
        if let Some((shadow, mirrored)) = shadow {
            self.mirror(
                shadow,
                mirrored,
                classes.iter().map(|(l, _)| l.clone()).collect(),
                route,
            );
        }
        let mut outputs: Vec<Option<(Vec<usize>, TensorData)>> =
            answer.outputs.into_iter().map(Some).collect();
        let mut response_outputs = Vec::with_capacity(wanted.len());
        for index in wanted {
            let spec = &runtime.outputs[index];
            let Some((shape, data)) = outputs.get_mut(index).and_then(Option::take) else {
                continue;
            };
            response_outputs.push(ResponseOutput {
                name: spec.name.clone(),
                shape: shape.iter().map(|&d| d as u64).collect(),
                datatype: data.datatype(),
                parameters: None,
                data,
            });
        }
        debug_assert!(rows > 0);
        Ok(InferResponse {
            model_name: model.name.to_string(),
            model_version: version.version_label.clone(),
            id: Some(id),
            parameters,
            outputs: response_outputs,
        })
    }

    /// Sends a copy to the shadow version in the background: its answer
    /// is compared with the primary's classes and dropped. Its batch's CPU
    /// goes to the primary's route, under the shadow version's label.
    fn mirror(
        &self,
        shadow: Arc<LoadedVersion>,
        request: request::Prepared,
        primary: Vec<String>,
        route: Option<Arc<str>>,
    ) {
        let charge = route.map(|route| shadow.charge_to(route));
        self.shadows.spawn(async move {
            let started = Instant::now();
            let outcome = match shadow.queue.infer(request, charge).await {
                Ok(answer) => {
                    let mirrored: Vec<String> = shadow
                        .classes(&answer.outputs)
                        .into_iter()
                        .map(|(l, _)| l)
                        .collect();
                    ::metrics::histogram!(
                        metrics::SHADOW_DURATION,
                        "model" => shadow.name.to_string(),
                        "version" => shadow.version_label.clone()
                    )
                    .record(started.elapsed().as_secs_f64());
                    if mirrored == primary {
                        "agree"
                    } else {
                        "disagree"
                    }
                }
                Err(BatchError::QueueFull) => "dropped",
                Err(_) => "error",
            };
            ::metrics::counter!(
                metrics::SHADOW,
                "model" => shadow.name.to_string(),
                "version" => shadow.version_label.clone(),
                "outcome" => outcome
            )
            .increment(1);
        });
    }
}
