//! Captures: a value from a response kept in a pool.

use crate::plan::PoolId;
use bytes::Bytes;
use http::{HeaderMap, HeaderName};

#[derive(Debug, Clone)]
pub struct Capture {
    pub pool: PoolId,
    pub source: CaptureSource,
    /// How the report names it, e.g. `slugs <- json /slug`.
    pub label: String,
    /// The file line that declared it.
    pub line: usize,
}

#[derive(Debug, Clone)]
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

    /// The value, or `None` when the response does not have it.
    pub fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<Bytes> {
        let _ = (headers, body);
        todo!("Capture::extract")
    }
}
