//! Time windows as OpenCost's `window` parameter writes them, so a query
//! written for OpenCost means the same here.
//!
//! | form | example | meaning |
//! |---|---|---|
//! | duration | `30m`, `12h`, `7d` | the last span, ending now |
//! | word | `today`, `yesterday`, `week`, `month`, `lastweek`, `lastmonth` | calendar spans in UTC; weeks start on Sunday, as OpenCost's do |
//! | RFC 3339 pair | `2026-11-01T00:00:00Z,2026-11-08T00:00:00Z` | exactly that span |
//! | Unix seconds pair | `1761955200,1762560000` | exactly that span |
//!
//! `now` is passed in, never read here, so tests fix it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// A span of time, start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A window or step that does not parse, with what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("window `{text}`: {reason}")]
pub struct WindowError {
    pub text: String,
    pub reason: String,
}

fn refuse(text: &str, reason: impl Into<String>) -> WindowError {
    WindowError {
        text: text.to_string(),
        reason: reason.into(),
    }
}

const EXPECTED: &str = "expected a duration (30m, 12h, 7d), a word (today, yesterday, week, month, lastweek, lastmonth), or a pair of RFC 3339 times or Unix seconds separated by a comma";

impl Window {
    /// Parses `text` relative to `now`.
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Self, WindowError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(refuse(text, EXPECTED));
        }
        if let Some((from, to)) = trimmed.split_once(',') {
            let start = instant(from.trim()).ok_or_else(|| refuse(text, EXPECTED))?;
            let end = instant(to.trim()).ok_or_else(|| refuse(text, EXPECTED))?;
            return Window::between(text, start, end);
        }
        let today = midnight(now.date_naive());
        let window = match trimmed {
            "today" => Window {
                start: today,
                end: now,
            },
            "yesterday" => Window {
                start: today - Duration::days(1),
                end: today,
            },
            "week" => Window {
                start: week_start(now),
                end: now,
            },
            "lastweek" => Window {
                start: week_start(now) - Duration::days(7),
                end: week_start(now),
            },
            "month" => Window {
                start: month_start(now.date_naive()),
                end: now,
            },
            "lastmonth" => {
                let this = month_start(now.date_naive());
                let previous = (this - Duration::days(1)).date_naive();
                Window {
                    start: month_start(previous),
                    end: this,
                }
            }
            _ => {
                let span = parse_span(trimmed).map_err(|reason| refuse(text, reason))?;
                Window {
                    start: now - span,
                    end: now,
                }
            }
        };
        Window::between(text, window.start, window.end)
    }

    fn between(text: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, WindowError> {
        if end <= start {
            return Err(refuse(text, "its start is not before its end"));
        }
        Ok(Window { start, end })
    }

    /// Its length in hours.
    pub fn hours(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 3_600_000.0
    }

    /// Its length in minutes.
    pub fn minutes(&self) -> f64 {
        self.hours() * 60.0
    }

    /// Cut into consecutive steps of `step` (the last one may be shorter);
    /// the whole window when `step` is `None`. At most `max_steps`.
    pub fn steps(
        &self,
        step: Option<Duration>,
        max_steps: usize,
    ) -> Result<Vec<Window>, WindowError> {
        let Some(step) = step else {
            return Ok(vec![*self]);
        };
        let mut steps = Vec::new();
        let mut start = self.start;
        while start < self.end {
            if steps.len() == max_steps {
                return Err(refuse(
                    &format!("{},{}", self.start.to_rfc3339(), self.end.to_rfc3339()),
                    format!("more than {max_steps} steps: use a longer step"),
                ));
            }
            let end = (start + step).min(self.end);
            steps.push(Window { start, end });
            start = end;
        }
        Ok(steps)
    }
}

/// Parses a step or a duration window: a whole number and a unit (`m`,
/// `h`, `d`, `w`).
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| EXPECTED.to_string())?;
    let (number, unit) = text.split_at(unit_at);
    let count: i64 = number.parse().map_err(|_| EXPECTED.to_string())?;
    if count == 0 {
        return Err("a span of 0 is empty".to_string());
    }
    // Bounded so that the arithmetic below cannot overflow chrono's range.
    if count > 100_000 {
        return Err(format!("{count} is too long a span"));
    }
    match unit {
        "m" => Ok(Duration::minutes(count)),
        "h" => Ok(Duration::hours(count)),
        "d" => Ok(Duration::days(count)),
        "w" => Ok(Duration::weeks(count)),
        _ => Err(EXPECTED.to_string()),
    }
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Utc.timestamp_opt(seconds, 0).single();
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

fn week_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let date = now.date_naive();
    let back = i64::from(date.weekday().num_days_from_sunday());
    midnight(date) - Duration::days(back)
}

fn month_start(date: NaiveDate) -> DateTime<Utc> {
    midnight(date.with_day(1).unwrap_or(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        // A Wednesday.
        Utc.with_ymd_and_hms(2026, 12, 2, 15, 30, 0)
            .single()
            .expect("time")
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn every_form_parses() {
        let cases = [
            ("7d", now() - Duration::days(7), now()),
            ("30m", now() - Duration::minutes(30), now()),
            ("today", at(2026, 12, 2), now()),
            ("yesterday", at(2026, 12, 1), at(2026, 12, 2)),
            ("week", at(2026, 11, 29), now()),
            ("lastweek", at(2026, 11, 22), at(2026, 11, 29)),
            ("month", at(2026, 12, 1), now()),
            ("lastmonth", at(2026, 11, 1), at(2026, 12, 1)),
            (
                "2026-11-01T00:00:00Z,2026-11-08T00:00:00Z",
                at(2026, 11, 1),
                at(2026, 11, 8),
            ),
            ("1793491200,1793577600", at(2026, 11, 1), at(2026, 11, 2)),
        ];
        for (text, start, end) in cases {
            assert_eq!(
                Window::parse(text, now()),
                Ok(Window { start, end }),
                "{text}"
            );
        }
        assert_eq!(Window::parse("7d", now()).expect("7d").hours(), 168.0);
    }

    #[test]
    fn bad_windows_are_refused() {
        for text in [
            "",
            "7x",
            "0d",
            "fortnight",
            "-3d",
            "2026-11-08T00:00:00Z,2026-11-01T00:00:00Z",
            "a,b",
            "99999999d",
        ] {
            let error = Window::parse(text, now()).expect_err(text);
            assert_eq!(error.text, text);
        }
    }

    #[test]
    fn steps_cover_the_window_and_are_bounded() {
        let window = Window::parse("1d", now()).expect("1d");
        let steps = window.steps(Some(Duration::hours(5)), 100).expect("steps");
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[0].start, window.start);
        assert_eq!(steps[4].end, window.end);
        assert_eq!(steps[4].hours(), 4.0);
        assert!(window.steps(Some(Duration::minutes(1)), 100).is_err());
        assert_eq!(window.steps(None, 1).expect("whole"), vec![window]);
    }
}
