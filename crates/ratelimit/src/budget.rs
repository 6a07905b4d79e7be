//! Calendar budgets: "100,000 tokens a day, starting again at 00:00 UTC".
//!
//! Unlike a GCRA quota, a budget is a fixed window: one counter per key and
//! UTC calendar day or month, which starts at 0 when its window does. That
//! is what an allowance people pay for looks like (a daily cap, a monthly
//! bill); the boundary burst GCRA exists to prevent is harmless at a
//! day's scale, and a quota can sit in front of a budget for that.
//!
//! Reserve, then settle: a caller reserves the most a request may use (the
//! reservation is added only if it fits under the limit), then settles the
//! difference once it knows what was really used, against the window the
//! reservation was made in, so a request admitted at 23:59 counts against
//! that day even if it finishes after midnight. A window's counter is kept
//! for [`SETTLE_GRACE`] after the window ends, for those late settlements;
//! settling a window older than that changes nothing.
//!
//! The arithmetic lives here once, shared by the in-process adapter and
//! mirrored by the Redis scripts. Counters stay below 2^53, so Lua's
//! doubles compare them exactly.

use crate::LimiterError;
use chrono::{DateTime, Datelike, Months, NaiveTime};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Largest budget limit; larger limits act as this one (about 1.1 x 10^15).
pub const MAX_BUDGET: u64 = 1 << 50;
/// Ceiling of a counter, which settlements may push beyond its limit.
pub(crate) const MAX_USED: u64 = 1 << 52;
/// How long after its window ends a counter still takes settlements.
pub const SETTLE_GRACE: Duration = Duration::from_secs(3600);

/// A UTC calendar window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetWindow {
    /// From 00:00:00 UTC to the next 00:00:00 UTC.
    Day,
    /// From the first of the month, 00:00:00 UTC, to the first of the next.
    Month,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown budget window `{0}`: use day or month")]
pub struct BudgetWindowError(String);

impl BudgetWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The window holding the instant `at_s` (unix seconds); `None` only
    /// outside the calendar chrono knows (beyond the year 262,000).
    pub(crate) fn span_at(self, at_s: i64) -> Option<Span> {
        let date = DateTime::from_timestamp(at_s, 0)?.date_naive();
        let (first, next) = match self {
            Self::Day => (date, date.succ_opt()?),
            Self::Month => {
                let first = date.with_day(1)?;
                (first, first.checked_add_months(Months::new(1))?)
            }
        };
        let seconds = |d: chrono::NaiveDate| d.and_time(NaiveTime::MIN).and_utc().timestamp();
        Some(Span {
            start: seconds(first),
            end: seconds(next),
        })
    }
}

impl FromStr for BudgetWindow {
    type Err = BudgetWindowError;

    fn from_str(text: &str) -> Result<Self, BudgetWindowError> {
        match text.trim() {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(BudgetWindowError(other.to_string())),
        }
    }
}

impl fmt::Display for BudgetWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One calendar window, in unix seconds: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: i64,
    pub end: i64,
}

impl Span {
    /// When the window's counter may be forgotten (unix seconds).
    pub fn expires_s(self) -> i64 {
        self.end.saturating_add(SETTLE_GRACE.as_secs() as i64)
    }

    /// Whether a settlement at `now_s` still changes the counter.
    pub fn settles_at(self, now_s: i64) -> bool {
        now_s < self.expires_s()
    }
}

/// What [`crate::RateLimiter::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetDecision {
    pub allowed: bool,
    /// The window's counter after this call (with the reservation when
    /// allowed). Above `limit` when settlements charged more than was
    /// reserved.
    pub used: u64,
    /// The limit applied: the caller's, at most [`MAX_BUDGET`].
    pub limit: u64,
    /// `limit - used`, or 0 when the budget is spent.
    pub remaining: u64,
    /// The window's start (unix seconds). Settle against it: a reservation
    /// belongs to the window it was made in.
    pub window_id: i64,
    /// Until the window ends and a new counter starts at 0.
    pub reset_after: Duration,
}

impl BudgetDecision {
    pub(crate) fn of(allowed: bool, used: u64, limit: u64, span: Span, now_us: i64) -> Self {
        let limit = clamp_limit(limit);
        let end_us = span.end.saturating_mul(1_000_000);
        Self {
            allowed,
            used,
            limit,
            remaining: limit.saturating_sub(used),
            window_id: span.start,
            reset_after: Duration::from_micros(end_us.saturating_sub(now_us).max(0) as u64),
        }
    }
}

pub(crate) fn clamp_limit(limit: u64) -> u64 {
    limit.min(MAX_BUDGET)
}

/// An amount above every limit stays above every limit, within 2^53.
pub(crate) fn clamp_amount(amount: u64) -> u64 {
    amount.min(MAX_BUDGET + 1)
}

pub(crate) fn clamp_delta(delta: i64) -> i64 {
    delta.clamp(-(MAX_USED as i64), MAX_USED as i64)
}

/// Reserves `amount` on a counter at `used`: whether it fits under `limit`,
/// and the counter after. An amount of 0 is allowed and changes nothing.
pub(crate) fn reserve(used: u64, limit: u64, amount: u64) -> (bool, u64) {
    let (limit, amount) = (clamp_limit(limit), clamp_amount(amount));
    if amount == 0 {
        (true, used)
    } else if used.saturating_add(amount) <= limit {
        (true, used + amount)
    } else {
        (false, used)
    }
}

/// The counter at `used` after settling `delta`: never below 0, never
/// above [`MAX_USED`].
pub(crate) fn settle(used: u64, delta: i64) -> u64 {
    let used = used.min(MAX_USED) as i64;
    (used + clamp_delta(delta)).clamp(0, MAX_USED as i64) as u64
}

/// The window holding `now_us`, or an error for a clock outside the
/// calendar.
pub(crate) fn current_span(window: BudgetWindow, now_us: i64) -> Result<Span, LimiterError> {
    window.span_at(seconds(now_us)).ok_or_else(|| {
        LimiterError::Config(format!("the clock ({now_us} us) is outside the calendar"))
    })
}

/// Unix seconds of an instant in microseconds (floored).
pub(crate) fn seconds(now_us: i64) -> i64 {
    now_us.div_euclid(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("time")
            .timestamp()
    }

    #[test]
    fn windows_are_utc_calendar_days_and_months() {
        let now = at(2026, 2, 28, 23, 59, 59);
        let day = BudgetWindow::Day.span_at(now).expect("day");
        assert_eq!(
            (day.start, day.end),
            (at(2026, 2, 28, 0, 0, 0), at(2026, 3, 1, 0, 0, 0))
        );
        let month = BudgetWindow::Month.span_at(now).expect("month");
        assert_eq!(
            (month.start, month.end),
            (at(2026, 2, 1, 0, 0, 0), at(2026, 3, 1, 0, 0, 0))
        );
        // The boundary belongs to the next window; December rolls the year.
        let next = BudgetWindow::Day.span_at(day.end).expect("next day");
        assert_eq!(next.start, day.end);
        let dec = BudgetWindow::Month
            .span_at(at(2026, 12, 31, 12, 0, 0))
            .expect("december");
        assert_eq!(dec.end, at(2027, 1, 1, 0, 0, 0));
        // Leap years, and instants before 1970.
        let feb = BudgetWindow::Month.span_at(at(2028, 2, 10, 0, 0, 0));
        assert_eq!(feb.map(|s| s.end - s.start), Some(29 * 86_400));
        let old = BudgetWindow::Day.span_at(-1).expect("1969");
        assert_eq!((old.start, old.end), (-86_400, 0));
        // Any instant inside a window names it.
        assert_eq!(BudgetWindow::Day.span_at(day.start + 5), Some(day));
        assert_eq!(BudgetWindow::Day.span_at(i64::MAX), None);
    }

    #[test]
    fn windows_parse_from_their_names_only() {
        assert_eq!("day".parse(), Ok(BudgetWindow::Day));
        assert_eq!(" month ".parse(), Ok(BudgetWindow::Month));
        for bad in ["", "Day", "week", "daily", "1d"] {
            let err = bad.parse::<BudgetWindow>().expect_err(bad);
            assert!(err.to_string().contains("day or month"), "{err}");
        }
        assert_eq!(BudgetWindow::Month.to_string(), "month");
    }

    #[test]
    fn a_reservation_is_added_only_if_it_fits() {
        assert_eq!(reserve(0, 100, 100), (true, 100));
        assert_eq!(reserve(60, 100, 40), (true, 100));
        assert_eq!(reserve(60, 100, 41), (false, 60));
        assert_eq!(reserve(100, 100, 1), (false, 100));
        assert_eq!(reserve(100, 100, 0), (true, 100));
        // Over the limit after a settlement: refused, 0 still allowed.
        assert_eq!(reserve(150, 100, 1), (false, 150));
        assert_eq!(reserve(150, 100, 0), (true, 150));
        assert_eq!(reserve(0, u64::MAX, u64::MAX), (false, 0));
        assert_eq!(reserve(0, u64::MAX, MAX_BUDGET), (true, MAX_BUDGET));
    }

    #[test]
    fn settling_moves_the_counter_within_its_bounds() {
        assert_eq!(settle(100, -30), 70);
        assert_eq!(settle(100, 30), 130);
        assert_eq!(settle(100, -500), 0);
        assert_eq!(settle(0, i64::MIN), 0);
        assert_eq!(settle(MAX_USED - 1, i64::MAX), MAX_USED);
        assert_eq!(settle(7, 0), 7);
    }

    #[test]
    fn decisions_report_the_window_and_what_is_left() {
        let span = BudgetWindow::Day
            .span_at(at(2026, 1, 1, 18, 0, 0))
            .expect("day");
        let now_us = at(2026, 1, 1, 18, 0, 0) * 1_000_000 + 250_000;
        let d = BudgetDecision::of(true, 40, 100, span, now_us);
        assert_eq!((d.used, d.limit, d.remaining), (40, 100, 60));
        assert_eq!(d.window_id, at(2026, 1, 1, 0, 0, 0));
        assert_eq!(
            d.reset_after,
            Duration::from_micros(6 * 3_600_000_000 - 250_000)
        );
        let over = BudgetDecision::of(false, 130, u64::MAX, span, now_us);
        assert_eq!((over.limit, over.remaining), (MAX_BUDGET, MAX_BUDGET - 130));
        let spent = BudgetDecision::of(false, 130, 100, span, now_us);
        assert_eq!(spent.remaining, 0);
        // Settlements are taken until an hour after the window ends.
        assert!(span.settles_at(span.end + 3_599));
        assert!(!span.settles_at(span.end + 3_600));
    }
}
