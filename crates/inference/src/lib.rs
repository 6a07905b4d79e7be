//! The inference module: KServe's Open Inference Protocol v2 over ONNX
//! models run in-process.
//!
//! - [`store`]: the model store port and its local-directory adapter
//!   (`models/{name}/{version}/model.onnx` + `model.toml`);
//! - [`runtime`]: tract loads and optimizes a model with its serving
//!   signature; [`pool`] runs it off the async workers;
//! - [`batch`]: dynamic batching per version, bounded queues;
//! - [`models`]: the loaded versions, swapped atomically so loads never
//!   fail requests in flight;
//! - [`policy`]: default version, canary split, sticky A/B, shadow;
//! - [`drift`] and [`feedback`]: model quality in production (PSI/KS
//!   against the training reference; live accuracy from feedback);
//! - [`service`] and `http`: the request path and the endpoints.

mod batch;
mod config;
pub mod drift;
pub mod feedback;
mod http;
pub mod manifest;
pub mod metrics;
mod models;
mod module;
pub mod names;
pub mod policy;
mod pool;
pub mod request;
pub mod runtime;
mod service;
mod splits;
pub mod store;

pub use config::InferenceConfig;
pub use http::{REPOSITORY_PREFIX, VERSION_HEADER};
pub use module::Inference;

/// The module's name: its `service` label, config section and env prefix.
pub const SERVICE: &str = "inference";
