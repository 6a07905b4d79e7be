//! The OpenAI API on the wire, without a server or a client.
//!
//! The LLM gateway speaks the OpenAI API to its clients and to
//! OpenAI-compatible backends (vLLM, llama.cpp's server, TGI, Ollama). All
//! it must understand of a body is what it routes and accounts by; the
//! rest passes through untouched, so a backend's extensions keep working.
//! This crate is that understanding, pure (no I/O, no async) so that the
//! fuzz targets link it alone:
//!
//! - [`request`]: checks a client's body just enough to route and account
//!   (model, stream, usage option, token limits, `n`, the prompt's size)
//!   and writes the body a backend gets;
//! - [`sse`]: an incremental Server-Sent Events parser fed arbitrary byte
//!   chunks, memory-bounded, as the WHATWG spec parses streams;
//! - [`response`]: the token usage of a backend's answer, streamed or not;
//! - [`error`]: OpenAI's error envelope, as a body and as a stream's last
//!   event.
//!
//! Reference: <https://platform.openai.com/docs/api-reference> and
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
#![forbid(unsafe_code)]

pub mod error;
pub mod request;
pub mod response;
pub mod sse;

pub use error::ApiError;
pub use request::{parse, Endpoint, PromptSize, Request, RequestError};
pub use response::{chunk_usage, response_usage, ChunkInfo, ResponseError, Usage};
pub use sse::{SseError, SseEvent, SseParser};
