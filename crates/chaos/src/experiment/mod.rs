//! Chaos experiments: see the crate docs.
