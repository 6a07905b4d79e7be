//! Checks: assertions on a response, counted by name.

use http::{HeaderMap, HeaderName};

#[derive(Debug, Clone)]
pub struct Check {
    /// Unique within the request; the report's label.
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone)]
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

    pub fn passes(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
        let _ = (status, headers, body);
        todo!("Check::passes")
    }
}
