//! The fault proxy: see the crate docs.
