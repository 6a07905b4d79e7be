//! Checks: assertions on a response, counted by name.
//!
//! A check is not an error: a failed check is counted under its name and
//! the run goes on, so one run can say "99.2% of redirects had a Location
//! header" instead of stopping at the first one that did not.

use http::{HeaderMap, HeaderName};

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Unique within the request; the report's label.
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    StatusIn(Vec<u16>),
    HeaderPresent(HeaderName),
    JsonEquals {
        pointer: String,
        value: serde_json::Value,
    },
}

impl Check {
    pub fn needs_body(&self) -> bool {
        matches!(self.kind, CheckKind::JsonEquals { .. })
    }

    /// Whether the response passes. Numbers compare by value, so `1` in
    /// the file equals `1.0` in a body.
    pub fn passes(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
        match &self.kind {
            CheckKind::StatusIn(statuses) => statuses.contains(&status),
            CheckKind::HeaderPresent(name) => headers.contains_key(name),
            CheckKind::JsonEquals { pointer, value } => {
                let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
                    return false;
                };
                document
                    .pointer(pointer)
                    .is_some_and(|found| json_equal(found, value))
            }
        }
    }
}

fn json_equal(found: &serde_json::Value, expected: &serde_json::Value) -> bool {
    match (found, expected) {
        (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
            a == b || a.as_f64().is_some_and(|a| b.as_f64() == Some(a))
        }
        _ => found == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn check(kind: CheckKind) -> Check {
        Check {
            name: "test".into(),
            kind,
        }
    }

    #[test]
    fn status_in_a_set() {
        let check = check(CheckKind::StatusIn(vec![301, 302]));
        assert!(check.passes(302, &HeaderMap::new(), b""));
        assert!(!check.passes(200, &HeaderMap::new(), b""));
        assert!(!check.needs_body());
    }

    #[test]
    fn header_present() {
        let check = check(CheckKind::HeaderPresent(HeaderName::from_static(
            "location",
        )));
        let mut headers = HeaderMap::new();
        assert!(!check.passes(302, &headers, b""));
        headers.insert("location", HeaderValue::from_static("/x"));
        assert!(check.passes(302, &headers, b""));
    }

    #[test]
    fn json_pointer_equals_a_value() {
        let ok = check(CheckKind::JsonEquals {
            pointer: "/status".into(),
            value: json!("ok"),
        });
        assert!(ok.needs_body());
        assert!(ok.passes(200, &HeaderMap::new(), br#"{"status":"ok"}"#));
        assert!(!ok.passes(200, &HeaderMap::new(), br#"{"status":"degraded"}"#));
        assert!(!ok.passes(200, &HeaderMap::new(), br#"{}"#));
        assert!(!ok.passes(200, &HeaderMap::new(), b"not json"));

        let count = check(CheckKind::JsonEquals {
            pointer: "/n".into(),
            value: json!(1),
        });
        assert!(count.passes(200, &HeaderMap::new(), br#"{"n":1.0}"#));
        assert!(!count.passes(200, &HeaderMap::new(), br#"{"n":"1"}"#));
    }
}
