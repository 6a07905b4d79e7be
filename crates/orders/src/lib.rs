//! The orders module.
#![forbid(unsafe_code)]

pub mod domain;
pub mod storage;
