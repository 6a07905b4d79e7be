//! The canary judge: is the canary worse than its baseline, now?
//!
//! # Method
//!
//! Canary and baseline are compared over the **same time window**, metric
//! by metric, never against a fixed threshold: a dependency that slows
//! down slows both sides, and only the difference is the release's fault.
//! Each metric gets a one-sided test ("the canary is worse") and an
//! effect size:
//!
//! - **proportions** (errors, requests slower than an SLO threshold, wrong
//!   answers): Fisher's exact test while counts are small, a two-proportion
//!   z-test with continuity correction once every cell of the 2×2 table
//!   expects 1,000 events ([`proportion`]); effect = canary bad ratio −
//!   baseline bad ratio, in absolute terms;
//! - **latency**: Mann-Whitney U over the whole distribution, histogram
//!   buckets counting as ties or exact samples from a [`Reservoir`]
//!   ([`mann_whitney`], [`latency`]); effect = ratio of the exact means.
//!
//! A metric **fails** only when its test is significant *and* its effect
//! is beyond the floor; it is **inconclusive** below its minimum sample
//! size; otherwise it **passes**. Metrics are then scored Kayenta-style
//! ([`scoring`]). Because the controller looks every few seconds at a
//! growing window, each test runs at the configured significance divided
//! by the number of planned looks and metrics ([`looks`]): the
//! significance is the false-failure rate of a whole rollout, not of one
//! look. Independently, the SLO guard ([`guard`]) stops a canary whose own
//! burn rate would page.
//!
//! # How to set the effect floor
//!
//! A test answers "is there a difference?", and with enough traffic the
//! answer is always yes: at 10,000 requests a side a 2% slowdown is
//! statistically certain. The floor answers "is the difference big enough
//! to stop a release?". That is a product decision, not a statistical one:
//!
//! - **errors** (`proportion.min_effect`, an absolute fraction; default
//!   0.001 = 0.1 percentage point): the extra bad ratio you would accept
//!   at 100% rollout. Derive it from the SLO's error budget `1 −
//!   objective`: a floor of `k × budget` lets a release add at most `k` to
//!   the service's burn rate. The default is one budget of a 99.9% SLO;
//!   for 99.99% use 0.0001, for 99% 0.01. Wrong-answer ratios (accuracy)
//!   work the same way with the accuracy drop you accept.
//! - **latency** (`latency.min_effect`, relative; default 0.10): the
//!   slowdown of the mean you accept in a release. 0.10 lets a 1–5%
//!   slowdown through and stops anything beyond +10%, once significant. To hold
//!   a latency SLO instead ("99% under 300 ms"), judge the requests above
//!   the threshold as a proportion (`Histogram::count_above`) and set
//!   that floor like an error floor.
//! - a floor of **0** fails on any significant difference (Kayenta's
//!   behaviour): harmless changes start failing as traffic grows.
//!
//! The floor also sets how long a clean canary takes to *pass* on a
//! proportion: it needs `proportion.min_expected_bad / (baseline ratio +
//! floor)` requests (3 / 0.002 = 1,500 at 0.1% errors with the default
//! floor), the point where a canary as bad as the floor would have shown
//! its errors. A smaller floor costs proportionally more traffic. Failing
//! needs no such wait: a canary at 5% errors fails within seconds.
//!
//! # Histogram resolution
//!
//! A histogram only sees a shift that moves observations across bucket
//! bounds. Prometheus's default buckets start at 5 ms: a 2 ms service sits
//! almost entirely in the first bucket, so a +50 ms regression is obvious
//! but a +20% one shows only in the tail and takes minutes to prove.
//! Give fast services bounds around their typical latency, or judge exact
//! samples from a [`Reservoir`].

pub mod config;
mod format;
pub mod guard;
pub mod histogram;
pub mod latency;
pub mod looks;
pub mod mann_whitney;
pub mod math;
pub mod proportion;
pub mod reservoir;
pub mod scoring;
pub mod verdict;

#[cfg(test)]
mod tests;

pub use config::{
    ConfigError, JudgeConfig, LatencyConfig, MetricWeight, ProportionConfig, ScoringConfig,
    SloGuardConfig,
};
pub use guard::{slo_guard, GuardTrip};
pub use histogram::{Histogram, HistogramError};
pub use latency::{judge_latency_histograms, judge_latency_samples, Samples};
pub use looks::{per_look_significance, Judge, MetricData, MetricInput};
pub use mann_whitney::{mann_whitney_greater, MannWhitney, RankTestError};
pub use proportion::{judge_proportion, Counts, ProportionTest};
pub use reservoir::{Reservoir, ReservoirError};
pub use scoring::{score, Judgement, ScoredMetric};
pub use verdict::{JudgeError, Method, MetricKind, MetricVerdict, Side, Verdict};
