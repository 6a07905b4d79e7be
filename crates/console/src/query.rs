//! Query parameters, parsed once at the edge into types; anything unknown
//! or out of range is the caller's 400, with the parameter named.

use crate::error::PageError;
use axum::extract::Query;
use axum::http::Uri;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Parses the query string into `T` (unknown parameters refused when `T`
/// denies unknown fields).
pub fn parse<T: DeserializeOwned + Default>(uri: &Uri) -> Result<T, PageError> {
    if uri.query().is_none_or(str::is_empty) {
        return Ok(T::default());
    }
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| PageError::bad_query("query", e.body_text()))
}

/// The SLO pages' chart span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    H1,
    H6,
    #[default]
    H24,
    D7,
    D30,
}

impl Window {
    pub const ALL: [Window; 5] = [Self::H1, Self::H6, Self::H24, Self::D7, Self::D30];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::H1 => "1h",
            Self::H6 => "6h",
            Self::H24 => "24h",
            Self::D7 => "7d",
            Self::D30 => "30d",
        }
    }

    pub fn millis(self) -> i64 {
        let hours = match self {
            Self::H1 => 1,
            Self::H6 => 6,
            Self::H24 => 24,
            Self::D7 => 7 * 24,
            Self::D30 => 30 * 24,
        };
        hours * 3_600_000
    }

    pub fn parse(text: Option<&str>) -> Result<Self, PageError> {
        let Some(text) = text else {
            return Ok(Self::default());
        };
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == text)
            .ok_or_else(|| PageError::bad_query("window", "must be one of 1h, 6h, 24h, 7d, 30d"))
    }
}

/// The page's reload period in seconds: the configured default, none for
/// `refresh=0`, or the given seconds within the configured bounds.
pub fn refresh(text: Option<&str>, default: Duration) -> Result<Option<u64>, PageError> {
    let Some(text) = text else {
        return Ok(Some(default.as_secs().max(1)));
    };
    let min = crate::config::MIN_REFRESH.as_secs();
    let max = crate::config::MAX_REFRESH.as_secs();
    match text.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(s) if (min..=max).contains(&s) => Ok(Some(s)),
        _ => Err(PageError::bad_query(
            "refresh",
            format!("seconds between {min} and {max}, or 0 to stop"),
        )),
    }
}

/// A look-back span such as `6h`, `30m` or `7d`, above zero and at most
/// `max`; `None` gives `default`.
pub fn since(
    name: &'static str,
    text: Option<&str>,
    default: Duration,
    max: Duration,
) -> Result<chrono::Duration, PageError> {
    let span = match text {
        None => default,
        Some(text) => humantime::parse_duration(text)
            .map_err(|_| PageError::bad_query(name, "a duration such as 30m, 6h or 7d"))?,
    };
    if span.is_zero() || span > max {
        return Err(PageError::bad_query(
            name,
            format!(
                "must be above zero and at most {}",
                humantime::format_duration(max)
            ),
        ));
    }
    chrono::Duration::from_std(span).map_err(|_| PageError::bad_query(name, "too long"))
}

/// A name as modules, services and SLOs spell them: `[A-Za-z0-9._:-]`,
/// 1 to 128 characters.
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_spans_are_bounded() {
        assert_eq!(Window::parse(None).ok(), Some(Window::H24));
        assert_eq!(Window::parse(Some("7d")).ok(), Some(Window::D7));
        assert!(Window::parse(Some("2h")).is_err());
        let week = Duration::from_secs(7 * 86_400);
        assert!(since("since", Some("8d"), week, week).is_err());
        assert!(since("since", Some("0s"), week, week).is_err());
        assert!(since("since", Some("soon"), week, week).is_err());
        assert_eq!(
            since("since", Some("6h"), week, week).ok(),
            Some(chrono::Duration::hours(6))
        );
        let ten = Duration::from_secs(10);
        assert_eq!(refresh(None, ten).ok(), Some(Some(10)));
        assert_eq!(refresh(Some("0"), ten).ok(), Some(None));
        assert!(refresh(Some("1"), ten).is_err());
        assert!(!is_name("<script>"));
        assert!(is_name("shortener-availability"));
    }
}
