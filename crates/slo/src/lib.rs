//! SLOs as code: specs in, Prometheus rules, live error budgets and
//! release decisions out. Pure logic: no network, no async; the only I/O
//! is reading spec files ([`catalog`]).
//!
//! - [`yaml`]: bounded YAML (size, depth, alias-expansion caps) with lines;
//! - [`fields`], [`error`]: strict field reading, errors naming file, line, field;
//! - [`sloth`], [`openslo`]: the two spec formats, parsed into [`model`];
//! - [`catalog`]: loading a set of files, cross-file checks;
//! - [`window`], [`objective`]: the domain numbers, parsed once;
//! - [`promql`]: query checks and counter selectors (`promql-parser`);
//! - [`burn`]: multiwindow multi-burn-rate alert math;
//! - [`rules`], [`emit`]: Prometheus rule files and `PrometheusRule` resources;
//! - [`dashboard`]: Grafana dashboards over those rules, and their ConfigMaps;
//! - [`exposition`], [`eval`]: the live evaluator over scraped counters;
//! - [`status`]: the per-SLO report both evaluators produce;
//! - [`alerts`]: the live evaluator's pending and firing alerts and their transitions;
//! - [`policy`]: the error-budget policy behind `reliable slo gate`.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod burn;
pub mod catalog;
pub mod dashboard;
pub mod emit;
pub mod error;
pub mod eval;
pub mod exposition;
pub mod fields;
pub mod history;
pub mod model;
pub mod objective;
pub mod openslo;
pub mod policy;
pub mod promql;
pub mod rules;
pub mod sloth;
pub mod status;
pub mod window;
/// The bounded YAML reader, shared with every other spec format.
pub use yamlspec as yaml;

pub use error::{SpecError, SpecErrors};
pub use model::Slo;
pub use objective::{BurnRate, Objective};
pub use window::Window;

/// A number for rules and reports: rounded to 12 significant digits so
/// `0.02 * 672` prints `13.44`, not `13.440000000000001`.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    format!("{rounded}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_print_short() {
        assert_eq!(super::number(0.02 * 672.0), "13.44");
        assert_eq!(super::number(14.4 * 0.001), "0.0144");
        assert_eq!(super::number(1.0), "1");
        assert_eq!(super::number(0.1 * 28.0 / 3.0), "0.933333333333");
    }
}
