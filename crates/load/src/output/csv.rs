//! `--out FILE.csv`: the per-second series, one row per second per
//! (scenario, request name), written and flushed as each second ends. The
//! file is the run's full-resolution record (the HTML report's series is
//! capped), and because it is flushed every second it survives a run that
//! is killed, and can be tailed or plotted while the run goes on.
//!
//! A second in which nothing was sent or finished still gets one row, with
//! empty scenario and name, so `in_flight` and `queued` have no holes
//! exactly when the server stalls. Percentile cells are empty when no
//! request finished in the second (0 would read as "very fast").

use crate::observe::Observer;
use crate::plan::Plan;
use crate::results::{Results, Stats, Tick};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub const CSV_HEADER: &str = "t_s,scenario,name,sent,completed,errors,check_failures,rate_per_s,\
p50_us,p90_us,p99_us,max_us,lateness_p99_us,in_flight,queued";

/// Writes one row per (scenario, request name) per second.
pub struct CsvSeries<W: Write + Send = BufWriter<File>> {
    out: W,
    /// For the one error message.
    destination: String,
    /// Set after the first failed write: the file stops there, the run
    /// goes on, and the error is printed once.
    failed: Option<io::Error>,
}

impl CsvSeries<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        Self::with_writer(BufWriter::new(file), path.display().to_string())
    }
}

impl<W: Write + Send> CsvSeries<W> {
    /// Writes the header to `out` now, so even a run that ends before its
    /// first second leaves a well-formed file.
    pub fn with_writer(mut out: W, destination: impl Into<String>) -> io::Result<Self> {
        writeln!(out, "{CSV_HEADER}")?;
        out.flush()?;
        Ok(Self {
            out,
            destination: destination.into(),
            failed: None,
        })
    }

    /// The write error that stopped the file, if one did.
    pub fn error(&self) -> Option<&io::Error> {
        self.failed.as_ref()
    }

    /// The writer, for tests and for callers that wrote to memory.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_tick(&mut self, plan: &Plan, tick: &Tick) -> io::Result<()> {
        let t = tick.t;
        if tick.rows.is_empty() {
            writeln!(
                self.out,
                "{t},,,0,0,0,0,0,,,,,,{},{}",
                tick.in_flight, tick.queued
            )?;
        }
        for (scenario_index, request_index, stats) in &tick.rows {
            let scenario = plan.scenarios.get(*scenario_index);
            let scenario_name = scenario.map(|s| s.name.as_str()).unwrap_or("");
            let request_name = scenario
                .and_then(|s| s.requests.get(*request_index))
                .map(|r| r.name.as_str())
                .unwrap_or("");
            writeln!(
                self.out,
                "{t},{},{},{},{},{},{},{},{},{},{}",
                field(scenario_name),
                field(request_name),
                stats.sent,
                stats.completed(),
                stats.errors(),
                stats.check_totals().1,
                // A tick is one second, so completions are the rate.
                stats.completed(),
                latencies(stats),
                tick.in_flight,
                tick.queued,
            )?;
        }
        self.out.flush()
    }
}

/// `p50_us,p90_us,p99_us,max_us,lateness_p99_us`, empty without data.
fn latencies(stats: &Stats) -> String {
    let latency = &stats.latency;
    let percentiles = if latency.is_empty() {
        ",,,".to_string()
    } else {
        format!(
            "{},{},{},{}",
            latency.value_at_quantile(0.50),
            latency.value_at_quantile(0.90),
            latency.value_at_quantile(0.99),
            latency.max()
        )
    };
    let lateness = if stats.lateness.is_empty() {
        String::new()
    } else {
        stats.lateness.value_at_quantile(0.99).to_string()
    };
    format!("{percentiles},{lateness}")
}

/// RFC 4180: quoted when it holds a comma, quote or line break, with
/// quotes doubled.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

impl<W: Write + Send> Observer for CsvSeries<W> {
    fn tick(&mut self, plan: &Plan, tick: &Tick) {
        if self.failed.is_some() {
            return;
        }
        if let Err(error) = self.write_tick(plan, tick) {
            eprintln!(
                "reliable load: cannot write {}: {error}; the CSV stops at {}s, the run goes on",
                self.destination, tick.t
            );
            self.failed = Some(error);
        }
    }

    fn finish(&mut self, _plan: &Plan, _results: &Results) {
        if self.failed.is_none() {
            if let Err(error) = self.out.flush() {
                eprintln!("reliable load: cannot write {}: {error}", self.destination);
                self.failed = Some(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::results::{record, Outcome};
    use std::time::Duration;

    fn second(rows: Vec<(usize, usize, Stats)>) -> Tick {
        Tick {
            t: 3.0,
            in_flight: 7,
            queued: 2,
            rows,
        }
    }

    fn answered(latencies_ms: &[u64]) -> Stats {
        let mut stats = Stats::default();
        for ms in latencies_ms {
            stats.record_outcome(Outcome::Status(200), true, Duration::from_millis(*ms));
            record(&mut stats.lateness, Duration::from_micros(120));
        }
        stats.sent = latencies_ms.len() as u64 + 1;
        stats
    }

    fn lines(csv: CsvSeries<Vec<u8>>) -> Vec<String> {
        String::from_utf8(csv.into_inner())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_header_once_then_a_row_per_name_per_second() {
        let plan = fixture::plan();
        let mut csv = CsvSeries::with_writer(Vec::new(), "memory").expect("memory takes writes");
        let mut failing = answered(&[1, 2, 3, 4]);
        failing.record_outcome(Outcome::Timeout, false, Duration::from_secs(5));
        failing.record_check("is redirect", false);
        csv.tick(
            &plan,
            &second(vec![(0, 0, answered(&[1, 2])), (0, 1, failing)]),
        );
        csv.tick(&plan, &second(vec![(0, 1, answered(&[3]))]));
        csv.finish(&plan, &fixture::results());
        let lines = lines(csv);
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.iter().filter(|l| l.starts_with("t_s,")).count(), 1);
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            "3,baseline,create,3,2,0,0,2,1000,2000,2000,2000,120,7,2"
        );
        let redirect: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(redirect.len(), 15);
        assert_eq!(
            &redirect[..8],
            ["3", "baseline", "redirect", "5", "5", "1", "1", "5"]
        );
        // HdrHistogram keeps 3 significant digits: within 0.1% of 5 s.
        let max_us: u64 = redirect[11].parse().unwrap_or_default();
        assert!(
            (5_000_000..5_005_000).contains(&max_us),
            "the timeout is the max: {max_us}"
        );
    }

    #[test]
    fn a_silent_second_keeps_in_flight_and_queued() {
        let plan = fixture::plan();
        let mut csv = CsvSeries::with_writer(Vec::new(), "memory").expect("memory takes writes");
        csv.tick(&plan, &second(Vec::new()));
        let sent_only = Stats {
            sent: 4,
            ..Stats::default()
        };
        csv.tick(&plan, &second(vec![(0, 0, sent_only)]));
        let lines = lines(csv);
        assert_eq!(lines[1], "3,,,0,0,0,0,0,,,,,,7,2");
        assert_eq!(lines[2], "3,baseline,create,4,0,0,0,0,,,,,,7,2");
    }

    #[test]
    fn names_with_commas_and_quotes_are_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut plan = fixture::plan();
        plan.scenarios[0].name = "peak, viral".to_string();
        let mut csv = CsvSeries::with_writer(Vec::new(), "memory").expect("memory takes writes");
        csv.tick(&plan, &second(vec![(0, 0, answered(&[1]))]));
        assert!(lines(csv)[1].starts_with("3,\"peak, viral\",create,"));
    }

    #[test]
    fn rows_reach_the_file_each_second() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("series.csv");
        let plan = fixture::plan();
        let mut csv = CsvSeries::create(&path).expect("the file is created");
        csv.tick(&plan, &second(vec![(1, 0, answered(&[1]))]));
        // Read while the observer is still open: flushed, not buffered.
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(&format!("3,{},", field(fixture::HOSTILE))),
            "{text}"
        );
        assert!(CsvSeries::create(&dir.path().join("missing/dir.csv")).is_err());
    }

    /// A writer that takes `room` bytes, then refuses.
    struct Full {
        room: usize,
        attempts: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            if self.room < buf.len() {
                return Err(io::Error::other("disk full"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_stops_the_file_not_the_run() {
        let plan = fixture::plan();
        let full = Full {
            room: CSV_HEADER.len() + 1,
            attempts: 0,
        };
        let mut csv = CsvSeries::with_writer(full, "full.csv").expect("the header fits");
        csv.tick(&plan, &second(vec![(0, 0, answered(&[1]))]));
        assert_eq!(
            csv.error().map(|e| e.to_string()),
            Some("disk full".to_string())
        );
        let attempts = csv.out.attempts;
        csv.tick(&plan, &second(vec![(0, 0, answered(&[1]))]));
        csv.finish(&plan, &fixture::results());
        assert_eq!(
            csv.into_inner().attempts,
            attempts,
            "no write after the failure"
        );
    }
}
