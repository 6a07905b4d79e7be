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

/// An amount of money: `$1,234.56` from 1 up, two significant digits
/// below (`$0.012`, `$0.0004`: a cost per 1,000 redirects is that small),
/// `< $0.000001` for a crumb above zero. `$`, `€`, `£` and `¥` lead; any
/// other ISO code follows (`12.50 CHF`).
pub fn money(amount: Option<f64>, currency: &str) -> String {
    let Some(v) = finite(amount) else {
        return NO_DATA.into();
    };
    let sign = if v < 0.0 { "-" } else { "" };
    let v = v.abs();
    let digits = if v == 0.0 || v >= 1.0 {
        2
    } else if v < TINY {
        return match symbol(currency) {
            Some(s) => format!("< {s}{TINY}"),
            None => format!("< {TINY} {currency}"),
        };
    } else {
        // Two significant digits, but never fewer than two decimals.
        ((-v.log10()).ceil() as usize + 1).max(2)
    };
    let mut text = format!("{v:.digits$}");
    while digits > 2 && text.ends_with('0') && text.len() - text.find('.').unwrap_or(0) > 3 {
        text.pop();
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let grouped = group_thousands(whole);
    match symbol(currency) {
        Some(s) => format!("{sign}{s}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}.{fraction} {currency}"),
    }
}

/// The smallest amount `money` writes out.
const TINY: f64 = 0.000_001;

fn symbol(currency: &str) -> Option<&'static str> {
    match currency {
        "USD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    }
}

/// `1234567` -> `1,234,567`.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with thousands separators: `52,000`.
pub fn count(n: u64) -> String {
    group_thousands(&n.to_string())
}

/// Cost per 1,000 requests; `None` without requests.
pub fn per_1k(cost: f64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cost / requests as f64 * 1000.0)
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

    #[test]
    fn money_keeps_two_significant_digits_below_one() {
        assert_eq!(money(Some(1234.5), "USD"), "$1,234.50");
        assert_eq!(money(Some(1_234_567.891), "USD"), "$1,234,567.89");
        assert_eq!(money(Some(12.0), "EUR"), "€12.00");
        assert_eq!(money(Some(0.5), "USD"), "$0.50");
        assert_eq!(money(Some(0.1), "USD"), "$0.10");
        assert_eq!(money(Some(0.0123), "USD"), "$0.012");
        assert_eq!(money(Some(0.001), "USD"), "$0.001");
        assert_eq!(money(Some(0.0004), "USD"), "$0.0004");
        assert_eq!(money(Some(0.000_412_34), "USD"), "$0.00041");
        assert_eq!(money(Some(0.0), "USD"), "$0.00");
        assert_eq!(money(Some(1e-9), "USD"), "< $0.000001");
        assert_eq!(money(Some(-2.5), "USD"), "-$2.50");
        assert_eq!(money(Some(12.5), "CHF"), "12.50 CHF");
        assert_eq!(money(Some(0.0004), "CHF"), "0.0004 CHF");
        assert_eq!(money(Some(f64::NAN), "USD"), "no data");
        assert_eq!(money(None, "USD"), "no data");
    }

    #[test]
    fn cost_per_1k_needs_requests() {
        let per = per_1k(0.002, 5_000).unwrap_or_default();
        assert!((per - 0.0004).abs() < 1e-15, "{per}");
        assert_eq!(per_1k(1.0, 0), None);
        assert_eq!(count(52_000), "52,000");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000_000), "1,000,000");
    }
}
