//! [`Window`]: a positive duration written as Prometheus writes durations.
//!
//! Windows name recording rules (`ratio_rate5m`) and go into range
//! selectors (`[5m]`), so they are parsed once from `30d` or `1h30m` and
//! always printed back in the same canonical form.

use std::fmt;

/// A positive whole number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(u64);

const UNITS: &[(&str, u64)] = &[
    ("y", 365 * 86_400),
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

impl Window {
    /// Parses `5m`, `30d`, `1h30m` (units y, w, d, h, m, s; largest first).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a duration is required, e.g. `30d` or `5m`".into());
        }
        let bad = || format!("`{text}` is not a duration like `30d`, `6h` or `1h30m`");
        let mut seconds: u64 = 0;
        let mut rest = text;
        let mut last_unit = u64::MAX;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, size) = UNITS
                .iter()
                .find(|(u, _)| rest.starts_with(u) && !rest.starts_with("ms"))
                .ok_or_else(bad)?;
            if *size >= last_unit {
                return Err(bad());
            }
            last_unit = *size;
            rest = &rest[unit.len()..];
            seconds = number
                .checked_mul(*size)
                .and_then(|s| s.checked_add(seconds))
                .ok_or_else(bad)?;
        }
        Self::from_secs(seconds).ok_or_else(|| format!("`{text}` must be longer than zero"))
    }

    pub const fn from_secs(seconds: u64) -> Option<Self> {
        if seconds == 0 {
            None
        } else {
            Some(Self(seconds))
        }
    }

    pub const fn minutes(m: u64) -> Self {
        Self(m * 60)
    }

    pub const fn hours(h: u64) -> Self {
        Self(h * 3_600)
    }

    pub const fn days(d: u64) -> Self {
        Self(d * 86_400)
    }

    pub const fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64
    }
}

impl fmt::Display for Window {
    /// Largest units first, without years and weeks so `30d` stays `30d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        for (unit, size) in &UNITS[2..] {
            if rest >= *size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(Window::parse("5m"), Ok(Window::minutes(5)));
        assert_eq!(Window::parse("30d"), Ok(Window::days(30)));
        assert_eq!(Window::parse("1h30m").map(Window::as_secs), Ok(5_400));
        assert_eq!(Window::parse("2w"), Ok(Window::days(14)));
    }

    #[test]
    fn refuses_zero_and_garbage() {
        for bad in [
            "0", "0d", "0m0s", "", "d", "5", "5x", "1m1h", "5ms", "-1d", "1.5h",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Window::parse("99999999999999999999y").is_err());
    }

    #[test]
    fn prints_canonically() {
        assert_eq!(Window::days(30).to_string(), "30d");
        assert_eq!(Window::minutes(90).to_string(), "1h30m");
        assert_eq!(Window::parse("2w").map(|w| w.to_string()), Ok("14d".into()));
    }

    proptest! {
        #[test]
        fn print_then_parse_is_identity(secs in 1u64..100_000_000) {
            let w = Window::from_secs(secs).expect("positive");
            prop_assert_eq!(Window::parse(&w.to_string()), Ok(w));
        }
    }
}
