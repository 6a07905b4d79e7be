//! Drills: the platform's safety nets exercised for real, inside one
//! process, and measured from the outside.
//!
//! - [`canary`]: bad, good, slightly worse and interrupted canaries under
//!   load, each judged by the real controller (`reliable drill canary`);
//! - [`fault`]: the bad version, made bad on purpose, which also records
//!   when it first misbehaved and how many requests it touched.
#![forbid(unsafe_code)]

pub mod canary;
pub mod fault;
pub mod outage;
