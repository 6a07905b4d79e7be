//! Between the engine's types and the file's: counters, status ranges,
//! thresholds and the histograms' V2 + DEFLATE + base64 encoding.

use super::file::{StatsEntry, ThresholdEntry};
use super::HistError;
use crate::plan::StatusSet;
use crate::results::{new_histogram, Stats};
use crate::threshold::Threshold;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::time::Duration;

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(super) fn ranges(set: &StatusSet) -> Vec<[u16; 2]> {
    set.0.iter().map(|&(lo, hi)| [lo, hi]).collect()
}

pub(super) fn status_set(ranges: &[[u16; 2]]) -> StatusSet {
    StatusSet(ranges.iter().map(|&[lo, hi]| (lo, hi)).collect())
}

pub(super) fn threshold_entry(t: &Threshold) -> ThresholdEntry {
    ThresholdEntry {
        key: t.key.clone(),
        expression: t.expression.clone(),
        abort_on_fail: t.abort_on_fail,
        delay_abort_eval_us: micros(t.delay_abort_eval),
    }
}

/// The executor names the engine writes, as `'static` strings.
pub(super) fn executor_kind(name: &str) -> Option<&'static str> {
    [
        "constant-arrival-rate",
        "ramping-arrival-rate",
        "constant-connections",
    ]
    .into_iter()
    .find(|kind| *kind == name)
}

pub(super) fn stats_entry(stats: &Stats) -> StatsEntry {
    StatsEntry {
        sent: stats.sent,
        ok: stats.ok,
        unexpected_status: stats.unexpected_status,
        transport_errors: stats.transport_errors,
        timeouts: stats.timeouts,
        status_counts: stats.status_counts.clone(),
        checks: stats
            .checks
            .iter()
            .map(|(name, (p, f))| (name.clone(), [*p, *f]))
            .collect(),
        skipped_empty_pool: stats.skipped_empty_pool,
        bytes_received: stats.bytes_received,
        latency: encode_histogram(&stats.latency),
        lateness: encode_histogram(&stats.lateness),
    }
}

pub(super) fn stats(entry: &StatsEntry, at: &str) -> Result<Stats, HistError> {
    Ok(Stats {
        latency: decode_histogram(&entry.latency, &format!("{at}: latency"))?,
        lateness: decode_histogram(&entry.lateness, &format!("{at}: lateness"))?,
        sent: entry.sent,
        ok: entry.ok,
        unexpected_status: entry.unexpected_status,
        transport_errors: entry.transport_errors,
        timeouts: entry.timeouts,
        status_counts: entry.status_counts.clone(),
        checks: entry
            .checks
            .iter()
            .map(|(name, [p, f])| (name.clone(), (*p, *f)))
            .collect(),
        skipped_empty_pool: entry.skipped_empty_pool,
        bytes_received: entry.bytes_received,
    })
}

pub(super) fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for the bounds this crate uses.
    if V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .is_err()
    {
        bytes.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes into a histogram with the crate's bounds, so that every merge
/// afterwards adds like with like (and cannot fail).
pub(super) fn decode_histogram(text: &str, at: &str) -> Result<Histogram<u64>, HistError> {
    let fail = |message: String| HistError::Histogram {
        at: at.to_string(),
        message,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| fail(format!("not base64: {e}")))?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| fail(format!("{e:?}")))?;
    let mut histogram = new_histogram();
    histogram
        .add(&decoded)
        .map_err(|e| fail(format!("values outside 1 us..60 s: {e:?}")))?;
    Ok(histogram)
}
