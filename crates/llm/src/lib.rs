//! The LLM gateway module: OpenAI-compatible in and out, in front of any
//! number of OpenAI-compatible backends (vLLM, llama.cpp's server, TGI,
//! Ollama, hosted APIs).
//!
//! - [`usage`]: the usage ledger, per key, model and backend, on SQLite or
//!   PostgreSQL, so a restart loses no accounting.
#![forbid(unsafe_code)]

pub mod usage;

/// The module's name: its `service` label, config section and schema.
pub const SERVICE: &str = "llm";
