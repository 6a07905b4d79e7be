//! The drill's figures: one JSON object (`--json`) or a table.

use super::probes::{ReadProbes, WriteAccounting};
use serde::Serialize;
use std::fmt::Write;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DrReport {
    /// `sqlite` or `postgres`.
    pub engine: String,
    pub links: u64,
    pub orders: u64,
    pub seed_seconds: f64,
    pub backup: BackupFigures,
    /// Removing the data dir / dropping the module schemas.
    pub destroy_seconds: f64,
    /// Restore, including its verification of every table.
    pub restore_seconds: f64,
    /// Opening the stores and starting the modules on the restored state.
    pub start_seconds: f64,
    /// The read probes and the outbox check.
    pub verify_seconds: f64,
    /// Destroyed -> serving and verified.
    pub rto_seconds: f64,
    pub probes: ReadProbes,
    pub outbox: OutboxCheck,
    pub writes: WriteAccounting,
    /// Every check held.
    pub passed: bool,
    /// What did not (empty when `passed`).
    pub failures: Vec<String>,
}

/// The backup taken while the writers wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupFigures {
    pub seconds: f64,
    pub bytes: u64,
    pub rows: u64,
    pub modules: usize,
    pub mb_per_second: f64,
    pub rows_per_second: f64,
    /// The snapshot point (RFC 3339).
    pub snapshot_at: String,
}

/// The outbox after the restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboxCheck {
    /// Events the backup holds as not yet published.
    pub unpublished_at_restore: i64,
    /// Events the relay published once the modules were back.
    pub published_after_restore: i64,
    /// Events published again although the backup had them published.
    pub replayed: i64,
    /// Whether the relay published everything within the wait.
    pub drained: bool,
}

/// The report as a two-column table with the verdict last.
pub fn table(report: &DrReport) -> String {
    let b = &report.backup;
    let w = &report.writes;
    let rows: Vec<(&str, String)> = vec![
        ("engine", report.engine.clone()),
        (
            "seeded",
            format!(
                "{} links (+1 visit each), {} orders in {:.1} s",
                report.links, report.orders, report.seed_seconds
            ),
        ),
        (
            "backup",
            format!(
                "{} modules, {} rows, {:.1} MB in {:.2} s",
                b.modules,
                b.rows,
                b.bytes as f64 / 1e6,
                b.seconds
            ),
        ),
        (
            "backup throughput",
            format!(
                "{:.1} MB/s, {:.0} rows/s",
                b.mb_per_second, b.rows_per_second
            ),
        ),
        ("destroy", format!("{:.2} s", report.destroy_seconds)),
        (
            "restore + verify",
            format!("{:.2} s", report.restore_seconds),
        ),
        ("start", format!("{:.2} s", report.start_seconds)),
        ("probes + outbox", format!("{:.2} s", report.verify_seconds)),
        ("RTO", format!("{:.2} s", report.rto_seconds)),
        (
            "probes",
            format!(
                "links {}/{} redirect, orders {}/{} readable",
                report.probes.links_ok,
                report.probes.links_checked,
                report.probes.orders_ok,
                report.probes.orders_checked
            ),
        ),
        (
            "outbox",
            format!(
                "{} unpublished at restore, {} published after, {} replayed",
                report.outbox.unpublished_at_restore,
                report.outbox.published_after_restore,
                report.outbox.replayed
            ),
        ),
        (
            "writes",
            format!(
                "{} acknowledged: {} before the snapshot ({} missing), {} after ({} kept, {} lost)",
                w.acknowledged,
                w.before_snapshot,
                w.missing_before_snapshot,
                w.after_snapshot,
                w.after_snapshot_present,
                w.lost
            ),
        ),
        (
            "RPO",
            format!(
                "{} writes, {:.2} s after the snapshot",
                w.lost, w.rpo_seconds
            ),
        ),
        (
            "result",
            if report.passed {
                "passed".to_string()
            } else {
                format!("FAILED: {}", report.failures.join("; "))
            },
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<width$}  {value}");
    }
    out
}
