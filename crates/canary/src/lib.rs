//! Progressive delivery for Reliable: decide within seconds whether a
//! canary is worse than the version it replaces.
//!
//! - [`judge`]: the statistics. Canary and baseline are compared over the
//!   same time window, metric by metric (error proportions, latency
//!   distributions), with a significance test *and* a minimum effect, then
//!   scored Kayenta-style into one verdict; an SLO guard stops a canary
//!   that would page on its own.
#![forbid(unsafe_code)]

pub mod judge;
