//! The live status line on a terminal: what the last second looked like,
//! redrawn in place every second with `\r`, so a long run shows it is
//! alive and whether it is healthy without scrolling the summary away.
//!
//! It writes only to a terminal: piped or redirected (CI logs, `--json`
//! into a file), stderr stays clean, because a hundred `\r`-joined lines
//! are noise in a log. When the run ends the line is erased, and the
//! summary prints where it was.

use super::units::{self, Micros};
use crate::observe::Observer;
use crate::plan::Plan;
use crate::results::{new_histogram, Results, Tick};
use std::collections::BTreeSet;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

/// `\r`, the line, then "erase to the end of the line" so a shorter line
/// leaves nothing of the previous one.
const ERASE_TO_END: &str = "\x1b[K";

/// The most characters the scenario names take in the line.
const SCENARIO_WIDTH: usize = 28;

pub struct Progress<W: Write + Send = io::Stderr> {
    out: W,
}

impl Progress<io::Stderr> {
    /// `None` when stderr is not a terminal: the run is then quiet.
    pub fn new() -> Option<Self> {
        let stderr = io::stderr();
        stderr.is_terminal().then(|| Self::with_writer(stderr))
    }
}

impl<W: Write + Send> Progress<W> {
    /// Draws on `out` whatever it is (tests use a `Vec<u8>`).
    pub fn with_writer(out: W) -> Self {
        Self { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The status for one second, without control characters.
pub fn status_line(plan: &Plan, tick: &Tick) -> String {
    let planned = plan
        .scenarios
        .iter()
        .map(|s| s.start + s.duration())
        .max()
        .unwrap_or_default();
    // The tick covers (t - 1, t]: a scenario is current if it overlaps it,
    // or if it reported anything in it.
    let mut current: BTreeSet<usize> = plan
        .scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            let start = s.start.as_secs_f64();
            let end = start + s.duration().as_secs_f64();
            start < tick.t && tick.t - 1.0 < end
        })
        .map(|(i, _)| i)
        .collect();
    current.extend(tick.rows.iter().map(|(scenario, _, _)| *scenario));
    let names: Vec<&str> = current
        .iter()
        .filter_map(|i| plan.scenarios.get(*i).map(|s| s.name.as_str()))
        .collect();

    let mut latency = new_histogram();
    let (mut completed, mut errors) = (0, 0);
    for (_, _, stats) in &tick.rows {
        let _ = latency.add(&stats.latency);
        completed += stats.completed();
        errors += stats.errors();
    }
    let percentile = |q: f64| {
        if latency.is_empty() {
            "-".to_string()
        } else {
            Micros(latency.value_at_quantile(q)).to_string()
        }
    };
    format!(
        "{:>6}/{}  {:<SCENARIO_WIDTH$}  {:>7}/s  in flight {}  queued {}  p50 {}  p99 {}  errors {}",
        units::span(Duration::from_secs_f64(tick.t.max(0.0))),
        units::span(planned),
        units::fit(&names.join(","), SCENARIO_WIDTH),
        completed,
        tick.in_flight,
        tick.queued,
        percentile(0.50),
        percentile(0.99),
        errors,
    )
}

impl<W: Write + Send> Observer for Progress<W> {
    fn tick(&mut self, plan: &Plan, tick: &Tick) {
        // A terminal that went away is no reason to stop the run.
        let _ = write!(self.out, "\r{}{ERASE_TO_END}", status_line(plan, tick));
        let _ = self.out.flush();
    }

    fn finish(&mut self, _plan: &Plan, _results: &Results) {
        let _ = write!(self.out, "\r{ERASE_TO_END}");
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::results::{Outcome, Stats};

    fn second(t: f64, rows: Vec<(usize, usize, Stats)>) -> Tick {
        Tick {
            t,
            in_flight: 3,
            queued: 1,
            rows,
        }
    }

    fn answered(ms: &[u64], failed: u64) -> Stats {
        let mut stats = Stats::default();
        for ms in ms {
            stats.record_outcome(Outcome::Status(200), true, Duration::from_millis(*ms));
        }
        for _ in 0..failed {
            stats.record_outcome(Outcome::TransportError, false, Duration::from_millis(1));
        }
        stats
    }

    #[test]
    fn the_line_shows_the_last_second() {
        let plan = fixture::plan();
        let tick = second(
            12.0,
            vec![(0, 0, answered(&[1; 10], 2)), (0, 1, answered(&[40; 8], 0))],
        );
        let line = status_line(&plan, &tick);
        assert!(line.starts_with(" 12.0s/1m30s  baseline "), "{line}");
        assert!(line.contains("     20/s  in flight 3  queued 1"), "{line}");
        assert!(line.contains("p50 1.00ms  p99 40.0ms  errors 2"), "{line}");
        assert!(line.chars().count() < 120, "{line}");
    }

    #[test]
    fn a_quiet_second_names_the_running_scenario() {
        let plan = fixture::plan();
        let line = status_line(&plan, &second(61.0, Vec::new()));
        assert!(
            line.contains(fixture::HOSTILE),
            "the closed scenario runs from 60s: {line}"
        );
        assert!(!line.contains("baseline"), "{line}");
        assert!(
            line.contains("0/s") && line.contains("p50 -  p99 -"),
            "{line}"
        );
    }

    #[test]
    fn redrawn_in_place_then_erased() {
        let plan = fixture::plan();
        let mut progress = Progress::with_writer(Vec::new());
        progress.tick(&plan, &second(1.0, vec![(0, 1, answered(&[2], 0))]));
        progress.tick(&plan, &second(2.0, Vec::new()));
        progress.finish(&plan, &fixture::results());
        let text = String::from_utf8(progress.into_inner()).unwrap_or_default();
        assert!(!text.contains('\n'), "never scrolls: {text:?}");
        assert_eq!(text.matches('\r').count(), 3);
        assert!(text.ends_with("\r\x1b[K"), "{text:?}");
    }

    #[test]
    fn quiet_when_stderr_is_not_a_terminal() {
        // `cargo test` captures stderr through a pipe unless run with
        // --nocapture on a terminal; either way `new` must agree with it.
        assert_eq!(Progress::new().is_some(), io::stderr().is_terminal());
    }
}
