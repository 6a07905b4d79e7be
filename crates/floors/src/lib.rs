//! The floors of the data path's benchmarks, as examples of this crate
//! (`examples/reference_proxy.rs`, `examples/reference_redirect.rs`): the
//! same HTTP stacks as the gateway and the shortener with none of their
//! work. They live here, not beside the crates they measure, because an
//! example builds with its crate's dev-dependencies, and those turn on
//! tokio's `test-util` (see `Cargo.toml`). docs/performance.md has the
//! figures.
#![forbid(unsafe_code)]
