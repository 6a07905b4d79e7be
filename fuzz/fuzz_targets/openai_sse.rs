//! The LLM gateway's reader of a backend's stream: `openai::SseParser` fed
//! arbitrary bytes cut into arbitrary chunks (empty ones included), then
//! `openai::chunk_usage` on every event's data, as the gateway runs it on
//! each chunk of each stream.
//! Properties: no panic; the same results (events and errors) whether the
//! stream comes whole, byte by byte or cut anywhere; memory bounded (after
//! the parser is drained it holds at most its limit, or the 2 bytes of a
//! byte order mark's start); an event's strings
//! hold no line break and fit the limit; an event written back with
//! `to_bytes` parses to itself; a truncated event is only ever the last
//! result; a usage-only chunk carries usage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openai::{chunk_usage, SseError, SseEvent, SseParser};

fuzz_target!(|data: &[u8]| {
    let (header, stream) = data.split_at(data.len().min(4));
    let header = [header, &[0; 4]].concat();
    let limit = usize::from(u16::from_le_bytes([header[0], header[1]]) % 4096) + 1;
    let mut seed = u32::from(u16::from_le_bytes([header[2], header[3]])) | 1 << 16;

    let whole = parse(limit, [stream]);
    assert_eq!(parse(limit, stream.chunks(1)), whole, "byte by byte");
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes 0..=16 from the header's seed.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let (chunk, tail) = rest.split_at((seed % 17) as usize % (rest.len() + 1));
        chunks.push(chunk);
        rest = tail;
    }
    assert_eq!(parse(limit, chunks), whole, "cut at random points");

    for (i, result) in whole.iter().enumerate() {
        match result {
            Ok(event) => {
                check_event(event, limit);
                if !event.is_done() {
                    if let Ok(info) = chunk_usage(&event.data) {
                        assert!(!info.usage_only || info.usage.is_some());
                    }
                }
            }
            Err(SseError::TooLarge { limit: l }) => assert_eq!(*l, limit),
            Err(SseError::Truncated { .. }) => assert_eq!(i, whole.len() - 1, "truncated is last"),
        }
    }
});

/// Everything the parser gives for `chunks` (`finish` included), checking
/// that a drained parser holds at most its limit.
fn parse<'a>(
    limit: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<SseEvent, SseError>> {
    let mut parser = SseParser::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(result) = parser.next_event() {
            out.push(result);
        }
        // (The start of a byte order mark waits for its third byte.)
        assert!(
            parser.buffered_bytes() <= limit.max(2),
            "{} bytes held, limit {limit}",
            parser.buffered_bytes()
        );
    }
    while let Some(result) = parser.finish() {
        out.push(result);
    }
    assert_eq!(parser.buffered_bytes(), 0);
    out
}

fn check_event(event: &SseEvent, limit: usize) {
    let breaks = |s: &str| s.contains(['\r', '\n']);
    assert!(!event.data.contains('\r'));
    assert!(event
        .event
        .as_deref()
        .is_none_or(|e| !e.is_empty() && !breaks(e)));
    assert!(event
        .id
        .as_deref()
        .is_none_or(|id| !breaks(id) && !id.contains('\0')));
    let size = event.data.len()
        + event.event.as_ref().map_or(0, String::len)
        + event.id.as_ref().map_or(0, String::len);
    assert!(
        size <= limit,
        "an event of {size} bytes passed the limit {limit}"
    );
    // Written back, it reads as itself (under a limit its lines fit).
    let bytes = event.to_bytes();
    let again = parse(bytes.len(), [&bytes[..]]);
    assert_eq!(again, vec![Ok(event.clone())], "written back as {bytes:?}");
}
