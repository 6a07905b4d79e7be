//! Drills: the platform's safety nets exercised for real, inside one
//! process, and measured from the outside.
//!
//! - [`canary`]: bad, good, slightly worse and interrupted canaries under
//!   load, each judged by the real controller (`reliable drill canary`);
//! - [`outage`]: the game day (`reliable drill outage`): faults under
//!   load, and the time the live evaluator's rules take to page and to
//!   resolve, on a simulated clock;
//! - [`dr`]: the disaster-recovery drill (`reliable drill dr`): seed,
//!   back up under writes, destroy, restore, verify; RTO and RPO measured;
//! - [`fault`]: the bad version, made bad on purpose, which also records
//!   when it first misbehaved and how many requests it touched; and the
//!   fault switch a drill arms and disarms.
#![forbid(unsafe_code)]

pub mod canary;
pub mod dr;
pub mod fault;
pub mod outage;
