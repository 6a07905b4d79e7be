//! [`CleanPath`]: a request path the gateway is willing to forward.
//!
//! Upstreams and the route table must see the same path, so the path is
//! checked once, here, and refused rather than rewritten when it tries to
//! climb: `/api/v1/../admin` is 400, never `/api/admin` (a prefix rule on
//! `/api/v1` must not be escapable) and never forwarded as is (an upstream
//! that resolves dot segments would serve `/api/admin`). Percent-encoded
//! dots and slashes (`%2e`, `%2f`, `%5c`) are refused for the same reason:
//! some upstreams decode before resolving.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("the path contains a `.` or `..` segment")]
    DotSegment,
    #[error("the path contains an encoded dot, slash or backslash")]
    EncodedSeparator,
    #[error("the path contains a backslash or a control character")]
    BadCharacter,
    #[error("the path is longer than {0} bytes")]
    TooLong(usize),
}

const MAX_LEN: usize = 4096;

impl CleanPath {
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if path.len() > MAX_LEN {
            return Err(PathError::TooLong(MAX_LEN));
        }
        if path.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
            return Err(PathError::BadCharacter);
        }
        let lower = path.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
            return Err(PathError::EncodedSeparator);
        }
        if path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(PathError::DotSegment);
        }
        // Collapse `//` so `//admin` cannot dodge a `/admin` route rule.
        let mut clean = String::with_capacity(path.len());
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            clean.push('/');
            clean.push_str(segment);
        }
        if clean.is_empty() || path.ends_with('/') {
            clean.push('/');
        }
        Ok(Self(clean))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if `prefix` (itself clean) covers this path on whole segments.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || self.0 == prefix
            || (self.0.starts_with(prefix) && self.0.as_bytes().get(prefix.len()) == Some(&b'/'))
    }

    /// The path with `prefix` removed (for `strip_prefix`); `/` if nothing is left.
    pub fn without_prefix(&self, prefix: &str) -> String {
        let prefix = prefix.trim_end_matches('/');
        if !self.has_prefix(prefix) {
            return self.0.clone();
        }
        let rest = &self.0[prefix.len()..];
        if rest.is_empty() {
            "/".to_string()
        } else {
            rest.to_string()
        }
    }
}

impl fmt::Display for CleanPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for bad in [
            "/api/v1/../admin",
            "/api/v1/..",
            "/./admin",
            "/api/%2e%2e/admin",
            "/api/%2E%2E/admin",
            "/api%2fadmin",
            "/api/..%5cadmin",
            "/api\\..\\admin",
            "relative",
            "",
        ] {
            assert!(CleanPath::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn collapses_empty_segments_and_keeps_the_rest() {
        assert_eq!(CleanPath::parse("//a///b").unwrap().as_str(), "/a/b");
        assert_eq!(CleanPath::parse("/a/b/").unwrap().as_str(), "/a/b/");
        assert_eq!(CleanPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(CleanPath::parse("/a..b/c.d").unwrap().as_str(), "/a..b/c.d");
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let path = CleanPath::parse("/api/links/x").unwrap();
        assert!(path.has_prefix("/api"));
        assert!(path.has_prefix("/api/"));
        assert!(path.has_prefix("/"));
        assert!(!path.has_prefix("/ap"));
        assert_eq!(path.without_prefix("/api"), "/links/x");
        assert_eq!(
            CleanPath::parse("/api").unwrap().without_prefix("/api"),
            "/"
        );
    }
}
