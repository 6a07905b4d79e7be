//! Captures: a value from a response kept in a pool.
//!
//! This is how a scenario reads what it wrote: setup creates links and
//! keeps their slugs, a later request picks one. A JSON string is kept
//! without its quotes (a slug is `abc`, not `"abc"`); any other JSON value
//! is kept as its compact JSON text, so a numeric id works as well.

use crate::plan::PoolId;
use bytes::Bytes;
use http::{HeaderMap, HeaderName};

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub pool: PoolId,
    pub source: CaptureSource,
    /// How the report names it, e.g. `slugs <- json /slug`.
    pub label: String,
    /// The file line that declared it.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaptureSource {
    /// RFC 6901 pointer into a JSON body; strings are kept without quotes,
    /// other values as their JSON text.
    JsonPointer(String),
    Header(HeaderName),
}

impl Capture {
    pub fn needs_body(&self) -> bool {
        matches!(self.source, CaptureSource::JsonPointer(_))
    }

    /// The value, or `None` when the response does not have it: no such
    /// header, a body that is not JSON, a pointer that matches nothing or
    /// matches `null`.
    pub fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<Bytes> {
        match &self.source {
            CaptureSource::Header(name) => headers
                .get(name)
                .map(|value| Bytes::copy_from_slice(value.as_bytes())),
            CaptureSource::JsonPointer(pointer) => {
                let document: serde_json::Value = serde_json::from_slice(body).ok()?;
                match document.pointer(pointer)? {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => Some(Bytes::from(text.clone())),
                    other => Some(Bytes::from(other.to_string())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn capture(source: CaptureSource) -> Capture {
        Capture {
            pool: 0,
            source,
            label: "test".into(),
            line: 1,
        }
    }

    #[test]
    fn a_json_string_is_kept_without_quotes_and_other_values_as_json() {
        let body =
            br#"{"slug": "abc", "id": 42, "tags": ["a", "b"], "gone": null, "a/b": {"~": 1}}"#;
        let headers = HeaderMap::new();
        let get = |pointer: &str| {
            capture(CaptureSource::JsonPointer(pointer.into())).extract(&headers, body)
        };
        assert_eq!(get("/slug"), Some(Bytes::from("abc")));
        assert_eq!(get("/id"), Some(Bytes::from("42")));
        assert_eq!(get("/tags"), Some(Bytes::from(r#"["a","b"]"#)));
        assert_eq!(get("/tags/1"), Some(Bytes::from("b")));
        assert_eq!(get("/a~1b/~0"), Some(Bytes::from("1")));
        assert_eq!(get("/missing"), None);
        assert_eq!(get("/gone"), None);
        assert!(capture(CaptureSource::JsonPointer("/slug".into())).needs_body());
    }

    #[test]
    fn a_body_that_is_not_json_captures_nothing() {
        let capture = capture(CaptureSource::JsonPointer("/slug".into()));
        assert_eq!(capture.extract(&HeaderMap::new(), b"<html>"), None);
    }

    #[test]
    fn a_header_is_captured_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert("location", HeaderValue::from_static("/abc"));
        let capture = capture(CaptureSource::Header(HeaderName::from_static("location")));
        assert!(!capture.needs_body());
        assert_eq!(capture.extract(&headers, b""), Some(Bytes::from("/abc")));
        assert_eq!(capture.extract(&HeaderMap::new(), b""), None);
    }
}
