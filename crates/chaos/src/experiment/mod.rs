//! `reliable chaos run EXPERIMENT.yaml`: Chaos Toolkit's experiment model.
//!
//! An experiment states what "working" means as a **steady-state
//! hypothesis** (probes, each with a tolerance), does something nasty in
//! its **method** (add a toxic to the fault proxy, kill a process, fill a
//! disk), and always undoes it in its **rollbacks**. The hypothesis is
//! checked before the method (is the system healthy to begin with?),
//! continuously during it (every `interval`), and after it (within
//! `after_within`, for properties that converge, such as notifications
//! catching up). A probe outside its tolerance is a **deviation**: the
//! run stops the method, runs the rollbacks and exits 1 with the evidence
//! (each probe's value against its tolerance, and when).
//!
//! Modules:
//! - `model`, `kinds`, `schema`: the experiment and the file's types
//!   (serde + JSON Schema; their `///` docs are the user documentation);
//! - `parse`: YAML through `yamlspec` (line numbers), `${var}`
//!   substitution (`vars`), dispatch of probes and actions by `type`;
//! - `tolerance`: a value against its bounds;
//! - `probes`, `actions`: what each `type` does; actions reach the fault
//!   proxy only through toxiproxy's HTTP API, so an experiment also runs
//!   against a real toxiproxy; `pids`: which process a pid file (maybe
//!   named through a value read over HTTP) means, and whether it still runs;
//! - `background`: the `load` section, `reliable load`'s engine running
//!   for the whole experiment, read window by window;
//! - `runner`: the phases, pauses, continuous checks, rollbacks, Ctrl-C;
//! - `journal`: what happened, for people and (`--json`) machines.

mod actions;
mod background;
mod checks;
mod journal;
mod kinds;
mod model;
mod parse;
mod pids;
mod probes;
mod prometheus;
mod runner;
mod schema;
mod tolerance;
mod vars;

#[cfg(test)]
mod tests;

pub use journal::{Journal, Status};
pub use model::Experiment;
pub use parse::{parse, parse_with_env, ExperimentError};
pub use runner::{run, RunOptions};
pub use schema::json_schema;

/// Exit codes of `reliable chaos run`.
pub mod exit {
    /// The hypothesis held before, during and after the method.
    pub const OK: u8 = 0;
    /// A probe left its tolerance (the evidence says which, and when).
    pub const DEVIATED: u8 = 1;
    /// The file, a `--var` or a flag is invalid; nothing ran.
    pub const BAD_INPUT: u8 = 2;
    /// An action failed, so the hypothesis could not be tested; rollbacks
    /// ran.
    pub const ABORTED: u8 = 3;
    /// Interrupted (Ctrl-C / SIGTERM); rollbacks ran.
    pub const INTERRUPTED: u8 = 130;
}
