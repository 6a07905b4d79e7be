use super::*;
use proptest::prelude::*;

const LIMIT: usize = 1 << 16;

/// Everything the parser gives for `chunks`, `finish` included.
fn parse_chunks<'a>(
    limit: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<SseEvent, SseError>> {
    let mut parser = SseParser::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(item) = parser.next_event() {
            out.push(item);
        }
    }
    while let Some(item) = parser.finish() {
        out.push(item);
    }
    out
}

fn parse_all(stream: &[u8]) -> Vec<Result<SseEvent, SseError>> {
    parse_chunks(LIMIT, [stream])
}

fn parse_bytewise(stream: &[u8]) -> Vec<Result<SseEvent, SseError>> {
    parse_chunks(LIMIT, stream.chunks(1))
}

fn data(data: &str) -> Result<SseEvent, SseError> {
    Ok(SseEvent::data(data))
}

fn with_id(data: &str, id: &str) -> Result<SseEvent, SseError> {
    Ok(SseEvent {
        id: Some(id.into()),
        ..SseEvent::data(data)
    })
}

#[test]
fn the_specs_examples() {
    // Data lines join with a newline.
    let stream = b"data: YHOO\ndata: +2\ndata: 10\n\n";
    assert_eq!(parse_all(stream), vec![data("YHOO\n+2\n10")]);

    // Comments, ids (an `id` without a value is the empty id), and only one
    // space stripped after the colon.
    let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
    assert_eq!(
        parse_all(stream),
        vec![
            with_id("first event", "1"),
            with_id("second event", ""),
            data(" third event")
        ]
    );

    // A field without a colon; an empty data buffer dispatches nothing but
    // an empty data line does; the last block has no blank line after it.
    let stream = b"data\n\ndata\ndata\n\ndata:";
    assert_eq!(
        parse_all(stream),
        vec![data(""), data("\n"), Err(SseError::Truncated { bytes: 5 })]
    );

    // The space after the colon is optional.
    assert_eq!(
        parse_all(b"data:test\n\ndata: test\n\n"),
        vec![data("test"), data("test")]
    );
}

#[test]
fn lf_crlf_and_cr_end_lines_alike() {
    let lf = "event: add\ndata: 73857293\n\n: keep-alive\n\ndata: a\ndata: b\nid: 7\n\n";
    let expected = vec![
        Ok(SseEvent {
            event: Some("add".into()),
            data: "73857293".into(),
            id: None,
        }),
        Ok(SseEvent {
            event: None,
            data: "a\nb".into(),
            id: Some("7".into()),
        }),
    ];
    for stream in [
        lf.to_string(),
        lf.replace('\n', "\r\n"),
        lf.replace('\n', "\r"),
    ] {
        assert_eq!(parse_all(stream.as_bytes()), expected, "{stream:?}");
        assert_eq!(parse_bytewise(stream.as_bytes()), expected, "{stream:?}");
    }
    // Mixed in one stream.
    assert_eq!(
        parse_all(b"data: a\r\ndata: b\rdata: c\n\r\n"),
        vec![data("a\nb\nc")]
    );
}

#[test]
fn a_crlf_split_between_chunks_is_one_line_end() {
    let chunks: [&[u8]; 4] = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"];
    assert_eq!(parse_chunks(LIMIT, chunks), vec![data("a\nb")]);
    // A lone CR at a chunk's end, then a line: two lines, not one.
    let chunks: [&[u8]; 3] = [b"data: a\r", b"data: b\r", b"\r"];
    assert_eq!(parse_chunks(LIMIT, chunks), vec![data("a\nb")]);
}

#[test]
fn a_byte_order_mark_is_ignored_at_the_start_only() {
    let stream = "\u{FEFF}data: x\n\n\u{FEFF}data: y\n\ndata: z\n\n";
    // The second BOM makes its field name unknown: that event has no data.
    assert_eq!(parse_all(stream.as_bytes()), vec![data("x"), data("z")]);
    assert_eq!(
        parse_bytewise(stream.as_bytes()),
        vec![data("x"), data("z")]
    );
    // Bytes that start like a BOM but are not one are kept.
    assert_eq!(parse_all(b"\xEF\xBBdata: x\n\n"), vec![]);
    assert_eq!(
        parse_all(b"\xEF\xBB"),
        vec![Err(SseError::Truncated { bytes: 2 })]
    );
}

#[test]
fn a_split_byte_order_mark_is_held_even_under_a_tiny_limit() {
    // Found by the openai_sse fuzz target: the first two bytes of a BOM
    // wait for the third whatever the limit, so a drained parser may hold
    // 2 bytes under a limit of 1.
    let mut parser = SseParser::new(1);
    for byte in b"\xEF\xBB" {
        parser.push(&[*byte]);
        assert_eq!(parser.next_event(), None);
    }
    assert_eq!(parser.buffered_bytes(), 2);
    parser.push(b"\xBF");
    assert_eq!(parser.next_event(), None);
    assert_eq!(parser.buffered_bytes(), 0, "a BOM is dropped");
    parser.push(b"data\n\n");
    assert_eq!(
        parser.next_event(),
        Some(Err(SseError::TooLarge { limit: 1 }))
    );
    assert_eq!(parser.finish(), None);
    assert_eq!(
        parse_chunks(4, [&b"\xEF\xBB\xBFdata\n\n"[..]]),
        vec![data("")]
    );
}

#[test]
fn utf8_split_across_chunks_decodes_whole_and_invalid_bytes_are_replaced() {
    let stream = "data: h\u{e9}llo \u{4e2d}\u{6587} \u{1F600}\n\n".as_bytes();
    assert_eq!(
        parse_bytewise(stream),
        vec![data("h\u{e9}llo \u{4e2d}\u{6587} \u{1F600}")]
    );
    assert_eq!(
        parse_all(b"data: a\xffb\xe4\xb8\n\n"),
        vec![data("a\u{FFFD}b\u{FFFD}")]
    );
}

#[test]
fn event_names_and_ids_follow_the_spec() {
    let stream = b"event:\ndata: a\n\nevent: x\nevent: y\ndata: b\n\nid: bad\0id\ndata: c\n\nretry: 10\nfoo: bar\ndata: d\n\n";
    let events: Vec<_> = parse_all(stream).into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0].event, None, "an empty event name is a message");
    assert_eq!(events[1].event.as_deref(), Some("y"), "the last one wins");
    assert_eq!(events[2].id, None, "an id with a NUL is ignored");
    assert_eq!(
        events[3],
        SseEvent::data("d"),
        "retry and unknown fields are ignored"
    );
    // An event with no data dispatches nothing, and its name does not leak.
    assert_eq!(parse_all(b"event: x\n\ndata: a\n\n"), vec![data("a")]);
}

#[test]
fn an_oversized_event_is_refused_and_the_next_one_parsed() {
    // Several lines that together pass the limit.
    let mut stream = Vec::new();
    for _ in 0..10 {
        stream.extend_from_slice(b"data: 0123456789\n");
    }
    stream.extend_from_slice(b"\ndata: next\n\n");
    let expected = vec![Err(SseError::TooLarge { limit: 64 }), data("next")];
    assert_eq!(parse_chunks(64, [&stream[..]]), expected);
    assert_eq!(parse_chunks(64, stream.chunks(1)), expected);
    assert_eq!(parse_chunks(64, stream.chunks(7)), expected);
    // Comments do not count: a keep-alive stream never fills the limit.
    let pings = b": ping\n".repeat(100);
    assert_eq!(
        parse_chunks(64, [&pings[..], b"data: x\n\n"]),
        vec![data("x")]
    );
}

#[test]
fn an_endless_line_is_refused_and_never_held() {
    let mut parser = SseParser::new(1024);
    parser.push(b"data: ok\n\ndata: ");
    assert_eq!(parser.next_event(), Some(data("ok")));
    let mut refused = 0;
    for _ in 0..1000 {
        parser.push(&[b'x'; 997]);
        while let Some(item) = parser.next_event() {
            assert_eq!(item, Err(SseError::TooLarge { limit: 1024 }));
            refused += 1;
        }
        assert!(
            parser.buffered_bytes() <= 1024,
            "{}",
            parser.buffered_bytes()
        );
        assert!(parser.buf.capacity() <= 4 * MIN_CAPACITY);
    }
    assert_eq!(refused, 1, "one error per event");
    // The end of the long line is not a blank line: the event goes on being
    // skipped up to its real end.
    parser.push(b"\ndata: still the same event\n\ndata: after\n\n");
    assert_eq!(parser.next_event(), Some(data("after")));
    assert_eq!(parser.finish(), None);
}

#[test]
fn one_huge_chunk_is_not_kept_after_it_is_read() {
    let mut stream = b"data: a\n\n".repeat(100_000);
    stream.extend_from_slice(b"data: tail");
    let mut parser = SseParser::new(1024);
    parser.push(&stream);
    let mut count = 0;
    while let Some(item) = parser.next_event() {
        assert_eq!(item, data("a"));
        count += 1;
    }
    assert_eq!(count, 100_000);
    assert_eq!(parser.buffered_bytes(), "data: tail".len());
    assert!(parser.buf.capacity() <= 2 * MIN_CAPACITY);
}

#[test]
fn the_end_of_the_stream_reports_a_truncated_event() {
    assert_eq!(parse_all(b"data: [DONE]\n\n"), vec![data("[DONE]")]);
    assert_eq!(parse_all(b""), vec![]);
    assert_eq!(parse_all(b": bye\n"), vec![], "a comment is not an event");
    assert_eq!(parse_all(b"data: a\n\n\n\n"), vec![data("a")]);
    assert_eq!(
        parse_all(b"data: a\n\ndata: [DONE]"),
        vec![data("a"), Err(SseError::Truncated { bytes: 12 })]
    );
    assert_eq!(
        parse_all(b"data: a\n\ndata: b\n"),
        vec![data("a"), Err(SseError::Truncated { bytes: 7 })]
    );
    assert_eq!(
        parse_all(b"data: a\n\ndata: b\r"),
        vec![data("a"), Err(SseError::Truncated { bytes: 7 })]
    );
    // Events still buffered come out of finish before the error, and
    // finish is idempotent.
    let mut parser = SseParser::new(LIMIT);
    parser.push(b"data: 1\n\ndata: 2\n\nid: 3");
    assert_eq!(parser.finish(), Some(data("1")));
    assert_eq!(parser.finish(), Some(data("2")));
    assert_eq!(parser.finish(), Some(Err(SseError::Truncated { bytes: 5 })));
    assert_eq!(parser.finish(), None);
    parser.push(b"data: late\n\n");
    assert_eq!(parser.next_event(), None, "nothing is read after the end");
}

#[test]
fn to_bytes_writes_what_parses_back() {
    let events = [
        SseEvent::data("[DONE]"),
        SseEvent::data(""),
        SseEvent::data("\n"),
        SseEvent::data(" leading space\nline two\n"),
        SseEvent {
            event: Some("error".into()),
            data: "{\"a\":1}".into(),
            id: Some("".into()),
        },
    ];
    for event in events {
        let bytes = event.to_bytes();
        assert_eq!(parse_all(&bytes), vec![Ok(event.clone())], "{bytes:?}");
    }
    assert_eq!(
        &SseEvent::data("a\nb").to_bytes()[..],
        b"data: a\ndata: b\n\n"
    );
    // Line breaks cannot inject fields or events.
    let sneaky = SseEvent {
        event: Some("x\ndata: injected\n\n".into()),
        data: "a\r\nb\rc".into(),
        id: Some("1\r\ndata: injected".into()),
    };
    assert_eq!(
        &sneaky.to_bytes()[..],
        b"event: x\nid: 1\ndata: a\ndata: b\ndata: c\n\n"
    );
}

/// An event as a generator makes it, and the stream text that sends it.
fn event_strategy() -> impl Strategy<Value = SseEvent> {
    (
        proptest::option::of("[a-z_]{1,8}"),
        proptest::collection::vec("[a-zA-Z0-9 :{}\"é中]{0,12}", 1..4),
        proptest::option::of("[a-z0-9]{0,4}"),
    )
        .prop_map(|(event, lines, id)| SseEvent {
            event,
            data: lines.join("\n"),
            id,
        })
}

fn write_stream(events: &[SseEvent], line_end: &str, bom: bool) -> Vec<u8> {
    let mut out = String::new();
    if bom {
        out.push('\u{FEFF}');
    }
    for (i, event) in events.iter().enumerate() {
        if i % 3 == 0 {
            out.push_str(": keep-alive");
            out.push_str(line_end);
        }
        let text = String::from_utf8(event.to_bytes().to_vec()).expect("UTF-8");
        out.push_str(&text.replace('\n', line_end));
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However a valid stream is cut into chunks, the same events come out,
    /// the ones that were sent.
    #[test]
    fn splitting_a_stream_anywhere_gives_the_same_events(
        events in proptest::collection::vec(event_strategy(), 0..8),
        line_end in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        bom in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = write_stream(&events, line_end, bom);
        let expected: Vec<_> = events.into_iter().map(Ok).collect();
        prop_assert_eq!(&parse_all(&stream), &expected);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&stream[start..point]);
            start = point;
        }
        chunks.push(&stream[start..]);
        prop_assert_eq!(&parse_chunks(LIMIT, chunks), &expected);
    }

    /// Arbitrary bytes, whole or byte by byte, give the same results, and
    /// what the parser holds stays within the limit.
    #[test]
    fn arbitrary_bytes_parse_alike_in_any_chunking(
        stream in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'd'), any::<u8>()],
            0..200,
        ),
        limit in 1usize..40,
    ) {
        let whole = parse_chunks(limit, [&stream[..]]);
        prop_assert_eq!(&parse_chunks(limit, stream.chunks(1)), &whole);
        prop_assert_eq!(&parse_chunks(limit, stream.chunks(3)), &whole);
        let mut parser = SseParser::new(limit);
        for byte in stream.chunks(1) {
            parser.push(byte);
            while parser.next_event().is_some() {}
            prop_assert!(parser.buffered_bytes() <= limit.max(2));
        }
    }
}
