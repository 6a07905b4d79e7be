//! The `--out-hist` file as it is on disk: a versioned JSON envelope whose
//! histograms are HdrHistogram's V2 + DEFLATE serialization in base64.
//! docs/tools/load-output.md documents every field.
//!
//! The types here are only the wire shape; [`super::HistRun`] converts to
//! and from the engine's [`Results`](crate::results::Results), so a field
//! renamed in the engine never changes the file silently.

use crate::results::Point;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` field every file carries.
pub const FORMAT: &str = "reliable-load-hist";

/// The version this build writes and reads. A change that an older reader
/// would misread (a field's meaning, the histograms' encoding) bumps it.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistFile {
    pub format: String,
    pub version: u32,
    /// Wall-clock start of the load phase, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The load phase's length as run, microseconds.
    pub elapsed_us: u64,
    pub aborted_by: Option<String>,
    /// How many runs were merged into this one (1 for a run).
    pub agents: u64,
    /// The DAU helper's arithmetic, when the scenario file used it.
    pub dau: Option<String>,
    pub thresholds: Vec<ThresholdEntry>,
    pub setup: Vec<PhaseEntry>,
    pub scenarios: Vec<ScenarioEntry>,
    pub teardown: Vec<PhaseEntry>,
    pub series: Vec<SeriesEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdEntry {
    pub key: String,
    pub expression: String,
    pub abort_on_fail: bool,
    pub delay_abort_eval_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseEntry {
    /// `setup` or `teardown`.
    pub phase: String,
    pub name: String,
    /// Inclusive ranges of the statuses that were not errors.
    pub expect_status: Vec<[u16; 2]>,
    pub stats: StatsEntry,
    pub captured: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEntry {
    pub name: String,
    /// `constant-arrival-rate`, `ramping-arrival-rate` or
    /// `constant-connections`.
    pub executor: String,
    /// Open model: the mean target rate, per second (summed by a merge).
    pub target_rate_per_s: Option<f64>,
    pub connections: u64,
    pub start_us: u64,
    /// The measured window, warmup excluded.
    pub duration_us: u64,
    pub scheduled: u64,
    pub dropped: u64,
    pub requests: Vec<RequestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEntry {
    pub name: String,
    pub expect_status: Vec<[u16; 2]>,
    pub stats: StatsEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsEntry {
    pub sent: u64,
    pub ok: u64,
    pub unexpected_status: u64,
    pub transport_errors: u64,
    pub timeouts: u64,
    pub status_counts: BTreeMap<u16, u64>,
    /// Per check name: `[passed, failed]`.
    pub checks: BTreeMap<String, [u64; 2]>,
    pub skipped_empty_pool: u64,
    pub bytes_received: u64,
    /// Microseconds, 1 us to 60 s, 3 significant digits: base64 of
    /// HdrHistogram's V2 + DEFLATE serialization (`HISTFAAA...`, as Java's
    /// and Go's HdrHistogram read it).
    pub latency: String,
    pub lateness: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesEntry {
    pub scenario: String,
    pub name: String,
    /// Percentiles, not histograms: the per-second charts only, never
    /// the summary's figures.
    pub points: Vec<Point>,
}
