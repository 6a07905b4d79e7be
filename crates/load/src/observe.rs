//! Live observers: the progress line, the CSV series, the Prometheus push.

use crate::plan::Plan;
use crate::results::{Results, Tick};

/// Told about every second of the load phase, then about the end.
pub trait Observer: Send {
    fn tick(&mut self, plan: &Plan, tick: &Tick);
    fn finish(&mut self, plan: &Plan, results: &Results) {
        let _ = (plan, results);
    }
}

pub use crate::output::{CsvSeries, Progress, PrometheusPush};
