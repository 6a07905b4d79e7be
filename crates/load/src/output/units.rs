//! How numbers read in a table: three significant digits and a unit, so
//! `840us`, `12.3ms` and `1.50s` fit one column and compare at a glance.
//! Every output that shows numbers to people (summary, HTML, progress line)
//! formats them here, so they agree.

use std::fmt;
use std::time::Duration;

/// A latency in microseconds: `840us`, `1.23ms`, `12.3ms`, `123ms`,
/// `1.50s`, `12.3s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us < 1_000 {
            return write!(f, "{us}us");
        }
        let ms = us as f64 / 1e3;
        // The bounds are where rounding to the next unit would carry
        // (9.995ms prints as `10.0ms`, not `10.00ms`).
        if ms < 9.995 {
            write!(f, "{ms:.2}ms")
        } else if ms < 99.95 {
            write!(f, "{ms:.1}ms")
        } else if ms < 999.5 {
            write!(f, "{ms:.0}ms")
        } else {
            let s = ms / 1e3;
            if s < 9.995 {
                write!(f, "{s:.2}s")
            } else if s < 99.95 {
                write!(f, "{s:.1}s")
            } else {
                write!(f, "{s:.0}s")
            }
        }
    }
}

/// A rate per second with as many decimals as it needs: `0.06`, `21.0`,
/// `19874`.
pub fn rate(per_second: f64) -> String {
    if !per_second.is_finite() {
        return "-".to_string();
    }
    let magnitude = per_second.abs();
    if magnitude >= 99.95 {
        format!("{per_second:.0}")
    } else if magnitude >= 9.995 {
        format!("{per_second:.1}")
    } else {
        format!("{per_second:.2}")
    }
}

/// A plain number for an axis: `20`, `0.2`, `1.25`, no float noise.
pub fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A span of the run: `3.0s`, `1m30s`, `1h05m`.
pub fn span(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 59.95 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = duration.as_secs();
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// `part` of `whole` as a percentage with two decimals; `-` when `whole`
/// is 0. Never rounds up to `100.00%` unless it is all.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    if part == whole {
        return "100%".to_string();
    }
    let value = (part as f64 * 100.0 / whole as f64).min(99.99);
    format!("{value:.2}%")
}

/// A Unix time in milliseconds as `2026-11-30 11:26:40 UTC`.
pub fn utc(unix_ms: u64) -> String {
    i64::try_from(unix_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{unix_ms} ms after the Unix epoch"))
}

/// A Unix time in milliseconds as RFC 3339 (`2026-11-30T11:26:40.123Z`).
pub fn rfc3339(unix_ms: u64) -> Option<String> {
    i64::try_from(unix_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// `text` cut to `width` characters, the last one an ellipsis when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_keep_three_significant_digits() {
        let cases = [
            (1, "1us"),
            (840, "840us"),
            (1_234, "1.23ms"),
            (9_999, "10.0ms"),
            (12_345, "12.3ms"),
            (123_456, "123ms"),
            (999_600, "1.00s"),
            (1_500_000, "1.50s"),
            (12_345_678, "12.3s"),
            (60_000_000, "60.0s"),
            (123_000_000, "123s"),
        ];
        for (us, expected) in cases {
            assert_eq!(Micros(us).to_string(), expected, "{us}us");
        }
    }

    #[test]
    fn rates_spans_and_percentages() {
        assert_eq!(rate(0.0579), "0.06");
        assert_eq!(rate(21.0), "21.0");
        assert_eq!(rate(19_874.4), "19874");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(number(20.0), "20");
        assert_eq!(number(0.6000000001), "0.6");
        assert_eq!(number(1.25), "1.25");
        assert_eq!(span(Duration::from_secs(3)), "3.0s");
        assert_eq!(span(Duration::from_secs(90)), "1m30s");
        assert_eq!(span(Duration::from_secs(3_900)), "1h05m");
        assert_eq!(percent(1, 0), "-");
        assert_eq!(percent(3, 3), "100%");
        assert_eq!(percent(99_999, 100_000), "99.99%");
        assert_eq!(percent(1, 3), "33.33%");
    }

    #[test]
    fn times_and_cuts() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            rfc3339(1_700_000_000_123).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(fit("redirect", 20), "redirect");
        assert_eq!(fit("a-very-long-request-name", 10), "a-very-lo…");
    }
}
