//! The one representation of stored times: integer Unix microseconds (UTC)
//! in a `BIGINT`/`INTEGER` column, on SQLite and PostgreSQL alike.
//!
//! Why integers and not `TIMESTAMPTZ`: the modules run the same SQL text on
//! both engines (orders and the notifier implement their ports once for
//! both), and a bound `i64` means the same thing to each; SQLite has no time
//! type at all, so a native type on PostgreSQL would split every adapter in
//! two again. Microseconds because that is PostgreSQL's resolution and
//! `i64` microseconds reach the year 294,247. Columns are named `*_us` or
//! documented as microseconds in their migration.
//!
//! A time goes in through [`to_micros`] and comes back through
//! [`from_micros`]; [`truncate`] gives what a later read will return, so a
//! store can answer a write with exactly the value a read would.

use super::StoreError;
use chrono::{DateTime, Utc};

/// `at` as stored: Unix microseconds (sub-microsecond digits dropped).
pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored time back as a `DateTime`; [`StoreError::Corrupt`] if out of
/// chrono's range.
pub fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Corrupt(format!("time {us}")))
}

/// `at` as a read will return it after it was stored.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(to_micros(at)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_microsecond_resolution() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("time");
        let stored = to_micros(at);
        assert_eq!(stored, 1_700_000_000_123_456);
        let read = from_micros(stored).expect("read");
        assert_eq!(read, truncate(at));
        assert_eq!(read.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(truncate(read), read);
    }

    #[test]
    fn out_of_range_is_corrupt() {
        assert!(matches!(from_micros(i64::MAX), Err(StoreError::Corrupt(_))));
    }
}
