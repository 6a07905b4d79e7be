//! The pg-failover drill's measurements and table: the write prober
//! (a link created every 20 ms for the whole run), the write
//! unavailability and time to recover computed from it, and the figures
//! read from the experiment's journal.

use super::Options;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the run did: the exit code, the journal and the table's figures.
pub struct Report {
    pub code: i32,
    pub journal: Value,
    pub stderr: String,
    pub requested: f64,
    pub acknowledged: f64,
    pub in_database: f64,
    pub lost: f64,
    pub duplicated_events: f64,
    pub duplicate_deliveries: f64,
    pub redirect_error_rate: f64,
    /// Longest time between two acknowledged writes' answers with a
    /// failure in between, ms.
    pub unavailable_ms: u64,
    /// From the SIGKILL to the answer of the first acknowledged write
    /// sent after it, ms.
    pub recovered_ms: Option<u64>,
}

impl Report {
    pub fn deviated_probes(&self) -> Vec<String> {
        self.journal["deviations"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|r| r["probe"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "exit {}; deviations {}; error {}; stderr:\n{}",
            self.code, self.journal["deviations"], self.journal["error"], self.stderr
        )
    }

    /// The drill's table row (docs/operations/postgres.md).
    pub fn row(&self, options: Options) -> String {
        format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}% | {} ms | {} |",
            if options.synchronous { "synchronous" } else { "asynchronous" },
            if options.stall { "yes" } else { "no" },
            self.code,
            self.requested,
            self.requested - self.acknowledged,
            self.acknowledged,
            self.in_database,
            self.lost,
            self.duplicated_events,
            self.duplicate_deliveries,
            self.redirect_error_rate * 100.0,
            self.unavailable_ms,
            self.recovered_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms")),
        )
    }
}

pub const TABLE_HEADER: &str = "| replication | stall | exit | orders requested | failed | acknowledged | in database | lost | duplicated events | duplicate deliveries | redirect errors | write unavailability | time to recover |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One probe write: when it was sent and answered (Unix ms), and whether
/// it was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Write {
    sent: u64,
    answered: u64,
    ok: bool,
}

/// Creates a link every 20 ms until stopped.
pub struct WriteProber {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<Write>>,
}

impl WriteProber {
    pub fn start(target: String) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client");
            let writes = Arc::new(Mutex::new(Vec::new()));
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n = 0u64;
            let mut inflight = tokio::task::JoinSet::new();
            while !token.is_cancelled() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = token.cancelled() => break,
                }
                n += 1;
                let (http, target, writes) = (http.clone(), target.clone(), writes.clone());
                inflight.spawn(async move {
                    let sent = unix_ms();
                    let ok = http
                        .post(format!("{target}/api/v1/links"))
                        .json(
                            &json!({"url": "https://example.com/probe", "slug": format!("w-{n}")}),
                        )
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 201);
                    let write = Write {
                        sent,
                        answered: unix_ms(),
                        ok,
                    };
                    writes.lock().expect("writes").push(write);
                });
            }
            while inflight.join_next().await.is_some() {}
            let mut writes = std::mem::take(&mut *writes.lock().expect("writes"));
            writes.sort_unstable();
            writes
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Vec<Write> {
        self.stop.cancel();
        self.task.await.expect("prober")
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The longest time between the answers of two acknowledged writes with
/// a failed answer in between.
fn unavailability(writes: &[Write]) -> u64 {
    let mut answers: Vec<(u64, bool)> = writes.iter().map(|w| (w.answered, w.ok)).collect();
    answers.sort_unstable();
    let mut longest = 0;
    let mut last_ok: Option<u64> = None;
    let mut failed_since = false;
    for (at, ok) in answers {
        if ok {
            if let (Some(previous), true) = (last_ok, failed_since) {
                longest = longest.max(at - previous);
            }
            last_ok = Some(at);
            failed_since = false;
        } else {
            failed_since = true;
        }
    }
    longest
}

/// From the SIGKILL (its journal activity) to the answer of the first
/// acknowledged write sent after it.
pub fn recovery(journal: &Value, writes: &[Write]) -> Option<u64> {
    let start = journal["started_unix_ms"].as_u64()?;
    let killed_s = journal["activities"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == "SIGKILL the primary")?["started_s"]
        .as_f64()?;
    let killed = start + (killed_s * 1000.0) as u64;
    writes
        .iter()
        .filter(|w| w.ok && w.sent >= killed)
        .map(|w| w.answered - killed)
        .min()
}

/// The value of `probe` in the last check (the after-check).
fn last_reading(journal: &Value, probe: &str) -> f64 {
    journal["checks"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["readings"].as_array())
        .and_then(|r| r.iter().find(|r| r["probe"] == probe))
        .and_then(|r| r["value"].as_f64())
        .unwrap_or(f64::NAN)
}

pub fn report_of(code: i32, journal: Value, stderr: String, writes: &[Write]) -> Report {
    let in_db_minus_acked = last_reading(&journal, "none-lost");
    Report {
        code,
        requested: last_reading(&journal, "orders-requested"),
        acknowledged: last_reading(&journal, "orders-acknowledged"),
        in_database: last_reading(&journal, "orders-in-database"),
        // Acknowledged orders missing from the promoted database (at
        // least: an order committed whose answer was lost counts the
        // other way).
        lost: if in_db_minus_acked < 0.0 {
            -in_db_minus_acked
        } else {
            0.0
        },
        duplicated_events: last_reading(&journal, "one-event-per-order"),
        duplicate_deliveries: last_reading(&journal, "duplicate-deliveries"),
        redirect_error_rate: last_reading(&journal, "redirect-errors-run"),
        unavailable_ms: unavailability(writes),
        recovered_ms: None,
        journal,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_is_the_longest_gap_with_a_failure() {
        let w = |answered, ok| Write {
            sent: answered,
            answered,
            ok,
        };
        let writes = [
            w(0, true),
            w(20, true),
            w(40, false),
            w(60, false),
            w(80, true),
            w(100, true),
        ];
        assert_eq!(unavailability(&writes), 60);
        assert_eq!(unavailability(&[w(0, true), w(500, true)]), 0);
    }
}
