//! Numbers for people: percentages with the digits that matter, rates,
//! latencies and times; "no data" instead of a blank, never NaN.

use chrono::{DateTime, TimeZone, Utc};

pub const NO_DATA: &str = "no data";

fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// `99.953%` near 100 (where the nines matter), `0.12%` near 0, `42.5%`
/// in between.
pub fn percent(x: Option<f64>) -> String {
    let Some(v) = finite(x) else {
        return NO_DATA.into();
    };
    let p = v * 100.0;
    let digits = if (99.0..100.0).contains(&p) || (p != 0.0 && p.abs() < 1.0) {
        3
    } else {
        1
    };
    format!("{p:.digits$}%")
}

/// `12.3/s`.
pub fn rate(x: Option<f64>) -> String {
    match finite(x) {
        None => NO_DATA.into(),
        Some(v) if v >= 100.0 => format!("{v:.0}/s"),
        Some(v) => format!("{v:.2}/s"),
    }
}

/// `850 µs`, `12.5 ms`, `1.20 s`.
pub fn latency(seconds: Option<f64>) -> String {
    match finite(seconds) {
        None => NO_DATA.into(),
        Some(s) if s < 0.001 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

/// A burn rate: `2.35×`.
pub fn burn(x: Option<f64>) -> String {
    finite(x).map_or_else(|| NO_DATA.into(), |v| format!("{v:.2}×"))
}

/// A plain number with two decimals.
pub fn number(x: Option<f64>) -> String {
    finite(x).map_or_else(|| NO_DATA.into(), |v| format!("{v:.2}"))
}

/// `2026-12-01 03:04:05 UTC`.
pub fn time_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| "-".into(), time)
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `12m 5s ago`.
pub fn ago(now_ms: i64, ms: i64) -> String {
    let seconds = (now_ms - ms) as f64 / 1000.0;
    format!("{} ago", slo::status::human_duration(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_the_digits_that_matter() {
        assert_eq!(percent(Some(0.99953)), "99.953%");
        assert_eq!(percent(Some(0.425)), "42.5%");
        assert_eq!(percent(Some(0.0012)), "0.120%");
        assert_eq!(percent(Some(1.0)), "100.0%");
        assert_eq!(percent(Some(f64::NAN)), "no data");
        assert_eq!(percent(None), "no data");
    }

    #[test]
    fn latencies_and_rates_read_naturally() {
        assert_eq!(latency(Some(0.0125)), "12.5 ms");
        assert_eq!(latency(Some(0.0004)), "400 µs");
        assert_eq!(latency(Some(f64::INFINITY)), "no data");
        assert_eq!(rate(Some(3.456)), "3.46/s");
        assert_eq!(burn(Some(14.4)), "14.40×");
    }
}
