//! [`Quota`]: how many requests a key may make, parsed once from the
//! operator's `RATE/UNIT[,burst=N]` notation (`300/min,burst=300`,
//! `100/s`). GCRA needs two numbers, the emission interval (the time one
//! request "costs") and the burst; both are fixed here, in microseconds, so
//! the in-process and Redis adapters do the same integer arithmetic.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A rate limit: `rate` requests per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    rate: u64,
    period: Duration,
    burst: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("expected RATE/UNIT[,burst=N] (e.g. `300/min,burst=300`), got `{0}`")]
    Syntax(String),
    #[error("unknown unit `{0}`: use s, min, h or d")]
    Unit(String),
    #[error("the rate must be a whole number from 1 to 1000000 per unit, got `{0}`")]
    Rate(String),
    #[error("burst must be a whole number from 1 to 1000000, got `{0}`")]
    Burst(String),
    #[error("{rate} per {period:?} is more than one request per microsecond")]
    TooFast { rate: u64, period: Duration },
}

const MAX: u64 = 1_000_000;

impl Quota {
    /// `burst` defaults to `rate`: a client that was idle for a whole
    /// period may spend that period's allowance at once.
    pub fn new(rate: u64, period: Duration, burst: Option<u64>) -> Result<Self, QuotaError> {
        if rate == 0 || rate > MAX {
            return Err(QuotaError::Rate(rate.to_string()));
        }
        let burst = burst.unwrap_or(rate);
        if burst == 0 || burst > MAX {
            return Err(QuotaError::Burst(burst.to_string()));
        }
        let quota = Self {
            rate,
            period,
            burst,
        };
        if quota.emission_interval_us() == 0 {
            return Err(QuotaError::TooFast { rate, period });
        }
        Ok(quota)
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The time one request uses up, in microseconds (period / rate).
    pub fn emission_interval_us(&self) -> u64 {
        (self.period.as_micros() / u128::from(self.rate)) as u64
    }

    /// How far ahead of now the theoretical arrival time may run before
    /// requests are refused: the burst beyond the first request.
    pub fn tolerance_us(&self) -> u64 {
        self.emission_interval_us() * (self.burst - 1)
    }
}

impl FromStr for Quota {
    type Err = QuotaError;

    fn from_str(text: &str) -> Result<Self, QuotaError> {
        let syntax = || QuotaError::Syntax(text.to_string());
        let mut parts = text.split(',').map(str::trim);
        let rate_part = parts.next().filter(|p| !p.is_empty()).ok_or_else(syntax)?;
        let (rate, unit) = rate_part.split_once('/').ok_or_else(syntax)?;
        let rate: u64 = rate
            .trim()
            .parse()
            .map_err(|_| QuotaError::Rate(rate.trim().to_string()))?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => return Err(QuotaError::Unit(other.to_string())),
        };
        let mut burst = None;
        for option in parts {
            let (name, value) = option.split_once('=').ok_or_else(syntax)?;
            match name.trim() {
                "burst" if burst.is_none() => {
                    burst = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| QuotaError::Burst(value.trim().to_string()))?,
                    );
                }
                _ => return Err(syntax()),
            }
        }
        Quota::new(rate, period, burst)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s".to_string(),
            60 => "min".to_string(),
            3600 => "h".to_string(),
            86_400 => "d".to_string(),
            _ => format!("{:?}", self.period),
        };
        write!(f, "{}/{unit},burst={}", self.rate, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let q: Quota = "300/min,burst=300".parse().expect("valid");
        assert_eq!(
            (q.rate(), q.period(), q.burst()),
            (300, Duration::from_secs(60), 300)
        );
        assert_eq!(q.emission_interval_us(), 200_000);
        assert_eq!(q.tolerance_us(), 299 * 200_000);
        let q: Quota = "100/s".parse().expect("valid");
        assert_eq!(q.burst(), 100);
        let q: Quota = " 5 / hour , burst = 1 ".parse().expect("valid");
        assert_eq!((q.rate(), q.burst(), q.tolerance_us()), (5, 1, 0));
        assert_eq!(q.to_string(), "5/h,burst=1");
    }

    #[test]
    fn rejects_bad_quotas_with_a_reason() {
        for (text, want) in [
            ("", "expected RATE/UNIT"),
            ("300", "expected RATE/UNIT"),
            ("0/s", "rate"),
            ("-1/s", "rate"),
            ("1.5/s", "rate"),
            ("99999999999999999999/s", "rate"),
            ("10/fortnight", "unknown unit"),
            ("10/s,burst=0", "burst"),
            ("10/s,burst=-3", "burst"),
            ("10/s,burst=5,burst=6", "expected RATE/UNIT"),
            ("10/s,bucket=5", "expected RATE/UNIT"),
            ("2000000/min", "rate"),
        ] {
            let err = text.parse::<Quota>().expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        // One request per microsecond is the finest GCRA step here.
        assert!("1000000/s".parse::<Quota>().is_ok());
        let err = Quota::new(10, Duration::from_micros(5), None).expect_err("too fast");
        assert!(err.to_string().contains("microsecond"), "{err}");
    }
}
