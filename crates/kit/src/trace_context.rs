//! W3C Trace Context (`traceparent`) parsing and generation.
//!
//! Reliable continues a caller's trace when a valid `traceparent` arrives and
//! starts a new one otherwise. An invalid header is ignored (per the W3C
//! spec), never an error for the client.

use std::fmt;

/// The `traceparent` of one hop: a trace id shared by the whole trace and the
/// span id of this hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value (`00-<32 hex>-<16 hex>-<2 hex>`).
    ///
    /// Every field sits at a fixed offset, so the value is checked and
    /// decoded in one pass over its bytes: every request a module gets
    /// from the gateway carries one, and splitting it and decoding each
    /// field with `from_str_radix` cost about 730 instructions of the
    /// in-process hop (issue 18).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().as_bytes();
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let version = hex_field(&v[0..2])?;
        if version == 0xff {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append
        // more, after a dash.
        if v.len() > 55 && (version == 0 || v[55] != b'-') {
            return None;
        }
        let trace_id = u128::from(hex_field(&v[3..19])?) << 64 | u128::from(hex_field(&v[19..35])?);
        let span_id = hex_field(&v[36..52])?;
        let flags = hex_field(&v[53..55])?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new root: random trace id and span id, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: crate::ids::nonzero_u128(),
            span_id: crate::ids::nonzero_u64(),
            sampled: true,
        }
    }

    /// The same trace with a fresh span id: the context of the next hop.
    pub fn child(&self) -> Self {
        Self {
            span_id: crate::ids::nonzero_u64(),
            ..*self
        }
    }

    /// The header value of this context, written digit by digit: the
    /// gateway sets one on every request it forwards, and `format!` with
    /// padded hex costs several times as much.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut value = [0u8; 55];
        value[..3].copy_from_slice(b"00-");
        put_hex(&mut value[3..35], &self.trace_id.to_be_bytes());
        value[35] = b'-';
        put_hex(&mut value[36..52], &self.span_id.to_be_bytes());
        value[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        http::HeaderValue::from_bytes(&value).unwrap_or_else(|_| {
            // Unreachable: every byte above is ASCII hex or '-'.
            http::HeaderValue::from_static("")
        })
    }

    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Lower-case hex of `bytes` into `out` (twice as long).
pub(crate) fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// The value of up to 16 lower-case hex digits; `None` if any byte is
/// not one (the spec allows no upper case).
fn hex_field(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_value_is_the_display_form() {
        for tp in [
            TraceParent::new_root(),
            TraceParent {
                trace_id: 1,
                span_id: u64::MAX,
                sampled: false,
            },
        ] {
            assert_eq!(tp.header_value().to_str().expect("ascii"), tp.to_string());
            assert_eq!(TraceParent::parse(&tp.to_string()), Some(tp));
        }
    }

    #[test]
    fn parses_the_spec_example() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id_hex(), "00f067aa0ba902b7");
        assert!(tp.sampled);
        assert_eq!(
            tp.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9é2b7-01",
        ] {
            assert!(
                TraceParent::parse(bad).is_none(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn later_versions_may_append_fields() {
        let tp = TraceParent::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes",
        )
        .expect("a later version with more fields");
        assert!(!tp.sampled);
        assert_eq!(tp.span_id, 0x00f0_67aa_0ba9_02b7);
        // Surrounding whitespace is tolerated.
        assert!(
            TraceParent::parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ")
                .is_some()
        );
    }

    #[test]
    fn child_keeps_the_trace() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(root.trace_id, child.trace_id);
        assert_ne!(root.span_id, child.span_id);
    }
}
