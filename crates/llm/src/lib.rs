//! The LLM gateway module: OpenAI-compatible in and out, in front of any
//! number of OpenAI-compatible backends (vLLM, llama.cpp's server, TGI,
//! Ollama, hosted APIs).
//!
//! A request goes through, in order:
//! - [`service`]: the key the gateway named, the body parsed just enough
//!   to route and account (the `openai` crate), the model found in the
//!   [`catalog`], and [`admission`] against the key's limits;
//! - [`forward`]: a deployment picked (least outstanding requests by
//!   weight, by priority), called through the shared `resilience` client,
//!   and on a failure before the first token the next deployment or
//!   fallback model, within a shared retry budget;
//! - [`relay`]: a stream forwarded event by event with backpressure,
//!   cancelled with its client, ended by an error event if the backend
//!   fails;
//! - [`settle`]: metrics, the key's limits charged with the backend's
//!   reported usage, and the [`usage`] ledger written.
//!
//! [`discovery`] health-checks the backends and lists the models of those
//! that serve what they list; [`config`] is the `[llm]` section; [`error`]
//! the OpenAI error envelope of every refusal.
#![forbid(unsafe_code)]

pub mod admission;
pub mod backend;
pub mod catalog;
pub mod config;
pub mod discovery;
pub mod error;
mod forward;
mod http;
mod metrics;
mod module;
mod relay;
mod service;
mod settle;
pub mod usage;

pub use config::LlmConfig;
pub use module::Llm;

/// The module's name: its `service` label, config section and schema.
pub const SERVICE: &str = "llm";
