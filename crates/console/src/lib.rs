//! The operator console: the picture a newcomer gets in the first minute
//! of `reliable up`, served on its own listener (`console_listen`).
//!
//! - [`sources`]: what the console shows and the traits the binary
//!   implements over the running platform (tests use fakes).
#![forbid(unsafe_code)]

pub mod sources;
