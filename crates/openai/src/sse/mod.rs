//! An incremental Server-Sent Events parser, as the WHATWG HTML spec's
//! "interpreting an event stream" reads a stream, fed whatever byte chunks
//! the network delivers.
//!
//! A backend's stream is untrusted: the parser's memory is bounded by its
//! `max_event_bytes` whatever arrives (an endless line, an endless event),
//! and a chunk may end anywhere: inside a line, between the CR and LF of a
//! line end, inside a UTF-8 sequence or the stream's byte order mark.
//! Lines end at CRLF, LF or CR. Bytes are split into lines before they are
//! decoded (line ends are ASCII and never occur inside a UTF-8 sequence),
//! and each value is then decoded with U+FFFD for invalid UTF-8, which is
//! what decoding the whole stream first would give.
//!
//! Two departures from the spec, both for a proxy's needs: an event's `id`
//! is the `id` field of that event only (the spec's "last event ID"
//! carries over to later events, which only a reconnecting client needs),
//! and `retry` fields are ignored (the gateway does not reconnect).

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event` field; `None` when absent or empty (a `message`).
    pub event: Option<String>,
    /// The `data` lines, joined by `\n`.
    pub data: String,
    /// The `id` field of this event, if it had one (without a NUL).
    pub id: Option<String>,
}

impl SseEvent {
    /// A `message` event with this data.
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            event: None,
            data: data.into(),
            id: None,
        }
    }

    /// OpenAI's end of stream: `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }

    /// The event written back: `event:` and `id:` lines when present, one
    /// `data:` line per line of data (split at CRLF, LF or CR), then the
    /// blank line that dispatches it. An `event` or `id` is cut at its
    /// first line break (a parsed one has none), so no value can inject a
    /// field or an event.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.data.len() + 16);
        if let Some(event) = &self.event {
            put_field(&mut out, "event", first_line(event));
        }
        if let Some(id) = &self.id {
            put_field(&mut out, "id", first_line(id));
        }
        for line in lines(&self.data) {
            put_field(&mut out, "data", line);
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

fn put_field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_u8(b'\n');
}

fn first_line(s: &str) -> &str {
    s.split(['\r', '\n']).next().unwrap_or("")
}

/// The lines of `s`, split at CRLF, LF or CR (so `"a\r\nb"` is two lines).
fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Why the stream (or one event of it) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event, or a line, passed the limit. The parser skips the rest of
    /// that event and goes on with the next one.
    #[error("an event stream event is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The stream ended inside an event, which per the spec is discarded.
    #[error("the event stream ended inside an event ({bytes} bytes not dispatched)")]
    Truncated { bytes: usize },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The input buffer's capacity is not shrunk below this.
const MIN_CAPACITY: usize = 16 * 1024;

/// The parser. Feed it with [`push`](SseParser::push), pull events with
/// [`next_event`](SseParser::next_event) until `None`, and at the end of
/// the stream call [`finish`](SseParser::finish) until `None`.
///
/// Memory: the unread part of the pushed chunks (pull after each push and
/// that is at most one chunk), plus at most `max_event_bytes` of the event
/// being read. Only a dispatched event's strings are allocated.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Input not yet consumed from `pos` on: the partial line, then
    /// chunks not yet read.
    buf: Vec<u8>,
    pos: usize,
    /// Where the search for the next line end resumes (past `pos` when a
    /// partial line is known to have none yet).
    scan: usize,
    /// The stream's first bytes were looked at for a byte order mark.
    bom_checked: bool,
    /// The last line ended with CR: an LF that follows belongs to it.
    after_cr: bool,
    /// The line being read is past the limit: its bytes are dropped up to
    /// its end.
    discarding_line: bool,
    /// The event being read is past the limit: its lines are dropped up
    /// to the blank line that ends it.
    skipping_event: bool,
    /// `finish` was called: no more input comes.
    finished: bool,
    event: PendingEvent,
}

/// The fields of the event being read.
#[derive(Debug, Default)]
struct PendingEvent {
    /// Bytes of its field lines so far (line ends and comments excluded;
    /// decoded, if that is more), the partial line excepted: with the
    /// partial line, what the limit applies to.
    bytes: usize,
    /// A field line (not a comment) was read since the last dispatch.
    has_fields: bool,
    data_lines: usize,
    data: String,
    event: Option<String>,
    id: Option<String>,
}

impl PendingEvent {
    fn field(&mut self, line: &[u8]) {
        self.has_fields = true;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.data_lines > 0 {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data_lines += 1;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned())
            }
            _ => {}
        }
    }

    /// Bytes of its decoded strings.
    fn held(&self) -> usize {
        self.data.len()
            + self.event.as_ref().map_or(0, String::len)
            + self.id.as_ref().map_or(0, String::len)
    }

    /// The blank line: the event, if it had data; the fields reset.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let pending = std::mem::take(self);
        if pending.data_lines == 0 {
            return None;
        }
        Some(SseEvent {
            event: pending.event.filter(|e| !e.is_empty()),
            data: pending.data,
            id: pending.id,
        })
    }
}

impl SseParser {
    /// A parser that refuses an event (or a line) over `max_event_bytes`,
    /// counting the bytes of its lines without their line ends.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            buf: Vec::new(),
            pos: 0,
            scan: 0,
            bom_checked: false,
            after_cr: false,
            discarding_line: false,
            skipping_event: false,
            finished: false,
            event: PendingEvent::default(),
        }
    }

    /// Appends a chunk of the stream. Ignored after [`finish`](Self::finish).
    pub fn push(&mut self, chunk: &[u8]) {
        if !self.finished {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes the parser holds: unread input and the event being read. Once
    /// drained (`next_event` gave `None`), at most `max_event_bytes`, or 2
    /// when those are the start of what may be a byte order mark.
    pub fn buffered_bytes(&self) -> usize {
        (self.buf.len() - self.pos) + self.event.held()
    }

    /// The next complete event, an error for an event that passed the
    /// limit, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        loop {
            if !self.bom_checked && !self.check_bom() {
                return None;
            }
            if self.after_cr {
                let Some(&next) = self.buf.get(self.pos) else {
                    self.compact();
                    return None;
                };
                if next == b'\n' {
                    self.pos += 1;
                    self.scan = self.scan.max(self.pos);
                }
                self.after_cr = false;
            }
            let found = self.buf[self.scan..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r');
            let Some(offset) = found else {
                return self.partial_line();
            };
            let end = self.scan + offset;
            let start = self.pos;
            self.after_cr = self.buf[end] == b'\r';
            self.pos = end + 1;
            self.scan = self.pos;
            if self.discarding_line {
                // The end of a line already refused.
                self.discarding_line = false;
                continue;
            }
            if start == end {
                if self.skipping_event {
                    self.skipping_event = false;
                    continue;
                }
                match self.event.dispatch() {
                    Some(event) => return Some(Ok(event)),
                    None => continue,
                }
            }
            if self.skipping_event {
                continue;
            }
            // Checked as the partial line was, so that where the chunks
            // end changes nothing.
            let len = end - start;
            if self.event.bytes + len > self.max_event_bytes {
                return Some(Err(self.refuse_event()));
            }
            // A comment is not kept, so it does not add to the event
            // (keep-alive comments may come without blank lines).
            if self.buf[start] == b':' {
                continue;
            }
            self.event.field(&self.buf[start..end]);
            // Invalid UTF-8 grows when decoded (a byte becomes U+FFFD, 3).
            self.event.bytes = (self.event.bytes + len).max(self.event.held());
            if self.event.bytes > self.max_event_bytes {
                return Some(Err(self.refuse_event()));
            }
        }
    }

    /// Ends the stream: the events still complete in the buffer, then
    /// [`SseError::Truncated`] if the stream stopped inside an event (the
    /// spec discards it; the caller may count the stream as malformed),
    /// then `None`.
    pub fn finish(&mut self) -> Option<Result<SseEvent, SseError>> {
        self.finished = true;
        if let Some(next) = self.next_event() {
            return Some(next);
        }
        let partial = self.buf.len() - self.pos;
        let bytes = self.event.bytes + partial;
        let truncated = !self.skipping_event && (partial > 0 || self.event.has_fields);
        self.buf.clear();
        self.pos = 0;
        self.scan = 0;
        self.event = PendingEvent::default();
        self.skipping_event = false;
        self.discarding_line = false;
        truncated.then_some(Err(SseError::Truncated { bytes }))
    }

    /// Strips a byte order mark at the very start; false while too few
    /// bytes have come to tell.
    fn check_bom(&mut self) -> bool {
        let head = &self.buf[self.pos..];
        if head.len() < BOM.len() && BOM.starts_with(head) && !self.finished {
            return false;
        }
        if head.starts_with(BOM) {
            self.pos += BOM.len();
            self.scan = self.pos;
        }
        self.bom_checked = true;
        true
    }

    /// No line end in the buffer: keep the partial line, within the limit.
    fn partial_line(&mut self) -> Option<Result<SseEvent, SseError>> {
        self.scan = self.buf.len();
        let partial = self.buf.len() - self.pos;
        if self.discarding_line || self.skipping_event {
            // Nothing of a refused event is kept; the end of the line
            // dropped here must not read as a blank line.
            if partial > 0 {
                self.discarding_line = true;
            }
            self.buf.truncate(self.pos);
            self.scan = self.pos;
        } else if self.event.bytes + partial > self.max_event_bytes {
            let error = self.refuse_event();
            self.discarding_line = true;
            self.buf.truncate(self.pos);
            self.scan = self.pos;
            return Some(Err(error));
        }
        self.compact();
        None
    }

    /// The event being read is over the limit: drop it, skip to its end.
    fn refuse_event(&mut self) -> SseError {
        self.event = PendingEvent::default();
        self.skipping_event = true;
        SseError::TooLarge {
            limit: self.max_event_bytes,
        }
    }

    /// Drops consumed input; called when all complete lines are read, so
    /// what moves is at most the partial line.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        // One huge chunk must not pin its memory for the stream's life.
        let keep = self.max_event_bytes.max(MIN_CAPACITY);
        if self.buf.capacity() > 2 * keep && self.buf.len() <= keep {
            self.buf.shrink_to(keep);
        }
    }
}
